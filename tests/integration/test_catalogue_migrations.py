"""The catalogue database's own migration chain (gproc.migrations.catalogue), on
SQLite (R*Tree) and PostGIS (GiST): the chain builds the schema the catalogue made
for itself before it had migrations, such a catalogue is upgraded in place by
``gproc catalogue db upgrade`` / ``gproc db upgrade`` with nothing lost, and a
catalogue of a newer gproc is refused untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect, text

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.engines.postgis import PostgisEngine
from gproc.catalogue.engines.sqlite import RTREE, SqliteEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.query import Query, Spatial
from gproc.catalogue.service import quicklook_location
from gproc.migrations import SchemaOutOfDate, SchemaTooNew
from gproc.migrations import catalogue as migrations
from gproc.services.cli import main
from gproc.settings import get_settings
from tests.catalogue_data import random_datasets

PLACES = """{"type": "FeatureCollection", "features": [{"type": "Feature",
 "properties": {"name": "Banat", "kind": "region", "country": "Romania"},
 "geometry": {"type": "Polygon", "coordinates": [[[20, 45], [22, 45], [22, 46], [20, 46],
 [20, 45]]]}}]}"""


def _legacy(eng: SqlEngine) -> None:
    """The schema as the catalogue created it before its chain: create_all + side index."""
    with eng.engine.begin() as conn:
        if isinstance(eng, PostgisEngine):
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.metadata.create_all(eng.engine)
    if isinstance(eng, SqliteEngine):
        with eng.engine.begin() as conn:
            conn.execute(
                text(f"CREATE VIRTUAL TABLE {RTREE} USING rtree(rid, minx, maxx, miny, maxy)")
            )


def _schema(eng: SqlEngine) -> dict[str, Any]:
    """Tables, columns, keys and indexes (the version table left out)."""
    insp = inspect(eng.engine)
    out: dict[str, Any] = {}
    for name in sorted(set(insp.get_table_names()) - {migrations.VERSION_TABLE}):
        if name.startswith(RTREE + "_") or name == "spatial_ref_sys":
            continue  # the R*Tree's shadow tables; PostGIS's own table
        out[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "fks": [
                (f["constrained_columns"], f["referred_table"]) for f in insp.get_foreign_keys(name)
            ],
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(name)
            ),
        }
    with eng.engine.connect() as conn:
        if isinstance(eng, SqliteEngine):
            out["rtree"] = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": RTREE}
            ).scalar()
        else:
            out["gist"] = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                {"n": "ix_catalogue_dataset_footprint"},
            ).scalar()
    return out


@pytest.fixture(params=["sqlite", "postgis"])
def make(request, tmp_path: Path) -> Iterator[Callable[[str], SqlEngine]]:
    made: list[SqlEngine] = []

    def new(label: str) -> SqlEngine:
        if request.param == "sqlite":
            eng: SqlEngine = SqliteEngine(f"sqlite:///{tmp_path / label}.db")
        else:
            postgis_database = request.getfixturevalue("postgis_database")
            eng = PostgisEngine(postgis_database(f"catmig_{label}"))
            eng.drop_schema()
        made.append(eng)
        return eng

    yield new
    for eng in made:
        if isinstance(eng, PostgisEngine):
            eng.drop_schema()
        eng.close()


def _cli(eng: SqlEngine, *args: str, db_url: str | None = None) -> Result:
    """``gproc ARGS`` in this process (the command's code, without a second start-up)."""
    env = {"GPROC_CATALOGUE__DATABASE_URL": eng.engine.url.render_as_string(False)}
    if db_url:
        env["GPROC_DATABASE__URL"] = db_url
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_chain_builds_the_schema_the_catalogue_made_before_it(make) -> None:
    chained, legacy = make("chained"), make("legacy")
    chained.create_schema()
    assert migrations.current(chained.engine) == migrations.head()
    _legacy(legacy)
    assert migrations.current(legacy.engine) is None
    assert _schema(chained) == _schema(legacy)
    assert _schema(chained)["catalogue_dataset"]["indexes"]  # compared something


def test_existing_catalogue_is_upgraded_in_place_with_nothing_lost(make, tmp_path: Path) -> None:
    eng = make("existing")
    _legacy(eng)
    data = random_datasets(40, seed=3)
    local_ql = replace(data[0], quicklook="/var/lib/gproc/quicklooks/x.png")  # before c0002
    in_gw = replace(data[1], quicklook=quicklook_location(data[1].location))
    data[:2] = [local_ql, in_gw]
    eng.put_many(data)
    places = tmp_path / "places.geojson"
    places.write_text(PLACES)
    Gazetteer(eng).load_geojson(places)
    probe = Query(Spatial.bbox(-60, -40, 60, 40), limit=1000)
    before = [d.id for d in eng.search(probe, None).items]
    assert 0 < len(before) < len(data)

    with pytest.raises(SchemaOutOfDate, match="gproc db upgrade"):
        eng.create_schema()  # without auto_upgrade an older catalogue is refused, untouched
    assert migrations.current(eng.engine) is None

    current = _cli(eng, "catalogue", "db", "current")
    assert current.exit_code == 1 and "unversioned (needs upgrade" in current.output, current.output
    up = _cli(eng, "catalogue", "db", "upgrade")
    assert up.exit_code == 0, up.output
    assert f"unversioned -> {migrations.head()}" in up.output
    assert migrations.current(eng.engine) == migrations.head()

    eng.create_schema()  # what opening the catalogue does: nothing more to do
    assert [d.id for d in eng.search(probe, None).items] == before
    assert eng.get(local_ql.id) == replace(local_ql, quicklook=None)  # c0002: no local files
    assert all(eng.get(d.id) == d for d in data[1:])
    assert Gazetteer(eng).resolve("Banat").kind == "region"
    # `gproc db upgrade` reaches the catalogue too (the registry has its own chain)
    again = _cli(eng, "db", "upgrade", db_url=f"sqlite:///{tmp_path / 'gproc.db'}")
    assert again.exit_code == 0, again.output
    assert f"(catalogue): already at {migrations.head()}" in again.output


def test_catalogue_of_a_newer_gproc_is_refused_untouched(make) -> None:
    eng = make("newer")
    eng.create_schema()
    eng.put(random_datasets(1)[0])
    with eng.engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'c9999'"))
    with pytest.raises(SchemaTooNew, match="c9999"):
        eng.create_schema()
    up = _cli(eng, "catalogue", "db", "upgrade")
    assert up.exit_code == 2 and "newer gproc" in up.output
    assert migrations.current(eng.engine) == "c9999"
    assert len(eng.search(Query(), None).items) == 1


def test_history_lists_the_chain() -> None:
    chain = migrations.history()
    assert chain[0][0] == migrations.BASELINE and chain[-1][0] == migrations.head()


def test_older_catalogue_is_upgraded_on_open_when_configured(make) -> None:
    eng = make("auto")
    _legacy(eng)
    eng.put(random_datasets(1)[0])
    eng.create_schema(auto_upgrade=True)  # [database] auto_upgrade = true
    assert migrations.current(eng.engine) == migrations.head()
    assert len(eng.search(Query(), None).items) == 1
