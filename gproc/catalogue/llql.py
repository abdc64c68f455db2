"""LLQL, GiSHEO's Lisp-like query language (the forms of its Figure 5), with lark.

``(select '(url owner) (ogc:interacts (osm:country "Romania"))
(ogc:interacts (ogc:bbox 16.69 43.97 24.8 48.48)) (gdis:type "RASTER/AERIAL"))``

* ``(select '(field ...) condition ...)``: conditions are ANDed; the quoted list
  is the projection (``url`` = gateway location, ``owner``, ``id``, ``name``,
  ``datagroup``, ``dataset``, ``type``, ``vendor``, ``sensor``, ``acquired``,
  ``footprint``, ``crs``, ``quicklook``; ``'()`` or ``'(*)`` for all).
* spatial: ``(ogc:interacts G)``, ``(ogc:contains G)`` (the footprint contains
  G), ``(ogc:within G)``, with G one of ``(ogc:bbox w s e n)``,
  ``(ogc:wkt "POLYGON(...)")``, ``(osm:country "Romania")``, ``(osm:city "Arad")``,
  ``(gdis:place "Timisoara, Timis, Romania")``.
* fields: ``(gdis:type "DEM")``, ``gdis:vendor``, ``gdis:sensor``,
  ``gdis:datagroup``, ``gdis:dataset``, ``gdis:id``, ``(gdis:text "...")``,
  ``(gdis:property "key" "value")``, ``(gdis:time "2021-01-01" "2021-12-31")``
  (``nil`` for an open end).
* logic: ``(and ...)``, ``(or ...)``, ``(not ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Tree, UnexpectedInput

from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import _syntax, unquote
from gproc.catalogue.query import And, Expr, InvalidQuery, Not, Or, Spatial, SpatialOp
from gproc.catalogue.terms import (
    QuerySyntaxError,
    at,
    bbox_term,
    field_term,
    place_term,
    time_term,
)

GRAMMAR = r"""
start: form
form: "(" SYMBOL item* ")"
quoted: "'(" item* ")"
?item: form | quoted | STRING | NUMBER | SYMBOL

SYMBOL: /[A-Za-z_*][A-Za-z0-9_\-*]*(:[A-Za-z_][A-Za-z0-9_\-]*)?/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"(?:[^"\\]|\\.)*"/
%ignore /\s+/
%ignore /;[^\n]*/
"""

SELECTABLE = (
    "url",
    "owner",
    "id",
    "name",
    "datagroup",
    "dataset",
    "type",
    "vendor",
    "sensor",
    "acquired",
    "footprint",
    "crs",
    "quicklook",
)
SPATIAL_FORMS = {
    "ogc:interacts": SpatialOp.INTERSECTS,
    "ogc:intersects": SpatialOp.INTERSECTS,
    "ogc:contains": SpatialOp.CONTAINS,
    "ogc:within": SpatialOp.WITHIN,
}
FIELD_FORMS = {
    "gdis:type": "type",
    "gdis:vendor": "vendor",
    "gdis:sensor": "sensor",
    "gdis:datagroup": "datagroup",
    "gdis:dataset": "dataset",
    "gdis:id": "id",
    "gdis:text": "text",
}
CONDITION_FORMS = (*SPATIAL_FORMS, *FIELD_FORMS, "gdis:property", "gdis:time", "and", "or", "not")
GEOMETRY_FORMS = ("ogc:bbox", "ogc:wkt", "osm:country", "osm:city", "gdis:place")


@dataclass(frozen=True)
class Selection:
    where: Expr | None
    select: tuple[str, ...]


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True)


def parse_llql(text: str, gazetteer: Gazetteer | None = None) -> Selection:
    """The plan and projection of an LLQL ``select``; QuerySyntaxError points at the
    offending form."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax(text, exc) from None
    form = tree.children[0]
    assert isinstance(form, Tree)
    return _Build(gazetteer).select(form)


def _pos(node: Tree[Token] | Token) -> int:
    if isinstance(node, Token):
        return int(node.start_pos or 0)
    return int(getattr(node.meta, "start_pos", 0) or 0)


class _Build:
    def __init__(self, gazetteer: Gazetteer | None) -> None:
        self.gazetteer = gazetteer

    @staticmethod
    def _head(form: Tree[Token]) -> tuple[str, list[Tree[Token] | Token]]:
        return str(form.children[0]), list(form.children[1:])

    def select(self, form: Tree[Token]) -> Selection:
        head, args = self._head(form)
        if head != "select":
            raise QuerySyntaxError(
                f"unexpected form {head!r}", position=_pos(form), expected=["select"]
            )
        fields: tuple[str, ...] = ()
        first = args[0] if args else None
        if isinstance(first, Tree) and first.data == "quoted":
            fields = self._fields(first)
            args = args[1:]
        conds = [self.condition(a) for a in args]
        where = None if not conds else conds[0] if len(conds) == 1 else And(tuple(conds))
        return Selection(where, fields)

    def _fields(self, quoted: Tree[Token]) -> tuple[str, ...]:
        out = []
        for item in quoted.children:
            name = str(item)
            if not isinstance(item, Token) or item.type != "SYMBOL":
                raise QuerySyntaxError(
                    "projection: field names only", position=_pos(item), expected=SELECTABLE
                )
            if name == "*":
                continue
            if name not in SELECTABLE:
                raise QuerySyntaxError(
                    f"unknown field {name!r}", position=_pos(item), expected=SELECTABLE
                )
            out.append(name)
        return tuple(out)

    def condition(self, node: Tree[Token] | Token) -> Expr:
        if not isinstance(node, Tree) or node.data != "form":
            raise QuerySyntaxError(
                "expected a condition form", position=_pos(node), expected=CONDITION_FORMS
            )
        head, args = self._head(node)
        pos = _pos(node)
        if head in ("and", "or"):
            items = tuple(self.condition(a) for a in args)
            if not items:
                raise QuerySyntaxError(f"({head}) needs conditions", position=pos)
            return And(items) if head == "and" else Or(items)
        if head == "not":
            self._arity(head, args, 1, pos)
            return Not(self.condition(args[0]))
        if head in SPATIAL_FORMS:
            self._arity(head, args, 1, pos)
            return self.geometry(args[0], SPATIAL_FORMS[head])
        if head in FIELD_FORMS:
            self._arity(head, args, 1, pos)
            return field_term(FIELD_FORMS[head], self._string(args[0]), _pos(args[0]))
        if head == "gdis:property":
            self._arity(head, args, 2, pos)
            key, value = self._string(args[0]), self._string(args[1])
            return field_term(f"prop.{key}", value, _pos(args[0]))
        if head == "gdis:time":
            self._arity(head, args, 2, pos)
            start, end = (self._optional(a) for a in args)
            return time_term(start or "", end or "", pos)
        raise QuerySyntaxError(f"unknown form {head!r}", position=pos, expected=CONDITION_FORMS)

    def geometry(self, node: Tree[Token] | Token, op: SpatialOp) -> Spatial:
        if not isinstance(node, Tree) or node.data != "form":
            raise QuerySyntaxError(
                "expected a geometry form", position=_pos(node), expected=GEOMETRY_FORMS
            )
        head, args = self._head(node)
        pos = _pos(node)
        if head == "ogc:bbox":
            self._arity(head, args, 4, pos)
            for a in args:
                if not isinstance(a, Token) or a.type != "NUMBER":
                    raise QuerySyntaxError(
                        "ogc:bbox: numbers only", position=_pos(a), expected=["a number"]
                    )
            return bbox_term([str(a) for a in args], pos, op)
        if head == "ogc:wkt":
            self._arity(head, args, 1, pos)
            try:
                return Spatial.of(self._string(args[0]), op)
            except InvalidQuery as exc:
                raise at(_pos(args[0]), exc, "geometry") from None
        kinds = {"osm:country": "country", "osm:city": "city", "gdis:place": None}
        if head in kinds:
            self._arity(head, args, 1, pos)
            return place_term(self.gazetteer, self._string(args[0]), op, _pos(args[0]), kinds[head])
        raise QuerySyntaxError(f"unknown geometry {head!r}", position=pos, expected=GEOMETRY_FORMS)

    @staticmethod
    def _arity(head: str, args: list[Tree[Token] | Token], n: int, pos: int) -> None:
        if len(args) != n:
            raise QuerySyntaxError(
                f"({head} ...) takes {n} argument{'s' if n > 1 else ''}, got {len(args)}",
                position=pos,
            )

    @classmethod
    def _optional(cls, node: Tree[Token] | Token) -> str | None:
        """A string, or the symbol ``nil`` (an open end)."""
        if isinstance(node, Token) and node.type == "SYMBOL" and str(node) == "nil":
            return None
        return cls._string(node)

    @staticmethod
    def _string(node: Tree[Token] | Token) -> str:
        if isinstance(node, Token) and node.type == "STRING":
            return unquote(node)
        raise QuerySyntaxError("expected a string", position=_pos(node), expected=['a "string"'])
