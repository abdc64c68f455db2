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

from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from gproc.migrations import SchemaOutOfDate, SchemaTooNew
from gproc.migrations.chain import Chain, lock, pg_lock

VERSION_TABLE = "catalogue_alembic_version"
BASELINE = "c0001"  # the schema of catalogues made before this chain
LEGACY_TABLE = "catalogue_dataset"  # made with the others, all at once, before the chain
CHAIN = Chain(Path(__file__).parent, VERSION_TABLE)


def head() -> str:
    return CHAIN.head()


def history() -> list[tuple[str, str]]:
    """(revision, first docstring line) from oldest to newest."""
    return CHAIN.history()


def current(engine: Engine) -> str | None:
    """The catalogue's revision; None when unversioned (empty, or made before the chain)."""
    return CHAIN.current(engine)


def _check_known(rev: str | None) -> None:
    if rev is not None and not CHAIN.known(rev):
        raise SchemaTooNew(
            f"the catalogue database is at revision {rev}, which this gproc does not know "
            f"(its newest is {head()}): it was written by a newer gproc; upgrade gproc or "
            "point [catalogue] database_url at another database"
        )


def _stamp_legacy(conn: Connection) -> str | None:
    """Stamp an unversioned catalogue that has the tables; its revision after that."""
    rev = CHAIN.version(conn)
    if rev is None and inspect(conn).has_table(LEGACY_TABLE):
        CHAIN.context(conn).stamp(CHAIN.scripts, BASELINE)
        rev = BASELINE
    return rev


def prepare(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Make the catalogue database usable at head, or refuse it (see the module doc)."""
    if CHAIN.fast_version(engine) == head():
        return
    with lock(engine), engine.begin() as conn:
        pg_lock(conn)
        rev = _stamp_legacy(conn)
        _check_known(rev)
        if rev == head():
            return
        if rev is not None and not auto_upgrade:
            raise SchemaOutOfDate(
                f"the catalogue database has revision {rev}; this gproc needs {head()}: run "
                "`gproc db upgrade`, or set [database] auto_upgrade = true"
            )
        command.upgrade(CHAIN.config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the catalogue database forward to ``revision``; returns (before, after)."""
    with lock(engine), engine.begin() as conn:
        pg_lock(conn)
        before = CHAIN.version(conn)
        rev = _stamp_legacy(conn)
        _check_known(rev)
        command.upgrade(CHAIN.config(conn), revision)
        after = CHAIN.version(conn)
    return before, after
