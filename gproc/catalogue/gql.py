"""GQL, GiSHEO's simple query language, parsed with lark into a typed plan.

``place:Timisoara, Timis, Romania type:DEM vendor:NASA``: ``key:value`` terms
joined by implicit AND, with ``OR``, ``NOT``, parentheses and ``"quoted values"``.
A value may continue over ``, `` (place names, ``bbox:w,s,e,n``). A bare word is
free text. Keys: ``place``/``covers``/``inside`` (a gazetteer place the footprint
intersects / covers / lies inside), ``bbox``, ``type`` (sub-types included),
``vendor``, ``sensor``, ``datagroup``, ``dataset``, ``id``, ``location``,
``time`` (``2021``, ``2021-06``, ``2021-06-01``, or ``start..end``, either end
open), ``text`` and ``prop.<name>``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark.exceptions import UnexpectedToken, VisitError

from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.query import And, Expr, Not, Or, SpatialOp, Text
from gproc.catalogue.terms import (
    SPATIAL_KEYS,
    QuerySyntaxError,
    at,
    bbox_term,
    field_term,
    place_term,
    time_term,
)

GRAMMAR = r"""
?start: expr?
?expr: or_
?or_: and_ (OR and_)*
?and_: not_ (AND? not_)*
?not_: NOT not_ -> neg
     | atom
?atom: "(" expr ")"
     | KEY value -> keyed
     | part -> bare
value: part ("," part)*
?part: WORD | STRING

KEY.2: /[A-Za-z_][A-Za-z0-9_.]*:/
OR.3: /OR(?=[\s()"]|$)/
AND.3: /AND(?=[\s()"]|$)/
NOT.3: /NOT(?=[\s()"]|$)/
WORD: /[^\s(),"]+/
STRING: /"(?:[^"\\]|\\.)*"/
%ignore /\s+/
"""

MAX_QUERY = 4096
_FRIENDLY = {
    "KEY": "key:value",
    "WORD": "a value",
    "STRING": 'a "quoted value"',
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "OR": "OR",
    "AND": "AND",
    "NOT": "NOT",
    "$END": "end of query",
    "NUMBER": "a number",
    "SYMBOL": "a name",
}


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def unquote(tok: Token) -> str:
    text = str(tok)
    if tok.type == "STRING":
        body = text[1:-1]
        out, i = [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                i += 1
            out.append(body[i])
            i += 1
        return "".join(out)
    return text


class _Build(Transformer[Token, Expr]):
    def __init__(self, gazetteer: Gazetteer | None) -> None:
        super().__init__()
        self.gazetteer = gazetteer

    def value(self, parts: list[Token]) -> list[Token]:
        return parts

    def neg(self, items: list[Any]) -> Expr:
        return Not(items[1])

    def or_(self, items: list[Any]) -> Expr:
        return Or(tuple(i for i in items if not isinstance(i, Token)))

    def and_(self, items: list[Any]) -> Expr:
        return And(tuple(i for i in items if not isinstance(i, Token)))

    def bare(self, items: list[Token]) -> Expr:
        tok = items[0]
        try:
            return Text(unquote(tok))
        except QuerySyntaxError:
            raise
        except Exception as exc:  # InvalidQuery from Text
            raise at(tok.start_pos or 0, exc, "text") from None  # type: ignore[arg-type]

    def keyed(self, items: list[Any]) -> Expr:
        key_tok, parts = items[0], items[1]
        pos = int(key_tok.start_pos or 0)
        key = str(key_tok)[:-1]
        texts = [unquote(p) for p in parts]
        if key in SPATIAL_KEYS:
            return place_term(self.gazetteer, ", ".join(texts), SPATIAL_KEYS[key], pos)
        if key == "bbox":
            return bbox_term(texts, pos, SpatialOp.INTERSECTS)
        if len(texts) != 1:
            raise QuerySyntaxError(
                f"{key}: one value (quote values holding ',')", position=pos, field=key
            )
        if key == "time":
            start, sep, end = texts[0].partition("..")
            return time_term(start, end if sep else None, pos)
        return field_term(key, texts[0], pos)


def parse_gql(text: str, gazetteer: Gazetteer | None = None) -> Expr | None:
    """The plan of a GQL query (None: match everything); QuerySyntaxError points at
    the offending position."""
    if len(text) > MAX_QUERY:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY} characters", position=MAX_QUERY)
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax(text, exc) from None
    if not getattr(tree, "children", True) and getattr(tree, "data", "") == "start":
        return None
    try:
        result = _Build(gazetteer).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, QuerySyntaxError):
            raise exc.orig_exc from None
        raise
    return None if getattr(result, "data", None) == "start" else result


def _syntax(text: str, exc: UnexpectedInput) -> QuerySyntaxError:
    if isinstance(exc, UnexpectedEOF):
        return QuerySyntaxError(
            "unexpected end of query", position=len(text), expected=_names(exc.expected)
        )
    if isinstance(exc, UnexpectedToken):
        pos = int(exc.token.start_pos or 0) if exc.token.type != "$END" else len(text)
        found = "end of query" if exc.token.type == "$END" else repr(str(exc.token))
        return QuerySyntaxError(f"unexpected {found}", position=pos, expected=_names(exc.expected))
    if isinstance(exc, UnexpectedCharacters):
        pos = int(exc.pos_in_stream or 0)
        return QuerySyntaxError(
            f"unexpected character {text[pos]!r}",
            position=pos,
            expected=_names(exc.allowed or ()),
        )
    return QuerySyntaxError(str(exc), position=0)


def _names(terminals: Any) -> list[str]:
    return [_FRIENDLY.get(t, t) for t in terminals if not str(t).startswith("__")]
