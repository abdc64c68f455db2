"""Term builders shared by GQL and LLQL: a key and its text become a typed term.

Errors carry the position of the term in the query text, so the caller sees
which term was wrong and what was expected there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from gproc.catalogue.gazetteer import Gazetteer, UnknownPlace
from gproc.catalogue.query import (
    Eq,
    Expr,
    InvalidQuery,
    Prop,
    Spatial,
    SpatialOp,
    Text,
    TimeRange,
    parse_time,
)


class QuerySyntaxError(InvalidQuery):
    """The query text does not parse, or a term's value is wrong; points at it."""

    code = "Client.QuerySyntax"

    def __init__(
        self, message: str, *, position: int, expected: Sequence[str] = (), field: str = "query"
    ) -> None:
        hint = f"; expected {', '.join(sorted(set(expected)))}" if expected else ""
        super().__init__(f"at position {position}: {message}{hint}", field=field)
        self.position = position  # 0-based character offset into the query text
        self.expected = tuple(sorted(set(expected)))


SPATIAL_KEYS = {
    "place": SpatialOp.INTERSECTS,
    "covers": SpatialOp.CONTAINS,
    "inside": SpatialOp.WITHIN,
}
FIELD_KEYS = ("type", "vendor", "sensor", "datagroup", "dataset", "id", "location")
GQL_KEYS = (*SPATIAL_KEYS, "bbox", *FIELD_KEYS, "time", "text", "prop.<name>")


def at(position: int, exc: InvalidQuery, field: str) -> QuerySyntaxError:
    """Re-raise a value error of a term as one pointing at the term."""
    message = exc.message.split(": ", 1)[-1] if ": " in exc.message else exc.message
    return QuerySyntaxError(f"{field}: {message}", position=position, field=field)


def place_term(
    gazetteer: Gazetteer | None, text: str, op: SpatialOp, position: int, kind: str | None = None
) -> Spatial:
    if gazetteer is None:
        raise QuerySyntaxError("place: no gazetteer configured", position=position, field="place")
    try:
        return Spatial.of(gazetteer.resolve(text, kind).geometry_wkt, op)
    except UnknownPlace as exc:
        raise at(position, exc, "place") from None


def bbox_term(values: Sequence[str], position: int, op: SpatialOp) -> Spatial:
    try:
        nums = [float(v) for v in values]
    except ValueError:
        nums = []
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise QuerySyntaxError(
            "bbox: needs four numbers west,south,east,north", position=position, field="bbox"
        )
    try:
        return Spatial.bbox(nums[0], nums[1], nums[2], nums[3], op)
    except InvalidQuery as exc:
        raise at(position, exc, "bbox") from None


def time_term(start: str, end: str | None, position: int) -> TimeRange:
    """``2021`` / ``2021-06-01`` (a whole year/day), or a range ``start..end``."""
    try:
        if end is None:
            lo = parse_time(_expand(start, False))
            hi = _end_of(start, lo)
            return TimeRange(lo, hi)
        lo_t = parse_time(_expand(start, False)) if start else None
        hi_t = _end_of(end, parse_time(_expand(end, False))) if end else None
        return TimeRange(lo_t, hi_t)
    except InvalidQuery as exc:
        raise at(position, exc, "time") from None


def _expand(text: str, _end: bool) -> str:
    text = text.strip()
    if len(text) == 4 and text.isdigit():
        return f"{text}-01-01"
    if len(text) == 7 and text[4] == "-":
        return f"{text}-01"
    return text


def _end_of(text: str, start: datetime) -> datetime:
    """The last instant a partial date names (a year, month or day)."""
    text = text.strip()
    if len(text) == 4:
        return start.replace(year=start.year + 1) - timedelta(microseconds=1)
    if len(text) == 7:
        nxt = start.replace(day=28) + timedelta(days=4)
        return nxt.replace(day=1) - timedelta(microseconds=1)
    if len(text) == 10:
        return start + timedelta(days=1) - timedelta(microseconds=1)
    return start


def field_term(key: str, value: str, position: int) -> Expr:
    try:
        if key == "type":
            return Eq("type", value.upper())
        if key in FIELD_KEYS:
            return Eq(key, value)  # type: ignore[arg-type]
        if key == "text":
            return Text(value)
        if key.startswith("prop."):
            return Prop(key[5:], value)
    except InvalidQuery as exc:
        raise at(position, exc, key) from None
    raise QuerySyntaxError(f"unknown key {key!r}", position=position, expected=GQL_KEYS)
