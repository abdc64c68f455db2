"""Schema migrations of the catalogue's own database (Alembic; SQLite and PostGIS).

The catalogue keeps its tables in a database of its own (``[catalogue]
database_url``, default ``<state_dir>/catalogue.db``), so it has a chain of its own,
apart from the registry's (:mod:`gproc.migrations`): revisions ``c0001``, ``c0002``,
... in ``versions/``, recorded in the table ``catalogue_alembic_version``.
Revisions are engine-aware (SQLite: an R*Tree virtual table; PostgreSQL: PostGIS
``geometry`` with a GiST index), written with explicit ``op`` calls, never by
importing :mod:`gproc.catalogue.tables`.

:func:`prepare` is what an engine calls when it opens the database:

* empty: every revision is run (the chain is the only way the schema is made);
* unversioned but holding the catalogue's tables (made before the chain existed,
  whose schema is ``c0001``): stamped ``c0001``, then treated as below;
* older: upgraded when ``auto_upgrade`` (``[database] auto_upgrade``), else
  refused with :class:`~gproc.migrations.SchemaOutOfDate` naming ``gproc db
  upgrade``; at a revision this gproc does not know: refused, untouched.

``gproc db upgrade`` and ``gproc catalogue db upgrade`` call :func:`upgrade`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gproc.migrations import SchemaOutOfDate, SchemaTooNew, _lock, _pg_lock

VERSION_TABLE = "catalogue_alembic_version"
BASELINE = "c0001"  # the schema of catalogues made before this chain
LEGACY_TABLE = "catalogue_dataset"  # made with the others, all at once, before the chain


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    rev = script_directory().get_current_head()
    assert rev is not None
    return rev


def history() -> list[tuple[str, str]]:
    """(revision, first docstring line) from oldest to newest."""
    revs = list(script_directory().walk_revisions())
    return [(s.revision, (s.doc or "").strip().splitlines()[0]) for s in reversed(revs)]


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def current(engine: Engine) -> str | None:
    """The catalogue's revision; None when unversioned (empty, or made before the chain)."""
    with engine.connect() as conn:
        return _version(conn)


def _version(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def _fast_version(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM catalogue_alembic_version")).first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


def _check_known(rev: str | None) -> None:
    if rev is not None and rev not in {s.revision for s in script_directory().walk_revisions()}:
        raise SchemaTooNew(
            f"the catalogue database is at revision {rev}, which this gproc does not know "
            f"(its newest is {head()}): it was written by a newer gproc; upgrade gproc or "
            "point [catalogue] database_url at another database"
        )


def _stamp_legacy(conn: Connection) -> str | None:
    """Stamp an unversioned catalogue that has the tables; its revision after that."""
    rev = _version(conn)
    if rev is None and inspect(conn).has_table(LEGACY_TABLE):
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        ctx.stamp(script_directory(), BASELINE)
        rev = BASELINE
    return rev


def prepare(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Make the catalogue database usable at head, or refuse it (see the module doc)."""
    if _fast_version(engine) == head():
        return
    with _lock(engine), engine.begin() as conn:
        _pg_lock(conn)
        rev = _stamp_legacy(conn)
        _check_known(rev)
        if rev == head():
            return
        if rev is not None and not auto_upgrade:
            raise SchemaOutOfDate(
                f"the catalogue database has revision {rev}; this gproc needs {head()}: run "
                "`gproc db upgrade`, or set [database] auto_upgrade = true"
            )
        command.upgrade(_config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the catalogue database forward to ``revision``; returns (before, after)."""
    with _lock(engine), engine.begin() as conn:
        _pg_lock(conn)
        before = _version(conn)
        rev = _stamp_legacy(conn)
        _check_known(rev)
        command.upgrade(_config(conn), revision)
        after = _version(conn)
    return before, after
