"""Synthetic catalogue entries for the engine contract tests and the benchmark."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from shapely.geometry import Polygon, box

from gproc.catalogue.model import Dataset, Fields, RasterInfo

TYPES = ("RASTER/AERIAL", "DEM", "MULTISPECTRAL", "RASTER/SAR")
VENDORS = ("NASA", "ESA", "USGS", 'O\'Reilly "Maps"')
AREAS = ("/public", "/groups/grid", "/private/alice-000000000001", "/private/bob-000000000002")
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def make_dataset(
    i: int,
    geom: Polygon,
    *,
    type: str = "DEM",
    vendor: str | None = "NASA",
    area: str = "/public",
    datagroup: str = "dg",
    acquired: datetime | None = None,
    properties: dict[str, str] | None = None,
    title: str | None = None,
) -> Dataset:
    minx, miny, maxx, maxy = geom.bounds
    raster = RasterInfo(
        footprint_wkt=geom.wkt,
        bbox=(minx, miny, maxx, maxy),
        crs="EPSG:4326",
        resolution=(0.01, 0.01),
        width=100,
        height=100,
        bands=1,
        dtype="uint8",
        nodata=None,
        driver="GTiff",
    )
    fields = Fields(
        datagroup=datagroup,
        dataset=f"ds{i:06d}",
        type=type,
        vendor=vendor,
        acquired=acquired,
        title=title,
        properties=properties or {},
    )
    now = T0 + timedelta(seconds=i)
    return Dataset(
        id=uuid.UUID(int=i + 1).hex,
        location=f"{area}/data/ds{i:06d}.tif",
        area=area,
        fields=fields.check(),
        raster=raster,
        size=1000 + i,
        mtime=1.6e9 + i,
        adler32="0" * 8,
        sha256="0" * 64,
        registered=now,
        updated=now,
    )


def random_footprint(rng: random.Random, lon=(-30.0, 50.0), lat=(30.0, 70.0)) -> Polygon:
    """A small quadrilateral (sometimes a rotated, non-rectangular one)."""
    x = rng.uniform(*lon)
    y = rng.uniform(*lat)
    w, h = rng.uniform(0.05, 3.0), rng.uniform(0.05, 3.0)
    if rng.random() < 0.5:
        return box(x, y, x + w, y + h)
    skew = rng.uniform(-0.5, 0.5) * w
    return Polygon([(x, y), (x + w, y + skew), (x + w * 0.8, y + h + skew), (x - 0.3 * w, y + h)])


def random_datasets(n: int, seed: int = 7) -> list[Dataset]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        acquired = None if i % 10 == 0 else T0 + timedelta(days=rng.randrange(0, 1500))
        out.append(
            make_dataset(
                i,
                random_footprint(rng),
                type=TYPES[i % len(TYPES)],
                vendor=VENDORS[i % len(VENDORS)] if i % 7 else None,
                area=AREAS[i % len(AREAS)],
                datagroup=f"group{i % 5}",
                acquired=acquired,
                properties={"cloud": str(i % 4), "orbit": "asc" if i % 2 else "desc"},
                title=f"scene {i} over {'Banat' if i % 3 == 0 else 'elsewhere'}",
            )
        )
    return out


def identity(dn: str, fqans: tuple[str, ...] = (), vo: str = "testvo"):
    """An Identity as the validator builds it (for in-process catalogue tests)."""
    from gproc.security.identity import AcInfo, Fqan, Identity, ProxyType

    now = datetime.now(UTC)
    acs = ()
    if fqans:
        acs = (
            AcInfo(
                vo,
                "vm:15000",
                "/CN=vm",
                1,
                now,
                now + timedelta(hours=1),
                tuple(Fqan.parse(f) for f in fqans),
            ),
        )
    return Identity(
        subject=",".join(reversed(dn.strip("/").split("/"))),
        subject_grid=dn,
        issuer="CN=CA",
        issuer_grid="/CN=CA",
        proxy_type=ProxyType.IMPERSONATION,
        proxy_depth=1,
        not_after=now + timedelta(hours=1),
        fingerprint="00",
        acs=acs,
    )
