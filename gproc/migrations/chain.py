"""One Alembic chain of revisions: its scripts, head, history and the revision a
database is at. gproc has two (the registry's and the catalogue's, each with its own
version table); both read them through this, and serialise their upgrades with
:func:`lock` and :func:`pg_lock`."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

_PG_LOCK_KEY = 0x6770726F63  # "gproc"
_LOCAL = threading.Lock()
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Chain:
    """The revisions under ``location``, recorded in ``version_table``."""

    def __init__(self, location: Path, version_table: str) -> None:
        if not _TABLE.match(version_table):
            raise ValueError(f"not a table name: {version_table!r}")
        self.location = location
        self.version_table = version_table

    @cached_property
    def scripts(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    def config(self, conn: Connection | None = None) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(self.location))
        if conn is not None:
            cfg.attributes["connection"] = conn
        return cfg

    def head(self) -> str:
        rev = self.scripts.get_current_head()
        assert rev is not None
        return rev

    def history(self) -> list[tuple[str, str]]:
        """(revision, first docstring line) from oldest to newest."""
        revs = list(self.scripts.walk_revisions())
        return [(s.revision, (s.doc or "").strip().splitlines()[0] if s.doc else "") for s in revs][
            ::-1
        ]

    def known(self, rev: str) -> bool:
        return rev in {s.revision for s in self.scripts.walk_revisions()}

    def context(self, conn: Connection) -> MigrationContext:
        return MigrationContext.configure(conn, opts={"version_table": self.version_table})

    def version(self, conn: Connection) -> str | None:
        """The revision; None when unversioned (no version table)."""
        if not inspect(conn).has_table(self.version_table):
            return None
        return self.context(conn).get_current_revision()

    def current(self, engine: Engine) -> str | None:
        with engine.connect() as conn:
            return self.version(conn)

    def fast_version(self, engine: Engine) -> str | None:
        """The revision with one query when the version table exists (the common case)."""
        try:
            with engine.connect() as conn:
                sql = f"SELECT version_num FROM {self.version_table}"  # noqa: S608 - checked name
                row = conn.execute(text(sql)).first()
        except DBAPIError:
            return None
        return None if row is None else str(row[0])


def pg_lock(conn: Connection) -> None:
    """On PostgreSQL, one migration at a time across processes (until the commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


@contextlib.contextmanager
def lock(engine: Engine) -> Iterator[None]:
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
