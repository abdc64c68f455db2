"""Schema migrations of gproc's SQL database (Alembic; SQLite and PostgreSQL).

One schema covers every table gproc keeps (tasks, task events, meta, the VO tables
and those later features add), whichever service opens the database first.
:func:`prepare` is what the registry and the VO store call when they open a
database:

* a fresh database (no gproc table) is created at head directly from the models
  (``create_all`` + stamp: one step, fast enough for tests making hundreds of
  databases); a test checks that this gives the same schema as upgrading step by
  step from revision 0001;
* a database at head is used as it is (one query);
* an older database, or an unversioned one made by gproc 0.1.0, is brought
  forward when ``auto_upgrade`` is set (``[database] auto_upgrade``), else refused
  with :class:`SchemaOutOfDate` naming ``gproc db upgrade``;
* a database at a revision this gproc does not know (made by a newer gproc) is
  refused with :class:`SchemaTooNew`: nothing is changed in it.

Upgrades take a lock (PostgreSQL advisory lock, a lock file beside a SQLite
database) so two services starting together do not both migrate.

Revision numbers are fixed, four digits, one chain: ``0001`` the 0.1.0 schema,
``0002`` task-list indexes, ``0003`` workflows, ``0004`` catalogue, ``0005`` task
callbacks, ``0006`` and on for whatever comes next.

How to add a revision:

1. Change or add the SQLModel rows (a new models module is listed in
   ``MODEL_MODULES`` below, so fresh databases get its tables).
2. Add ``versions/vNNNN_<what>.py`` with ``revision = "NNNN"`` and
   ``down_revision`` = the previous head; write ``upgrade()`` (and ``downgrade()``)
   with explicit ``op`` calls and literal types, never by importing the models
   (they move on; a revision must keep producing the schema of its day). Use
   ``op.batch_alter_table`` for column changes so SQLite works. A starting point:
   ``alembic.autogenerate.produce_migrations`` against a database at the previous
   head prints the operations.
3. Run ``tests/integration/test_migrations.py``: it checks that a fresh database
   and a step-by-step upgrade agree, on SQLite and PostgreSQL, and that a 0.1.0
   database keeps its data.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from gproc.errors import Internal
from gproc.migrations.chain import Chain, lock, pg_lock

# Modules defining table rows; a fresh database gets every table they declare.
MODEL_MODULES = (
    "gproc.models",
    "gproc.vo_models",
    "gproc.workflow_models",
    "gproc.task_notify_models",
    "gproc.portal_models",
)
VERSION_TABLE = "alembic_version"
CHAIN = Chain(Path(__file__).parent, VERSION_TABLE)


class SchemaError(Internal):
    """The database's schema is not the one this gproc works with."""

    code = "Server.DatabaseSchema"


class SchemaOutOfDate(SchemaError):
    """Older schema, and automatic upgrades are off."""


class SchemaTooNew(SchemaError):
    """Made by a newer gproc: this one must not write to it."""


def metadata() -> MetaData:
    """The metadata of every gproc table (importing the model modules registers them)."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata


def head() -> str:
    return CHAIN.head()


def history() -> list[tuple[str, str]]:
    """(revision, first docstring line) from oldest to newest."""
    return CHAIN.history()


def current(engine: Engine) -> str | None:
    """The database's revision; None when unversioned (empty, or made by 0.1.0)."""
    return CHAIN.current(engine)


def _has_gproc_tables(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names())
    return bool(names & set(metadata().tables))


def _check_known(rev: str | None) -> None:
    if rev is not None and not CHAIN.known(rev):
        raise SchemaTooNew(
            f"the database is at schema revision {rev}, which this gproc does not know "
            f"(its newest is {head()}): it was written by a newer gproc; upgrade gproc "
            "or point [database] url at another database"
        )


def prepare(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Make the database usable at head, or refuse it (see the module docstring)."""
    if CHAIN.fast_version(engine) == head():
        return
    with lock(engine), engine.begin() as conn:
        pg_lock(conn)
        rev = CHAIN.version(conn)
        _check_known(rev)
        if rev == head():
            return
        if rev is None and not _has_gproc_tables(conn):
            metadata().create_all(conn)
            CHAIN.context(conn).stamp(CHAIN.scripts, "head")
            return
        if not auto_upgrade:
            have = f"revision {rev}" if rev else "the unversioned 0.1.0 schema"
            raise SchemaOutOfDate(
                f"the database has {have}; this gproc needs revision {head()}: run "
                "`gproc db upgrade`, or set [database] auto_upgrade = true"
            )
        command.upgrade(CHAIN.config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database forward to ``revision``; returns (before, after).

    An empty database is built by running every revision (unlike :func:`prepare`),
    so ``gproc db upgrade`` on a new database shows the full chain in its log."""
    with lock(engine), engine.begin() as conn:
        pg_lock(conn)
        before = CHAIN.version(conn)
        _check_known(before)
        command.upgrade(CHAIN.config(conn), revision)
        after = CHAIN.version(conn)
    return before, after
