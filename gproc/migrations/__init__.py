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

import contextlib
import fcntl
import importlib
import os
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from gproc.errors import Internal

# Modules defining table rows; a fresh database gets every table they declare.
MODEL_MODULES = (
    "gproc.models",
    "gproc.vo_models",
    "gproc.workflow_models",
    "gproc.task_notify_models",
    "gproc.portal_models",
)
VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = 0x6770726F63  # "gproc"
_LOCAL = threading.Lock()


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


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    rev = script_directory().get_current_head()
    assert rev is not None
    return rev


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def current(engine: Engine) -> str | None:
    """The database's revision; None when unversioned (empty, or made by 0.1.0)."""
    with engine.connect() as conn:
        return _version(conn)


def _version(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return MigrationContext.configure(conn).get_current_revision()


def _fast_version(engine: Engine) -> str | None:
    """The revision with one query when the version table exists (the common case)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


def _has_gproc_tables(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names())
    return bool(names & set(metadata().tables))


def _known(rev: str) -> bool:
    return rev in {s.revision for s in script_directory().walk_revisions()}


def _check_known(rev: str | None) -> None:
    if rev is not None and not _known(rev):
        raise SchemaTooNew(
            f"the database is at schema revision {rev}, which this gproc does not know "
            f"(its newest is {head()}): it was written by a newer gproc; upgrade gproc "
            "or point [database] url at another database"
        )


def prepare(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Make the database usable at head, or refuse it (see the module docstring)."""
    if _fast_version(engine) == head():
        return
    with _lock(engine), engine.begin() as conn:
        _pg_lock(conn)
        rev = _version(conn)
        _check_known(rev)
        if rev == head():
            return
        if rev is None and not _has_gproc_tables(conn):
            metadata().create_all(conn)
            MigrationContext.configure(conn).stamp(script_directory(), "head")
            return
        if not auto_upgrade:
            have = f"revision {rev}" if rev else "the unversioned 0.1.0 schema"
            raise SchemaOutOfDate(
                f"the database has {have}; this gproc needs revision {head()}: run "
                "`gproc db upgrade`, or set [database] auto_upgrade = true"
            )
        command.upgrade(_config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database forward to ``revision``; returns (before, after).

    An empty database is built by running every revision (unlike :func:`prepare`),
    so ``gproc db upgrade`` on a new database shows the full chain in its log."""
    with _lock(engine), engine.begin() as conn:
        _pg_lock(conn)
        before = _version(conn)
        _check_known(before)
        command.upgrade(_config(conn), revision)
        after = _version(conn)
    return before, after


def history() -> list[tuple[str, str]]:
    """(revision, first docstring line) from oldest to newest."""
    revs = list(script_directory().walk_revisions())
    return [(s.revision, (s.doc or "").strip().splitlines()[0] if s.doc else "") for s in revs][
        ::-1
    ]


def _pg_lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


@contextlib.contextmanager
def _lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations: in this process, and across processes on a SQLite file."""
    with _LOCAL:
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        if not db or db == ":memory:" or db.startswith("file:"):
            yield
            return
        fd = os.open(f"{db}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
