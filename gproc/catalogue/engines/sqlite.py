"""The embedded default: SQLite with an R*Tree of footprint bounding boxes.

The project's Python cannot load SpatiaLite (no ``enable_load_extension``), but
SQLite's R*Tree module is built in. A spatial term that is a top-level conjunct
drives the query through the R*Tree (a join rooted at the virtual table, so the
dataset table is reached by primary key, never scanned); the exact polygon test
is shapely's, in the shared page loop. Spatial terms elsewhere in the plan (under
OR/NOT) become R*Tree sub-queries that give a superset (or, negated, a subset).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    event,
    false,
    insert,
    select,
)
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.model import Dataset
from gproc.catalogue.query import And, Expr, Query, Spatial, SpatialOp, conjuncts

RTREE = "catalogue_dataset_rtree"
# the R*Tree virtual table is made by the catalogue's migrations (gproc.migrations.catalogue)
_BOX = ("minx", "maxx", "miny", "maxy")
_EPS = 1e-9  # R*Tree stores 32-bit floats, rounded outwards; keep the box test loose


class SqliteEngine(SqlEngine):
    exact_in_sql = False
    side_tables = (RTREE,)

    def __init__(self, url: str) -> None:
        engine = sa_create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        super().__init__(engine)
        self.rtree = Table(
            RTREE,
            MetaData(),
            Column("rid", Integer, primary_key=True),
            Column("minx", Float),
            Column("maxx", Float),
            Column("miny", Float),
            Column("maxy", Float),
        )
        # made once: building an alias's column proxies costs more than the query
        self.ds_not_indexed = NotIndexed._construct(self.ds, name="d")

    def _after_write(self, conn: Connection, rid: int, ds: Dataset) -> None:
        minx, miny, maxx, maxy = ds.raster.bbox
        conn.execute(delete(self.rtree).where(self.rtree.c.rid == rid))
        conn.execute(insert(self.rtree).values(rid=rid, minx=minx, maxx=maxx, miny=miny, maxy=maxy))

    def _after_delete(self, conn: Connection, rid: int) -> None:
        conn.execute(delete(self.rtree).where(self.rtree.c.rid == rid))

    @staticmethod
    def box_values(term: Spatial) -> dict[str, float]:
        """What each R*Tree column is compared with so every exact match passes."""
        qminx, qminy, qmaxx, qmaxy = term.bounds
        if term.op is SpatialOp.CONTAINS:  # footprint box must hold the query box
            return {"minx": qminx + _EPS, "maxx": qmaxx - _EPS, "miny": qminy + _EPS,
                    "maxy": qmaxy - _EPS}  # fmt: skip
        if term.op is SpatialOp.WITHIN:  # footprint box inside the query box
            return {"minx": qminx - _EPS, "maxx": qmaxx + _EPS, "miny": qminy - _EPS,
                    "maxy": qmaxy + _EPS}  # fmt: skip
        return {"minx": qmaxx + _EPS, "maxx": qminx - _EPS, "miny": qmaxy + _EPS,
                "maxy": qminy - _EPS}  # fmt: skip

    def _box_condition(self, op: SpatialOp, v: dict[str, Any]) -> ColumnElement[bool]:
        """The R*Tree box test; ``v`` holds values or bound parameters (see box_values)."""
        r = self.rtree.c
        if op is SpatialOp.WITHIN:
            return and_(r.minx >= v["minx"], r.maxx <= v["maxx"], r.miny >= v["miny"],
                        r.maxy <= v["maxy"])  # fmt: skip
        # intersects and contains: the footprint box reaches past the given edges
        return and_(r.minx <= v["minx"], r.maxx >= v["maxx"], r.miny <= v["miny"],
                    r.maxy >= v["maxy"])  # fmt: skip

    def _box(self, term: Spatial) -> ColumnElement[bool]:
        """Bounding-box condition on the R*Tree that every exact match satisfies."""
        return self._box_condition(term.op, self.box_values(term))

    def spatial_template(self, op: SpatialOp, t: Any) -> ColumnElement[bool]:
        box = self._box_condition(op, {k: bindparam(f"box_{k}") for k in _BOX})
        return t.c.rid.in_(select(self.rtree.c.rid).where(box))  # type: ignore[no-any-return]

    def spatial_params(self, term: Spatial) -> dict[str, Any]:
        return {f"box_{k}": v for k, v in self.box_values(term).items()}

    def template_select(self, op: SpatialOp | None) -> tuple[Select[Any], Any]:
        if op is None:
            return super().template_select(op)
        t = self.ds_not_indexed
        box = self._box_condition(op, {k: bindparam(f"box_{k}") for k in _BOX})
        join = self.rtree.join(t, t.c.rid == self.rtree.c.rid)
        return select(*self._columns(t)).select_from(join).where(box), t

    def spatial(self, term: Spatial, positive: bool, t: Any) -> ColumnElement[bool]:
        if not positive:
            return false()  # a subset of the exact test: NOT(...) stays a superset
        return t.c.rid.in_(select(self.rtree.c.rid).where(self._box(term)))  # type: ignore[no-any-return]

    def _base_select(self, query: Query) -> tuple[Select[Any], Any]:
        driver = self.driving_spatial(query)
        if driver is None:
            return super()._base_select(query)
        # rooted at the R*Tree; the dataset table NOT INDEXED so the planner cannot
        # prefer an area/type/name index (a scan) over the spatial index: rows are
        # reached by their integer primary key only
        t = self.ds_not_indexed
        stmt = (
            select(*self._columns(t))
            .select_from(self.rtree.join(t, t.c.rid == self.rtree.c.rid))
            .where(self._box(driver))
        )
        rest = _without(query, driver)
        if rest is not None:
            stmt = stmt.where(self.condition(rest, True, t))
        return stmt, t


def _without(query: Query, driver: Spatial) -> Expr | None:
    rest = list(conjuncts(query.where))
    rest.remove(driver)
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else And(tuple(rest))


class NotIndexed(Alias):
    """``<table> AS <name> NOT INDEXED`` (SQLite: rowid lookups only)."""

    inherit_cache = True


@compiles(NotIndexed, "sqlite")
def _not_indexed(element: NotIndexed, compiler: Any, **kw: Any) -> str:
    text_ = compiler.visit_alias(element, **kw)
    return f"{text_} NOT INDEXED" if kw.get("asfrom") else str(text_)
