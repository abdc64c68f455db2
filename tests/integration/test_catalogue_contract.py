"""One contract for every catalogue engine, run on SQLite (R*Tree) and PostGIS.

Each query's answer is checked against the plan's exact meaning evaluated in
Python over the same entries (:func:`gproc.catalogue.query.matches`), so both
engines are held to the same answers; a last test compares them directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shapely import wkt
from shapely.geometry import Point, Polygon, box
from sqlalchemy import inspect, text

from gproc.catalogue.engines.base import CatalogueEngine, DatasetConflict
from gproc.catalogue.engines.postgis import PostgisEngine
from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.model import DatasetNotFound
from gproc.catalogue.query import (
    And,
    Eq,
    InvalidToken,
    Not,
    Or,
    Prop,
    Query,
    SortKey,
    Spatial,
    SpatialOp,
    Text,
    TimeRange,
    matches,
)
from tests.catalogue_data import AREAS, make_dataset, random_datasets

N = 400
ROMANIA = Polygon(
    [
        (20.2, 46.1),
        (22.0, 48.3),
        (26.6, 48.2),
        (30.0, 45.2),
        (28.6, 43.7),
        (22.7, 43.6),
        (21.4, 44.7),
    ]
)  # a coarse outline
ROMANIA_TERM = Spatial.of(ROMANIA)
INJECT = "x'); DROP TABLE catalogue_dataset; --"

QUERIES: dict[str, Query] = {
    "all": Query(limit=1000),
    "bbox": Query(Spatial.bbox(16.69, 43.97, 24.8, 48.48), limit=1000),
    "polygon": Query(Spatial.of(ROMANIA), limit=1000),
    "contains-point": Query(Spatial.of(Point(21.23, 45.75), SpatialOp.CONTAINS), limit=1000),
    "contains-box": Query(Spatial.bbox(10, 50, 10.05, 50.05, SpatialOp.CONTAINS), limit=1000),
    "within": Query(Spatial.bbox(0, 40, 30, 60, SpatialOp.WITHIN), limit=1000),
    "type-prefix": Query(Eq("type", "RASTER"), limit=1000),
    "type-exact": Query(Eq("type", "DEM"), limit=1000),
    "vendor": Query(Eq("vendor", "NASA"), limit=1000),
    "vendor-quotes": Query(Eq("vendor", 'O\'Reilly "Maps"'), limit=1000),
    "datagroup": Query(Eq("datagroup", "group3"), limit=1000),
    "property": Query(Prop("cloud", "0"), limit=1000),
    "text": Query(Text("BANAT"), limit=1000),
    "text-wildcards": Query(Text("100%_"), limit=1000),
    "time": Query(
        TimeRange(datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 12, 31, tzinfo=UTC)),
        limit=1000,
    ),
    "time-open": Query(TimeRange(start=datetime(2023, 6, 1, tzinfo=UTC)), limit=1000),
    "and": Query(And((Spatial.of(ROMANIA), Eq("type", "DEM"), Prop("orbit", "asc"))), limit=1000),
    "or-spatial": Query(
        Or((Spatial.bbox(0, 40, 10, 50), Spatial.bbox(40, 60, 50, 70))), limit=1000
    ),
    "not-spatial": Query(And((Eq("type", "DEM"), Not(Spatial.bbox(-30, 30, 10, 70)))), limit=1000),
    "not-or": Query(Not(Or((Eq("vendor", "NASA"), Spatial.bbox(0, 30, 50, 70)))), limit=1000),
    "inject-text": Query(Text(INJECT), limit=1000),
    "inject-vendor": Query(Eq("vendor", INJECT), limit=1000),
    "inject-prop": Query(Prop("cloud", INJECT), limit=1000),
    "inject-datagroup": Query(Eq("datagroup", INJECT), limit=1000),
    "inject-location": Query(Eq("location", INJECT), limit=1000),
    "inject-id": Query(Eq("id", INJECT), limit=1000),
}
VISIBLE = {
    "admin": None,
    "public+grid": frozenset(AREAS[:2]),
    "alice": frozenset(AREAS[2:3]),
    "nobody": frozenset(),
}


def loaded_data():
    data = random_datasets(N)
    # one entry whose text holds LIKE wildcards literally, one covering Timisoara
    data.append(make_dataset(N, box(1, 1, 2, 2), title="coverage 100%_ done"))
    data.append(make_dataset(N + 1, box(20, 44, 23, 47), area=AREAS[2]))
    return data


def expected(data, query: Query, areas) -> list[str]:
    hits = [
        d
        for d in data
        if (areas is None or d.area in areas)
        and matches(query.where, d, wkt.loads(d.raster.footprint_wkt))
    ]
    return [d.id for d in sorted(hits, key=lambda d: d.name)]


class CatalogueContract:
    """Subclasses provide ``engine``: an empty engine with its schema created."""

    @pytest.fixture
    def engine(self, fresh) -> Iterator[CatalogueEngine]:
        eng = fresh("fn")
        yield eng
        eng.close()

    @pytest.fixture(scope="class")
    def loaded(self, fresh):
        """A read-only engine with the query-table entries (loaded once per engine)."""
        eng = fresh("loaded")
        data = loaded_data()
        for d in data:
            eng.put(d)
        yield eng, data
        eng.close()

    def test_put_get_round_trip(self, engine: CatalogueEngine) -> None:
        ds = random_datasets(3)[1]
        engine.put(ds)
        assert engine.get(ds.id) == ds
        assert engine.lookup(location=ds.location) == ds
        assert engine.lookup(name=(ds.fields.datagroup, ds.fields.dataset)) == ds
        assert engine.lookup(name=("nope", "nope")) is None
        with pytest.raises(DatasetNotFound):
            engine.get("0" * 32)

    def test_replace_by_id_updates_index_and_properties(self, engine: CatalogueEngine) -> None:
        ds = make_dataset(1, box(0, 0, 1, 1), properties={"a": "1"})
        engine.put(ds)
        moved = make_dataset(1, box(40, 40, 41, 41), properties={"b": "2"})
        engine.put(moved)
        assert engine.search(Query(Spatial.bbox(0, 0, 1, 1)), None).items == ()
        assert [d.id for d in engine.search(Query(Spatial.bbox(40, 40, 41, 41)), None).items] == [
            ds.id
        ]
        assert engine.search(Query(Prop("a", "1")), None).items == ()
        assert engine.get(ds.id).fields.properties == {"b": "2"}

    def test_conflicts_name_the_clash(self, engine: CatalogueEngine) -> None:
        a = make_dataset(1, box(0, 0, 1, 1))
        engine.put(a)
        same_loc = make_dataset(2, box(0, 0, 1, 1))
        same_loc = type(same_loc)(**{**same_loc.__dict__, "location": a.location})
        with pytest.raises(DatasetConflict) as err:
            engine.put(same_loc)
        assert err.value.field == "location"
        b = make_dataset(3, box(0, 0, 1, 1))
        same_name = type(b)(**{**b.__dict__, "fields": a.fields})
        with pytest.raises(DatasetConflict) as err:
            engine.put(same_name)
        assert err.value.field == "name"

    def test_put_many_is_one_transaction_naming_the_bad_item(self, engine) -> None:
        batch = random_datasets(5)
        clash = make_dataset(99, box(0, 0, 1, 1))
        clash = type(clash)(**{**clash.__dict__, "location": batch[0].location})
        with pytest.raises(DatasetConflict) as err:
            engine.put_many([*batch[:3], clash, batch[3]])
        assert err.value.index == 3
        assert engine.search(Query(), None).items == ()
        engine.put_many(batch)
        assert len(engine.search(Query(), None).items) == 5

    @pytest.mark.parametrize("qname", sorted(QUERIES))
    def test_query_table(self, loaded, qname: str) -> None:
        engine, data = loaded
        query = QUERIES[qname]
        for who, areas in VISIBLE.items():
            got = [d.id for d in engine.search(query, areas).items]
            assert got == expected(data, query, areas), who
            if qname == "all" and who == "admin":
                assert len(got) == len(data)

    def test_answers_are_not_trivial(self, loaded) -> None:
        """The query table is only meaningful if its queries select some rows, not all."""
        _, data = loaded
        for name in (
            "bbox",
            "polygon",
            "contains-point",
            "within",
            "and",
            "not-spatial",
            "not-or",
            "text-wildcards",
            "time",
            "property",
            "vendor-quotes",
        ):
            n = len(expected(data, QUERIES[name], None))
            assert 0 < n < len(data), name
        assert expected(data, QUERIES["text-wildcards"], None) == [data[N].id]

    def test_injection_leaves_the_tables(self, loaded) -> None:
        engine, data = loaded
        for name in [q for q in QUERIES if q.startswith("inject")]:
            assert engine.search(QUERIES[name], None).items == ()
        assert len(engine.search(Query(limit=1000), None).items) == len(data)

    @pytest.mark.parametrize("sort", list(SortKey))
    @pytest.mark.parametrize("descending", [False, True])
    @pytest.mark.parametrize("plan", ["or", "spatial-only"])  # spatial-only: a reused statement
    def test_paging_with_tokens(self, loaded, sort: SortKey, descending: bool, plan: str) -> None:
        engine, data = loaded
        where = Or((Spatial.of(ROMANIA), Eq("type", "DEM"))) if plan == "or" else ROMANIA_TERM
        areas = None if plan == "or" else VISIBLE["public+grid"]
        full = engine.search(Query(where, sort, descending, limit=1000), areas).items
        assert full and full[0] is not None
        pages, token = [], None
        for _ in range(100):
            page = engine.search(Query(where, sort, descending, limit=17, token=token), areas)
            pages.extend(page.items)
            token = page.token
            if token is None:
                break
        assert [d.id for d in pages] == [d.id for d in full]
        keys = [_key(d, sort) for d in full]
        assert keys == sorted(keys, reverse=descending)

    def test_foreign_or_forged_token_refused(self, loaded) -> None:
        engine, _ = loaded
        token = engine.search(Query(Eq("type", "DEM"), limit=5), None).token
        assert token
        with pytest.raises(InvalidToken):
            engine.search(Query(Eq("type", "RASTER"), limit=5, token=token), None)
        with pytest.raises(InvalidToken):
            engine.search(Query(limit=5, token="bm90IGEgdG9rZW4"), None)

    def test_remove_and_datagroups(self, engine: CatalogueEngine) -> None:
        data = random_datasets(60)
        for d in data:
            engine.put(d)
        groups = dict(engine.datagroups(frozenset(AREAS[:1])))
        want: dict[str, int] = {}
        for d in data:
            if d.area == AREAS[0]:
                want[d.fields.datagroup] = want.get(d.fields.datagroup, 0) + 1
        assert groups == want
        engine.remove(data[0].id)
        with pytest.raises(DatasetNotFound):
            engine.get(data[0].id)
        with pytest.raises(DatasetNotFound):
            engine.remove(data[0].id)
        got = [d.id for d in engine.search(QUERIES["all"], None).items]
        assert data[0].id not in got and len(got) == len(data) - 1

    def test_in_area_prefix(self, loaded) -> None:
        engine, data = loaded
        got = sorted(d.id for d in engine.in_area_prefix("/groups/grid"))
        assert got == sorted(d.id for d in data if d.area == "/groups/grid")
        assert engine.in_area_prefix("/groups/gri") == []


def _key(d, sort: SortKey):
    if sort is SortKey.NAME:
        return d.name
    if sort is SortKey.REGISTERED:
        return d.registered
    return d.fields.acquired or datetime.min.replace(tzinfo=UTC)


class TestSqliteEngine(CatalogueContract):
    @pytest.fixture(scope="class")
    def fresh(self, tmp_path_factory: pytest.TempPathFactory):
        def make(label: str) -> CatalogueEngine:
            path = tmp_path_factory.mktemp(f"cat-{label}") / "cat.db"
            eng = SqliteEngine(f"sqlite:///{path}")
            eng.create_schema()
            return eng

        return make

    @pytest.mark.parametrize("how", ["built", "reused"])
    def test_bbox_search_uses_the_rtree_not_a_scan(self, loaded, how: str) -> None:
        engine, _ = loaded
        box_ = Spatial.bbox(16.69, 43.97, 24.8, 48.48)
        if how == "built":
            query = Query(And((box_, Eq("type", "DEM"))))
            stmt = engine.search_statement(query, frozenset(AREAS[:2]), None, 10)
        else:  # the statement reused for spatial-only plans, its values bound
            stmt, params = engine.prepared_statement(
                Query(box_), frozenset(AREAS[:2]), ("scene", 7), 10
            )
            other = Query(Spatial.bbox(0, 0, 1, 1))
            assert (
                params
                and stmt is engine.prepared_statement(other, frozenset(AREAS[:1]), ("a", 1), 10)[0]
            )
            stmt = stmt.params(**params)
        sql = stmt.compile(engine.engine, compile_kwargs={"literal_binds": True})
        with engine.engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
        details = [row[-1] for row in plan]
        # the R*Tree answers the box with constraints on all four edges...
        assert any(
            "catalogue_dataset_rtree VIRTUAL TABLE INDEX 2:" in d
            and d.count("D") + d.count("B") >= 4
            for d in details
        ), details
        # ...and dataset rows are fetched by primary key: no table or index scan
        assert "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)" in details, details
        assert not any(d.startswith("SCAN d") or "USING INDEX" in d for d in details), details


class TestPostgisEngine(CatalogueContract):
    @pytest.fixture(scope="class")
    def fresh(self, postgis_database):
        def make(label: str) -> CatalogueEngine:
            eng = PostgisEngine(postgis_database(f"contract_{label}"))
            eng.drop_schema()
            eng.create_schema()
            return eng

        return make

    def test_footprint_has_a_gist_index_the_search_uses(self, loaded) -> None:
        engine, _ = loaded
        indexes = inspect(engine.engine).get_indexes("catalogue_dataset")
        assert any(ix["column_names"] == ["footprint"] for ix in indexes)
        query = Query(Spatial.bbox(16.69, 43.97, 24.8, 48.48))
        reused, params = engine.prepared_statement(query, None, None, 10)
        for stmt in (engine.search_statement(query, None, None, 10), reused.params(**params)):
            sql = stmt.compile(engine.engine, compile_kwargs={"literal_binds": True})
            with engine.engine.begin() as conn:
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "ix_catalogue_dataset_footprint" in plan, plan

    def test_search_survives_a_dropped_pooled_connection(self, engine) -> None:
        engine.put(random_datasets(1)[0])
        assert len(engine.search(Query(), None).items) == 1  # leaves a pooled connection
        with engine.engine.connect() as conn:  # the server drops every other session
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert len(engine.search(Query(), None).items) == 1


def test_engines_give_the_same_answers(tmp_path: Path, postgis_database) -> None:
    lite = SqliteEngine(f"sqlite:///{tmp_path / 'same.db'}")
    lite.create_schema()
    pg = PostgisEngine(postgis_database("same_answers"))
    pg.drop_schema()
    pg.create_schema()
    try:
        for d in random_datasets(300, seed=11):
            lite.put(d)
            pg.put(d)
        for name, query in QUERIES.items():
            for areas in VISIBLE.values():
                a = [d.id for d in lite.search(query, areas).items]
                b = [d.id for d in pg.search(query, areas).items]
                assert a == b, name
    finally:
        pg.drop_schema()
        pg.close()
        lite.close()
