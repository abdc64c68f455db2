"""Schema migrations on SQLite and a real PostgreSQL server: fresh databases at head,
step-by-step upgrades giving the same schema, a 0.1.0 database upgraded in place
without loss, newer revisions refused."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, select, text
from sqlalchemy.engine import Engine, make_url

from gproc import migrations
from gproc.registry import Registry, make_engine
from gproc.vo import VoStore

DUMP = Path(__file__).parents[1] / "data" / "gproc-0.1.0"
GPROC = Path(sys.executable).parent / "gproc"
TABLES_010 = {
    "tasks",
    "task_events",
    "gproc_meta",
    "vo_vos",
    "vo_groups",
    "vo_roles",
    "vo_members",
    "vo_memberships",
    "vo_audit",
}
ALICE = "/C=RO/O=GPROC/CN=Alice"
BOB = "/C=RO/O=GPROC/CN=Bob O'Neil"
CA = "/C=RO/O=GPROC/CN=GPROC Test CA"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of URLs of new, empty databases on the engine of the test."""
    made: list[str] = []
    admin: Engine | None = None
    if request.param == "postgresql":
        admin = create_engine(request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT")

    def make() -> str:
        name = f"gproc_mig_{uuid.uuid4().hex[:12]}"
        if admin is None:
            return f"sqlite:///{tmp_path / name}.db"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(str(admin.url)).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _schema(url: str) -> dict[str, Any]:
    """Everything about the tables that matters to gproc, order-independent."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        out: dict[str, Any] = {}
        for t in sorted(insp.get_table_names()):
            out[t] = {
                "columns": sorted(
                    (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)
                ),
                "pk": sorted(insp.get_pk_constraint(t)["constrained_columns"]),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in insp.get_indexes(t)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)
                ),
                "fks": sorted(
                    (
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                    )
                    for f in insp.get_foreign_keys(t)
                ),
            }
        return out
    finally:
        engine.dispose()


def _load_010(url: str, *, only: set[str] = TABLES_010) -> None:
    """The checked-in 0.1.0 database: its DDL for this engine, then its rows."""
    engine = create_engine(url)
    dialect = engine.dialect.name
    ddl = (DUMP / f"schema.{dialect}.sql").read_text().split(";\n")
    rows = (DUMP / "data.sql").read_text().split(";\n")

    def wanted(stmt: str) -> bool:
        words = stmt.split()
        target = words[words.index("ON") + 1] if "INDEX" in words[:3] else words[2]
        return target in only

    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("SET TIME ZONE 'UTC'"))  # the dump's times are UTC
        for stmt in ddl + rows:
            if stmt.strip() and wanted(stmt.strip()):
                conn.exec_driver_sql(stmt)
        if dialect == "postgresql":  # as pg_dump would: sequences past the ids in use
            for table in sorted(
                only
                & {
                    "task_events",
                    "vo_groups",
                    "vo_roles",
                    "vo_members",
                    "vo_memberships",
                    "vo_audit",
                }
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    engine.dispose()


# columns later revisions added to 0.1.0's tables; upgraded rows have them empty
ADDED_COLUMNS = {"tasks": ("claimed_by", "claim_until")}  # 0006


def _without_added(snap: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    for table, columns in ADDED_COLUMNS.items():
        for row in snap.get(table, []):
            assert all(row.pop(c) is None for c in columns), row
    return snap


def _snapshot(url: str, tables: set[str]) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine, only=sorted(tables))
    out = {}
    with engine.connect() as conn:
        for name in sorted(tables):
            table = meta.tables[name]
            stmt = select(table).order_by(*table.primary_key.columns)
            out[name] = [dict(r._mapping) for r in conn.execute(stmt)]
    engine.dispose()
    return out


def _gproc_db(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPROC_DATABASE__URL": url}
    env.pop("GPROC_CONFIG", None)
    return subprocess.run(
        [str(GPROC), "db", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_fresh_database_equals_step_by_step_upgrade(new_db: Callable[[], str]) -> None:
    fresh, stepped = new_db(), new_db()
    Registry(fresh).close()  # create_all + stamp head
    engine = create_engine(stepped)
    chain = [rev for rev, _doc in migrations.history()]
    assert chain[:2] == ["0001", "0002"]
    for rev in chain:  # one revision at a time, as deployments meet them
        assert migrations.upgrade(engine, rev)[1] == rev
    assert _schema(fresh) == _schema(stepped)
    with engine.connect() as conn:  # and the models say the same as the migrations
        assert compare_metadata(MigrationContext.configure(conn), migrations.metadata()) == []
    engine.dispose()
    assert migrations.current(make_engine(fresh)) == migrations.head()


def test_database_from_0_1_0_is_upgraded_in_place_with_nothing_lost(
    new_db: Callable[[], str],
) -> None:
    url = new_db()
    _load_010(url)
    before = _snapshot(url, TABLES_010)
    assert len(before["tasks"]) == 6 and len(before["vo_members"]) == 2

    with pytest.raises(migrations.SchemaOutOfDate, match="gproc db upgrade"):
        Registry(url)  # without auto_upgrade an older schema is refused, untouched
    assert migrations.current(make_engine(url)) is None

    current = _gproc_db(url, "current")
    assert current.returncode == 1 and "unversioned" in current.stdout
    up = _gproc_db(url, "upgrade")
    assert up.returncode == 0, up.stderr
    assert f"unversioned -> {migrations.head()}" in up.stdout

    assert _without_added(_snapshot(url, TABLES_010)) == before
    names = {i["name"] for i in inspect(create_engine(url)).get_indexes("tasks")}
    assert {"ix_tasks_owner_created", "ix_tasks_owner_state_created"} <= names

    reg = Registry(url)  # the registry and the VO store work on the upgraded data
    done = reg.get(uuid.UUID(int=1).hex)
    assert (done.state, done.exit_code, done.job_id) == ("completed", 0, "42.0")
    assert [e.kind for e in reg.events(done.id)][-2:] == ["EXECUTE", "COMPLETED"]
    assert reg.get_meta("tracker.event_log_cursor") == "inode=12:offset=3456"
    reg.add_event(done.id, "NOTE", "after upgrade")
    reg.close()
    vo = VoStore(url)
    alice = vo.lookup("eo", ALICE, CA)
    bob = vo.lookup("eo", BOB, CA)
    assert (
        alice is not None and alice.holds("/eo", "VO-Admin") and alice.holds("/eo/sar", "analyst")
    )
    assert bob is not None and bob.suspended
    vo.close()


def test_0_1_0_database_without_vo_tables_gains_them(new_db: Callable[[], str]) -> None:
    url = new_db()
    task_tables = {"tasks", "task_events", "gproc_meta"}
    _load_010(url, only=task_tables)
    before = _snapshot(url, task_tables)
    Registry(url, auto_upgrade=True).close()
    assert set(inspect(create_engine(url)).get_table_names()) >= TABLES_010
    assert _without_added(_snapshot(url, task_tables)) == before


def test_older_revision_is_upgraded_only_when_configured(new_db: Callable[[], str]) -> None:
    url = new_db()
    migrations.upgrade(create_engine(url), "0001")
    with pytest.raises(migrations.SchemaOutOfDate, match="revision 0001"):
        Registry(url)
    with pytest.raises(migrations.SchemaOutOfDate):
        VoStore(url)
    Registry(url, auto_upgrade=True).close()
    assert migrations.current(make_engine(url)) == migrations.head()


def test_newer_revision_is_refused_and_left_alone(new_db: Callable[[], str]) -> None:
    url = new_db()
    Registry(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for make in (lambda: Registry(url, auto_upgrade=True), lambda: VoStore(url)):
        with pytest.raises(migrations.SchemaTooNew, match="9999.*newer gproc"):
            make()
    up = _gproc_db(url, "upgrade")
    assert up.returncode == 2 and "newer gproc" in up.stderr and "Traceback" not in up.stderr
    assert migrations.current(engine) == "9999"
    engine.dispose()


def test_services_opening_one_new_database_together_stamp_it_once(
    new_db: Callable[[], str],
) -> None:
    """Separate processes (the lock file on SQLite, an advisory lock on PostgreSQL)."""
    url = new_db()
    code = (
        "import sys; from gproc.registry import Registry; from gproc.vo import VoStore; "
        "(Registry if sys.argv[2] == 'r' else VoStore)(sys.argv[1]).close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url, "rv"[i % 2]], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
            (migrations.head(),)
        ]


def test_commands_upgrade_at_start_only_when_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrations.upgrade(create_engine(url), "0001")
    env = {**os.environ, "GPROC_STATE_DIR": str(tmp_path), "GPROC_DATABASE__URL": url}
    env.pop("GPROC_CONFIG", None)

    def task_list(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(GPROC), "task", "list", "--json"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = task_list()
    assert refused.returncode == 2 and "gproc db upgrade" in refused.stderr
    assert migrations.current(make_engine(url)) == "0001"
    ok = task_list(GPROC_DATABASE__AUTO_UPGRADE="true")
    assert ok.returncode == 0, ok.stderr
    assert migrations.current(make_engine(url)) == migrations.head()
