"""Typed values of the catalogue: a dataset entry, its raster metadata, provenance.

These are what crosses the catalogue's seams (extraction -> engines -> fronts); the
engines map them to rows, the fronts to wire types. Geometry travels as WKT in
EPSG:4326 (longitude, latitude) so every engine and front can read it without a
shared geometry library object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gproc.errors import InvalidRequest, NotFound

# GiSHEO's two-level names: datagroup/dataset (also used as workflow meta-attributes)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
TYPE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,31}(/[A-Z0-9][A-Z0-9_\-]{0,31}){0,3}$")
PROP_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
MAX_TEXT = 1024


class DatasetNotFound(NotFound):
    """No catalogue entry of that id/name visible to the caller."""

    code = "Client.DatasetNotFound"


class InvalidDataset(InvalidRequest):
    """A dataset field is malformed (``field`` names it)."""

    code = "Client.InvalidDataset"


class NotARaster(InvalidRequest):
    """The file at the location is not a raster GDAL can read."""

    code = "Client.NotARaster"


@dataclass(frozen=True)
class RasterInfo:
    """What GDAL/rasterio read from the file at registration."""

    footprint_wkt: str  # polygon in EPSG:4326, densified edges
    bbox: tuple[float, float, float, float]  # minx, miny, maxx, maxy (lon/lat)
    crs: str  # native CRS, "EPSG:32634" or WKT when it has no code
    resolution: tuple[float, float]  # native units per pixel (x, y), positive
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    driver: str


@dataclass(frozen=True)
class Provenance:
    """Where a derived dataset came from (task/workflow outputs)."""

    task_id: str | None = None
    workflow_id: str | None = None
    tool: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # catalogue ids of the input datasets
    node: str | None = None  # the workflow node (DAG node name) that produced it

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "workflow_id": self.workflow_id,
            "tool": self.tool,
            "parameters": dict(self.parameters),
            "inputs": list(self.inputs),
            "node": self.node,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Provenance | None:
        if not data:
            return None
        return cls(
            data.get("task_id"),
            data.get("workflow_id"),
            data.get("tool"),
            dict(data.get("parameters") or {}),
            tuple(data.get("inputs") or ()),
            data.get("node"),
        )


@dataclass(frozen=True)
class Fields:
    """The describing fields a registrant gives (validated by :meth:`check`)."""

    datagroup: str
    dataset: str
    type: str = "RASTER"
    vendor: str | None = None
    sensor: str | None = None
    acquired: datetime | None = None
    title: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def check(self) -> Fields:
        """Validate every field; InvalidDataset names the wrong one."""
        for name in ("datagroup", "dataset"):
            if not NAME_RE.match(getattr(self, name) or ""):
                raise InvalidDataset(f"{name}: must match {NAME_RE.pattern}", field=name)
        if not TYPE_RE.match(self.type or ""):
            raise InvalidDataset("type: upper-case words separated by '/'", field="type")
        for name in ("vendor", "sensor", "title"):
            value = getattr(self, name)
            if value is not None and (len(value) > MAX_TEXT or "\x00" in value):
                raise InvalidDataset(f"{name}: at most {MAX_TEXT} characters", field=name)
        for key, value in self.properties.items():
            if not PROP_KEY_RE.match(key):
                raise InvalidDataset(f"property {key!r}: bad key", field="properties")
            if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
                raise InvalidDataset(f"property {key!r}: bad value", field="properties")
        if self.acquired is not None and self.acquired.tzinfo is None:
            return replace(self, acquired=self.acquired.replace(tzinfo=UTC))
        return self

    @property
    def name(self) -> str:
        return f"{self.datagroup}/{self.dataset}"


@dataclass(frozen=True)
class Dataset:
    """One catalogue entry: a raster in the gateway with its fields and metadata."""

    id: str
    location: str  # gateway logical path
    area: str  # the readable unit it lives in: shared mount or private/<key>
    fields: Fields
    raster: RasterInfo
    size: int
    mtime: float
    adler32: str
    sha256: str
    registered: datetime
    updated: datetime
    owner: str | None = None  # slash DN of the registrant
    quicklook: str | None = None  # gateway path of the PNG
    provenance: Provenance | None = None
    missing: bool = False  # the file was removed from the gateway

    @property
    def name(self) -> str:
        return self.fields.name

    def search_text(self) -> str:
        """What free-text search matches (casefolded in Python so engines agree)."""
        f = self.fields
        parts = [f.datagroup, f.dataset, f.type, f.vendor or "", f.sensor or "", f.title or ""]
        parts += [f"{k} {v}" for k, v in sorted(f.properties.items())]
        parts.append(self.location)
        return " ".join(p for p in parts if p).casefold()


def utcnow() -> datetime:
    return datetime.now(UTC)
