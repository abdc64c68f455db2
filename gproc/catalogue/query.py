"""The typed query plan every front compiles to (structured search, GQL, LLQL).

A plan is a tree of terms (``Spatial``, ``Eq``, ``Prop``, ``Text``, ``TimeRange``)
joined by ``And``/``Or``/``Not``, plus sort and paging. Engines turn it into
parameterised SQL; :func:`matches` evaluates it in Python for engines whose index
answers only a superset (SQLite's R*Tree gives bounding boxes; shapely decides).
Values are validated when the plan is built, so no engine sees a malformed one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Literal

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from gproc.catalogue.model import PROP_KEY_RE, TYPE_RE, Dataset
from gproc.errors import InvalidRequest

MAX_LIMIT = 1000
MAX_TERMS = 256
EqField = Literal["id", "type", "datagroup", "dataset", "vendor", "sensor", "location"]
EQ_FIELDS: tuple[str, ...] = ("id", "type", "datagroup", "dataset", "vendor", "sensor", "location")


class InvalidQuery(InvalidRequest):
    """A query term is malformed; ``field`` names the term (and position if parsed)."""

    code = "Client.InvalidQuery"


class InvalidToken(InvalidRequest):
    """A continuation token that this query did not issue."""

    code = "Client.InvalidToken"


class SpatialOp(StrEnum):
    INTERSECTS = "intersects"  # footprint and geometry share a point
    CONTAINS = "contains"  # footprint contains the geometry (covers the place)
    WITHIN = "within"  # footprint lies inside the geometry


class SortKey(StrEnum):
    ACQUIRED = "acquired"
    NAME = "name"
    REGISTERED = "registered"


@dataclass(frozen=True)
class Spatial:
    geometry_wkt: str
    op: SpatialOp = SpatialOp.INTERSECTS

    @classmethod
    def of(cls, geometry: BaseGeometry | str, op: SpatialOp = SpatialOp.INTERSECTS) -> Spatial:
        """Validate a lon/lat geometry (WKT or shapely) and keep its normalised WKT."""
        try:
            geom = shapely_wkt.loads(geometry) if isinstance(geometry, str) else geometry
        except (ShapelyError, ValueError, TypeError):
            raise InvalidQuery("geometry: not well-known text", field="geometry") from None
        if geom.is_empty or not geom.is_valid:
            raise InvalidQuery("geometry: empty or invalid", field="geometry")
        minx, miny, maxx, maxy = geom.bounds
        if not all(math.isfinite(v) for v in geom.bounds) or not (
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        ):
            raise InvalidQuery("geometry: outside longitude/latitude range", field="geometry")
        return cls(geom.wkt, SpatialOp(op))

    @classmethod
    def bbox(
        cls,
        west: float,
        south: float,
        east: float,
        north: float,
        op: SpatialOp = SpatialOp.INTERSECTS,
    ) -> Spatial:
        if not (west <= east and south <= north):
            raise InvalidQuery("bbox: needs west <= east and south <= north", field="bbox")
        return cls.of(box(west, south, east, north), op)

    @cached_property
    def geometry(self) -> BaseGeometry:
        return shapely_wkt.loads(self.geometry_wkt)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        b = self.geometry.bounds
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


@dataclass(frozen=True)
class Eq:
    """Field equality; ``type`` also matches sub-types (``RASTER`` ~ ``RASTER/AERIAL``)."""

    field: EqField
    value: str

    def __post_init__(self) -> None:
        if self.field not in EQ_FIELDS:
            raise InvalidQuery(f"unknown field {self.field!r}", field=self.field)
        if not isinstance(self.value, str) or not self.value or len(self.value) > 1024:
            raise InvalidQuery(f"{self.field}: needs a value", field=self.field)
        if self.field == "type" and not TYPE_RE.match(self.value):
            raise InvalidQuery("type: upper-case words separated by '/'", field="type")


@dataclass(frozen=True)
class Prop:
    key: str
    value: str

    def __post_init__(self) -> None:
        if not PROP_KEY_RE.match(self.key):
            raise InvalidQuery(f"property {self.key!r}: bad key", field="property")


@dataclass(frozen=True)
class Text:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip() or len(self.text) > 256:
            raise InvalidQuery("text: 1 to 256 characters", field="text")

    @property
    def needle(self) -> str:
        return self.text.strip().casefold()


@dataclass(frozen=True)
class TimeRange:
    """Acquisition time within [start, end] (either end open)."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if value is not None and value.tzinfo is None:
                raise InvalidQuery("time: needs a time zone", field="time")
        if self.start and self.end and self.start > self.end:
            raise InvalidQuery("time: start after end", field="time")


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Spatial | Eq | Prop | Text | TimeRange | And | Or | Not


@dataclass(frozen=True)
class Query:
    where: Expr | None = None
    sort: SortKey = SortKey.NAME
    descending: bool = False
    limit: int = 100
    token: str | None = None
    select: tuple[str, ...] = field(default=())  # LLQL's projection (fronts apply it)

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit: 1 to {MAX_LIMIT}", field="limit")
        if self.where is not None and count_terms(self.where) > MAX_TERMS:
            raise InvalidQuery(f"query: at most {MAX_TERMS} terms", field="query")

    def fingerprint(self) -> str:
        """Identifies the query a token belongs to (sort and filter, not the page)."""
        text = repr((self.where, self.sort, self.descending))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def count_terms(expr: Expr) -> int:
    if isinstance(expr, And | Or):
        return sum(count_terms(e) for e in expr.items)
    if isinstance(expr, Not):
        return count_terms(expr.item)
    return 1


def conjuncts(expr: Expr | None) -> list[Expr]:
    """Top-level AND terms (what can drive an index)."""
    if expr is None:
        return []
    if isinstance(expr, And):
        return [t for e in expr.items for t in conjuncts(e)]
    return [expr]


# ---- sort keys and continuation tokens ---------------------------------------------
NO_TIME = -1.0e15  # sort value of datasets without acquisition time (oldest)


def sort_value(ds: Dataset, key: SortKey) -> float | str:
    if key is SortKey.NAME:
        return ds.name
    if key is SortKey.REGISTERED:
        return ds.registered.timestamp()
    return ds.fields.acquired.timestamp() if ds.fields.acquired else NO_TIME


def make_token(query: Query, last_value: float | str, last_rid: int) -> str:
    raw = json.dumps({"q": query.fingerprint(), "v": last_value, "r": last_rid})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_token(query: Query) -> tuple[float | str, int] | None:
    """(sort value, row id) after which the page starts; InvalidToken if foreign."""
    if not query.token:
        return None
    try:
        raw = base64.urlsafe_b64decode(query.token + "=" * (-len(query.token) % 4))
        data = json.loads(raw)
        value, rid = data["v"], data["r"]
        ok = data["q"] == query.fingerprint() and isinstance(rid, int)
        ok = ok and isinstance(value, str if query.sort is SortKey.NAME else float | int)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidToken("token: not issued for this query", field="token")
    return value, rid


# ---- exact evaluation in Python --------------------------------------------------------
def matches(expr: Expr | None, ds: Dataset, footprint: BaseGeometry) -> bool:
    """The exact meaning of a plan on one dataset (shared by engines and tests)."""
    if expr is None:
        return True
    if isinstance(expr, And):
        return all(matches(e, ds, footprint) for e in expr.items)
    if isinstance(expr, Or):
        return any(matches(e, ds, footprint) for e in expr.items)
    if isinstance(expr, Not):
        return not matches(expr.item, ds, footprint)
    if isinstance(expr, Spatial):
        g = expr.geometry
        if expr.op is SpatialOp.INTERSECTS:
            return bool(footprint.intersects(g))
        if expr.op is SpatialOp.CONTAINS:
            return bool(footprint.contains(g))
        return bool(footprint.within(g))
    if isinstance(expr, Eq):
        return _eq(expr, ds)
    if isinstance(expr, Prop):
        return ds.fields.properties.get(expr.key) == expr.value
    if isinstance(expr, Text):
        return expr.needle in ds.search_text()
    acquired = ds.fields.acquired
    if acquired is None:
        return False
    return (expr.start is None or acquired >= expr.start) and (
        expr.end is None or acquired <= expr.end
    )


def _eq(expr: Eq, ds: Dataset) -> bool:
    f = ds.fields
    actual = {
        "id": ds.id,
        "type": f.type,
        "datagroup": f.datagroup,
        "dataset": f.dataset,
        "vendor": f.vendor,
        "sensor": f.sensor,
        "location": ds.location,
    }[expr.field]
    if expr.field == "type" and actual is not None:
        return actual == expr.value or actual.startswith(expr.value + "/")
    return actual == expr.value


def parse_time(text: str, field_name: str = "time") -> datetime:
    """ISO 8601 date or date-time; a bare date or naive time is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(
            f"{field_name}: not an ISO 8601 time: {text!r}", field=field_name
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
