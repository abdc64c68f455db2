"""The catalogue engine contract, and the SQL both engines share.

An engine stores :class:`Dataset` entries and answers a :class:`Query` for a set of
visible areas (``None``: every area, for administrators). Everything but the
spatial test is the same parameterised SQLAlchemy Core on SQLite and PostgreSQL;
each engine supplies its spatial condition. An engine whose index answers a
superset (SQLite: bounding boxes in an R*Tree) sets ``exact_in_sql = False`` and
the shared page loop keeps only rows the plan's exact Python meaning accepts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely import wkt as shapely_wkt
from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    MetaData,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from gproc.catalogue import tables
from gproc.catalogue.model import Dataset, DatasetNotFound
from gproc.catalogue.query import (
    And,
    Eq,
    Expr,
    Not,
    Or,
    Prop,
    Query,
    SortKey,
    Spatial,
    SpatialOp,
    Text,
    TimeRange,
    conjuncts,
    make_token,
    matches,
    read_token,
    sort_value,
)
from gproc.errors import Conflict
from gproc.migrations import catalogue as catalogue_migrations


class DatasetConflict(Conflict):
    """Another entry already has this location or datagroup/dataset name."""

    code = "Client.DatasetConflict"


@dataclass(frozen=True)
class Page:
    items: tuple[Dataset, ...]
    token: str | None  # continuation token; None on the last page


Areas = frozenset[str] | None  # visible areas; None: all
# the column holding each sort key's value (what sort_value gives for a dataset)
_SORT_COLUMN = {
    SortKey.NAME: "name",
    SortKey.ACQUIRED: "acquired",
    SortKey.REGISTERED: "registered",
}


class CatalogueEngine(ABC):
    """Where catalogue entries live and how they are searched."""

    exact_in_sql: bool = True

    @abstractmethod
    def create_schema(self, *, auto_upgrade: bool = False) -> None:
        """Bring the schema to the catalogue chain's head (idempotent): a new database
        is built, an older one upgraded only with ``auto_upgrade`` (else refused)."""

    @abstractmethod
    def put(self, ds: Dataset) -> Dataset:
        """Insert, or replace the entry with the same id; DatasetConflict on clashes."""

    @abstractmethod
    def put_many(self, items: Sequence[Dataset]) -> None:
        """Many entries in one transaction (bulk loads); the error names the item."""

    @abstractmethod
    def get(self, dataset_id: str) -> Dataset:
        """The entry (DatasetNotFound if none); visibility is the caller's business."""

    @abstractmethod
    def lookup(
        self, *, location: str | None = None, name: tuple[str, str] | None = None
    ) -> Dataset | None: ...

    @abstractmethod
    def remove(self, dataset_id: str) -> None: ...

    @abstractmethod
    def search(self, query: Query, areas: Areas) -> Page: ...

    @abstractmethod
    def datagroups(self, areas: Areas) -> list[tuple[str, int]]:
        """(datagroup, number of visible datasets), by name."""

    @abstractmethod
    def in_area_prefix(self, prefix: str) -> list[Dataset]:
        """Entries whose location lies under ``prefix`` (for scans)."""

    @abstractmethod
    def close(self) -> None: ...


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlEngine(CatalogueEngine):
    """The SQL both engines share; subclasses add the spatial index and condition."""

    CHUNK = 256  # rows read per round when the index answers a superset

    def __init__(
        self,
        engine: Engine,
        extra_columns: Sequence[Column[Any]] = (),
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        # searches run on ``reader`` (PostGIS: autocommit, no pre-ping: one round trip)
        self.reader = reader or engine
        self.metadata = MetaData()
        self.ds = tables.dataset_table(self.metadata, *extra_columns)
        self.props = tables.property_table(self.metadata)
        self.places = tables.place_table(self.metadata)
        self._column_cache: dict[int, list[Any]] = {}
        self._prepared_cache: dict[tuple[Any, ...], Select[Any]] = {}

    # -- schema and writes ---------------------------------------------------------
    def create_schema(self, *, auto_upgrade: bool = False) -> None:
        catalogue_migrations.prepare(self.engine, auto_upgrade=auto_upgrade)

    def drop_schema(self) -> None:
        """Drop every catalogue table and the revision record (tests, benchmarks)."""
        with self.engine.begin() as conn:
            for name in (*self.side_tables, catalogue_migrations.VERSION_TABLE):
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))  # noqa: S608 - fixed names
        self.metadata.drop_all(self.engine)

    side_tables: tuple[str, ...] = ()  # engine tables outside ``metadata`` (the R*Tree)

    def close(self) -> None:
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    def _row(self, ds: Dataset) -> dict[str, Any]:
        return tables.to_row(ds)

    def _after_write(self, conn: Connection, rid: int, ds: Dataset) -> None:
        """Engine hook: keep a side index (the SQLite R*Tree) in step."""

    def _after_delete(self, conn: Connection, rid: int) -> None:
        """Engine hook, see :meth:`_after_write`."""

    def put(self, ds: Dataset) -> Dataset:
        with self.engine.begin() as conn:
            self._put(conn, ds)
        return ds

    def put_many(self, items: Sequence[Dataset]) -> None:
        with self.engine.begin() as conn:
            for i, ds in enumerate(items):
                try:
                    self._put(conn, ds)
                except DatasetConflict as exc:
                    raise exc.at(index=i) from None

    def _put(self, conn: Connection, ds: Dataset) -> None:
        row = self._row(ds)
        c = self.ds.c
        clash = conn.execute(
            select(c.id, c.location, c.name).where(
                c.id != ds.id,
                or_(
                    c.location == ds.location,
                    and_(c.datagroup == ds.fields.datagroup, c.dataset == ds.fields.dataset),
                ),
            )
        ).first()
        if clash is not None:
            what = "location" if clash.location == ds.location else "name"
            raise DatasetConflict(
                f"{what}: already catalogued as {clash.name} ({clash.id})", field=what
            )
        rid = conn.execute(select(c.rid).where(c.id == ds.id)).scalar()
        if rid is None:
            rid = conn.execute(insert(self.ds).values(**row).returning(c.rid)).scalar_one()
        else:
            conn.execute(update(self.ds).where(c.rid == rid).values(**row))
            conn.execute(delete(self.props).where(self.props.c.rid == rid))
        if ds.fields.properties:
            conn.execute(
                insert(self.props),
                [{"rid": rid, "key": k, "value": v} for k, v in ds.fields.properties.items()],
            )
        self._after_write(conn, rid, ds)

    def remove(self, dataset_id: str) -> None:
        c = self.ds.c
        with self.engine.begin() as conn:
            rid = conn.execute(select(c.rid).where(c.id == dataset_id)).scalar()
            if rid is None:
                raise DatasetNotFound(f"no dataset {dataset_id}", field="id")
            conn.execute(delete(self.props).where(self.props.c.rid == rid))
            self._after_delete(conn, rid)
            conn.execute(delete(self.ds).where(c.rid == rid))

    # -- reads ----------------------------------------------------------------------
    def _columns(self, t: Any = None) -> list[Any]:
        t = self.ds if t is None else t
        cached = self._column_cache.get(id(t))
        if cached is None:
            cached = [col for col in t.c if col.name in tables.DATASET_COLUMNS]
            self._column_cache[id(t)] = cached
        return cached

    def get(self, dataset_id: str) -> Dataset:
        row = self._one(self.ds.c.id == dataset_id)
        if row is None:
            raise DatasetNotFound(f"no dataset {dataset_id}", field="id")
        return row

    def lookup(
        self, *, location: str | None = None, name: tuple[str, str] | None = None
    ) -> Dataset | None:
        c = self.ds.c
        if location is not None:
            return self._one(c.location == location)
        if name is not None:
            return self._one(and_(c.datagroup == name[0], c.dataset == name[1]))
        raise ValueError("lookup needs location or name")

    def _one(self, cond: ColumnElement[bool]) -> Dataset | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*self._columns()).where(cond)).first()
        return tables.from_row(row) if row is not None else None

    def in_area_prefix(self, prefix: str) -> list[Dataset]:
        c = self.ds.c
        pattern = like_escape(prefix.rstrip("/")) + "/%"
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*self._columns()).where(c.location.like(pattern, escape="\\"))
            ).all()
        return [tables.from_row(r) for r in rows]

    def datagroups(self, areas: Areas) -> list[tuple[str, int]]:
        c = self.ds.c
        stmt = (
            select(c.datagroup, func.count())
            .where(self._visible(areas, self.ds), not_(c.missing))
            .group_by(c.datagroup)
            .order_by(c.datagroup)
        )
        with self.engine.connect() as conn:
            return [(str(g), int(n)) for g, n in conn.execute(stmt)]

    # -- search ---------------------------------------------------------------------
    @staticmethod
    def _visible(areas: Areas, t: Any) -> ColumnElement[bool]:
        if areas is None:
            return true()
        if not areas:
            return false()
        return t.c.area.in_(sorted(areas))  # type: ignore[no-any-return]

    @staticmethod
    def _sort_column(key: SortKey, t: Any) -> Any:
        return {
            SortKey.NAME: t.c.name,
            SortKey.ACQUIRED: t.c.acquired,
            SortKey.REGISTERED: t.c.registered,
        }[key]

    def _keyset(
        self, query: Query, after: tuple[float | str, int] | None, t: Any
    ) -> ColumnElement[bool]:
        if after is None:
            return true()
        col, rid = self._sort_column(query.sort, t), t.c.rid
        value, last = after
        if query.descending:
            return or_(col < value, and_(col == value, rid < last))
        return or_(col > value, and_(col == value, rid > last))

    def search_statement(
        self, query: Query, areas: Areas, after: tuple[float | str, int] | None, limit: int
    ) -> Select[Any]:
        """The one SELECT of a search round (public so tests can EXPLAIN it)."""
        stmt, t = self._base_select(query)
        col = self._sort_column(query.sort, t)
        order = [col.desc(), t.c.rid.desc()] if query.descending else [col, t.c.rid]
        return (
            stmt.where(
                self._visible(areas, t),
                not_(t.c.missing),
                self._keyset(query, after, t),
            )
            .order_by(*order)
            .limit(limit)
        )

    def _base_select(self, query: Query) -> tuple[Select[Any], Any]:
        """SELECT ... FROM the dataset table WHERE the plan, and the table the rest of the
        statement must name (engines may re-root the query on their index)."""
        stmt = select(*self._columns())
        if query.where is not None:
            stmt = stmt.where(self.condition(query.where, True, self.ds))
        return stmt, self.ds

    # -- prepared statements for spatial-only plans -------------------------------------
    # Building a SELECT and its cache key costs SQLAlchemy more than SQLite takes to run
    # it. The commonest searches (a map view's bbox, STAC's bbox/intersects, paging
    # through them) have a plan that is one spatial term or none: their statement is
    # built once per shape with every value a bound parameter, and reused.
    def prepared_statement(
        self, query: Query, areas: Areas, after: tuple[float | str, int] | None, limit: int
    ) -> tuple[Executable, dict[str, Any]]:
        """The SELECT of a search round and its parameters: the shape's reused statement
        when the plan is spatial only, else :meth:`search_statement` (values inline)."""
        where = query.where
        if where is not None and not isinstance(where, Spatial):
            return self.search_statement(query, areas, after, limit), {}
        op = where.op if where is not None else None
        mode = None if areas is None else bool(areas)
        key = (op, query.sort, query.descending, after is not None, mode, limit)
        stmt = self._prepared_cache.get(key)
        if stmt is None:
            stmt = self._prepared_cache[key] = self._template(query, op, mode, after, limit)
        params: dict[str, Any] = self.spatial_params(where) if where is not None else {}
        if areas:
            params["areas"] = sorted(areas)
        if after is not None:
            params["after_value"], params["after_rid"] = after
        return stmt, params

    def _template(
        self, query: Query, op: SpatialOp | None, mode: bool | None, after: Any, limit: int
    ) -> Select[Any]:
        stmt, t = self.template_select(op)
        visible = (
            true()
            if mode is None
            else false()
            if not mode
            else t.c.area.in_(bindparam("areas", expanding=True))
        )
        col = self._sort_column(query.sort, t)
        keyset: ColumnElement[bool] = true()
        if after is not None:
            value: Any = bindparam("after_value")
            last: Any = bindparam("after_rid")
            before = col < value if query.descending else col > value
            beside = t.c.rid < last if query.descending else t.c.rid > last
            keyset = or_(before, and_(col == value, beside))
        order = [col.desc(), t.c.rid.desc()] if query.descending else [col, t.c.rid]
        return stmt.where(visible, not_(t.c.missing), keyset).order_by(*order).limit(limit)

    def template_select(self, op: SpatialOp | None) -> tuple[Select[Any], Any]:
        """SELECT ... WHERE <spatial test of ``op`` on bound parameters>, and its table
        (see :meth:`_base_select`); engines rooted on a side index override it."""
        stmt = select(*self._columns())
        if op is not None:
            stmt = stmt.where(self.spatial_template(op, self.ds))
        return stmt, self.ds

    @abstractmethod
    def spatial_template(self, op: SpatialOp, t: Any) -> ColumnElement[bool]:
        """The exact (or superset) spatial test of ``op`` on bound parameters."""

    @abstractmethod
    def spatial_params(self, term: Spatial) -> dict[str, Any]:
        """The values of :meth:`spatial_template`'s parameters for ``term``."""

    def _exact(self, where: Expr | None, rows: Sequence[Any]) -> Sequence[bool | None]:
        """Per row: True/False when known here, None when the full plan must be evaluated.
        A spatial-only plan is tested on all the round's footprints in one shapely call."""
        if self.exact_in_sql or where is None:
            return [True] * len(rows)
        if not isinstance(where, Spatial):
            return [None] * len(rows)
        footprints = shapely.from_wkt([r._mapping["footprint_wkt"] for r in rows])
        test = {
            SpatialOp.INTERSECTS: shapely.intersects,
            SpatialOp.CONTAINS: shapely.contains,
            SpatialOp.WITHIN: shapely.within,
        }[where.op]
        return [bool(v) for v in test(footprints, where.geometry)]

    def search(self, query: Query, areas: Areas) -> Page:
        try:
            return self._search(query, areas)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return self._search(query, areas)  # the pool dropped a dead connection: retry once

    def _search(self, query: Query, areas: Areas) -> Page:
        after = read_token(query)
        found: list[tuple[Dataset, int]] = []
        chunk = query.limit + 1 if self.exact_in_sql else max(self.CHUNK, query.limit + 1)
        with self.reader.connect() as conn:
            while len(found) <= query.limit:
                stmt, params = self.prepared_statement(query, areas, after, chunk)
                rows = conn.execute(stmt, params).all()
                for row, ok in zip(rows, self._exact(query.where, rows), strict=True):
                    if ok is None:  # a plan beyond one spatial term: its full meaning
                        ds = tables.from_row(row)
                        fp = shapely_wkt.loads(ds.raster.footprint_wkt)
                        ok = matches(query.where, ds, fp)
                        if not ok:
                            continue
                    elif not ok:
                        continue
                    else:
                        ds = tables.from_row(row)
                    found.append((ds, int(row._mapping["rid"])))
                    if len(found) > query.limit:
                        break
                if len(rows) < chunk:
                    break
                last = rows[-1]._mapping
                after = (last[_SORT_COLUMN[query.sort]], int(last["rid"]))
        items = found[: query.limit]
        token = None
        if len(found) > query.limit and items:
            ds, rid = items[-1]
            token = make_token(query, sort_value(ds, query.sort), rid)
        return Page(tuple(ds for ds, _ in items), token)

    # -- plan -> SQL ------------------------------------------------------------------
    def condition(self, expr: Expr, positive: bool, t: Any) -> ColumnElement[bool]:
        """SQL for ``expr`` on table ``t``: exact, or (if not exact_in_sql) a superset when
        ``positive`` and a subset otherwise, so NOT stays correct before the Python check."""
        c = t.c
        if isinstance(expr, And):
            return and_(*(self.condition(e, positive, t) for e in expr.items))
        if isinstance(expr, Or):
            return or_(*(self.condition(e, positive, t) for e in expr.items))
        if isinstance(expr, Not):
            return not_(self.condition(expr.item, not positive, t))
        if isinstance(expr, Spatial):
            return self.spatial(expr, positive, t)
        if isinstance(expr, Eq):
            column = c[expr.field]
            if expr.field == "type":  # never NULL
                return or_(
                    column == expr.value,
                    column.like(like_escape(expr.value) + "/%", escape="\\"),
                )
            # NULL-safe: a missing vendor is "not equal" in both SQL and Python, so NOT works
            return and_(column.is_not(None), column == expr.value)
        if isinstance(expr, Prop):
            p = self.props.c
            return exists(
                select(p.rid).where(p.rid == c.rid, p.key == expr.key, p.value == expr.value)
            )
        if isinstance(expr, Text):
            return c.search_text.like("%" + like_escape(expr.needle) + "%", escape="\\")
        assert isinstance(expr, TimeRange)
        conds: list[ColumnElement[bool]] = [c.acquired != tables.NO_TIME]
        if expr.start is not None:
            conds.append(c.acquired >= expr.start.timestamp())
        if expr.end is not None:
            conds.append(c.acquired <= expr.end.timestamp())
        return and_(*conds)

    @abstractmethod
    def spatial(self, term: Spatial, positive: bool, t: Any) -> ColumnElement[bool]: ...

    @staticmethod
    def driving_spatial(query: Query) -> Spatial | None:
        """The first top-level spatial term, which may drive the index."""
        return next((t for t in conjuncts(query.where) if isinstance(t, Spatial)), None)
