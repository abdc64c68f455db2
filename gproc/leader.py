"""Several replicas on one database: who tracks, and who is submitting what.

**Leadership.** Exactly one tracker may run at a time (it follows one event-log
cursor, stages out, recovers interrupted submissions). On PostgreSQL the leader is
whoever holds a session-level advisory lock on a dedicated connection
(:class:`PgLeadership`): every replica asks for it once per tracker interval; the
lock goes with the holder's session, so a leader that dies (even ``kill -9``) or
loses its connection frees it at once and the next replica to ask, within one
interval, takes over. A leader checks its connection at the start of every cycle
and stops tracking when it is gone. Who leads is logged (``gproc.tracker.leader``), shown
by :func:`current_leader` (the lock's holder, from ``pg_locks``) and recorded in
the meta row ``tracker.leader``. On SQLite (one node) the tracker runs in-process as
before (:class:`SoleLeader`).

**Claims.** A replica submitting tasks marks them durably (``tasks.claimed_by`` and
the lease ``claim_until``, see ``Registry.claim_registered``); :class:`ClaimKeeper`
renews the lease while the WMS call runs, so a long submission is never taken for
a dead one, and the tracker's recovery leaves claimed tasks alone until the lease
runs out.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from gproc.models import MetaRow, utcnow

LEADER_LOGGER = "gproc.tracker.leader"  # leadership changes, at INFO
log = logging.getLogger(LEADER_LOGGER)
LEADER_KEY = 0x67707472  # "gptr": the tracker's advisory lock (one bigint key)
LEADER_META = "tracker.leader"
APP_PREFIX = "gproc-tracker:"  # application_name of the leader's lock connection


def default_replica_name() -> str:
    """``host:pid``: unique among live replicas, readable in logs and claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership(Protocol):
    """Asked by the tracker before each cycle."""

    name: str

    @property
    def is_leader(self) -> bool: ...

    def ensure(self) -> bool:
        """True if this replica leads now (taking the lead when it is free)."""
        ...

    def release(self) -> None: ...


class SoleLeader:
    """One node (SQLite): the in-process tracker always leads."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or default_replica_name()

    @property
    def is_leader(self) -> bool:
        return True

    def ensure(self) -> bool:
        return True

    def release(self) -> None:
        return None


class PgLeadership:
    """Leadership as a PostgreSQL session-level advisory lock on a connection of its
    own (autocommit: it never holds a transaction open)."""

    def __init__(self, engine: Engine, name: str | None = None, key: int = LEADER_KEY) -> None:
        self.engine = engine
        self.name = name or default_replica_name()
        self.key = key
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    def ensure(self) -> bool:
        with self._lock:
            if self._conn is not None:
                if self._alive(self._conn):
                    return True
                log.warning("replica %s lost its database connection: stops tracking", self.name)
                self._drop()
                return False
            return self._try_acquire()

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(DBAPIError):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._drop()
                log.info("replica %s gave up the tracker lead", self.name)

    def _try_acquire(self) -> bool:
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            log.warning("replica %s cannot reach the database: %s", self.name, exc)
            return False
        try:
            app = text("SELECT set_config('application_name', :n, false)")
            conn.execute(app, {"n": _app(self)})
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
        except DBAPIError as exc:
            log.warning("replica %s: leadership query failed: %s", self.name, exc)
            got = False
        if not got:
            conn.invalidate()  # back to nothing: the next ask opens a fresh session
            conn.close()
            return False
        self._conn = conn
        since = utcnow()
        record = {"replica": self.name, "since": since.isoformat(), "pid": os.getpid()}
        _write_meta(self.engine, LEADER_META, json.dumps(record))
        log.info("replica %s leads the tracker since %s", self.name, since.isoformat())
        return True

    @staticmethod
    def _alive(conn: Connection) -> bool:
        try:
            conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except DBAPIError:
                pass


def _app(lead: PgLeadership) -> str:
    return (APP_PREFIX + lead.name)[:63]


def _write_meta(engine: Engine, key: str, value: str) -> None:
    with Session(engine) as s:
        row = s.get(MetaRow, key) or MetaRow(key=key)
        row.value = value
        s.add(row)
        s.commit()


def leadership_for(engine: Engine, name: str | None = None) -> Leadership:
    """PostgreSQL: the advisory lock; anything else (SQLite): the sole in-process leader."""
    if engine.dialect.name == "postgresql":
        return PgLeadership(engine, name)
    return SoleLeader(name)


def current_leader(engine: Engine, key: int = LEADER_KEY) -> dict[str, Any] | None:
    """Who holds the tracker lock now (PostgreSQL): ``replica``, backend ``pid`` and
    ``since`` (the lock connection's start); None when nobody leads."""
    if engine.dialect.name != "postgresql":
        return None
    q = text(
        "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"
    )
    with engine.connect() as conn:
        row = conn.execute(q, {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).first()
    if row is None:
        return None
    name = str(row[0] or "")
    return {
        "replica": name[len(APP_PREFIX) :] if name.startswith(APP_PREFIX) else name,
        "pid": int(row[1]),
        "since": row[2].isoformat() if isinstance(row[2], datetime) else str(row[2]),
    }


class _Registry(Protocol):
    def renew_claims(self, task_ids: Iterable[str], owner: str, until: datetime) -> int: ...


class ClaimKeeper:
    """Renews this replica's claims every third of the lease while submissions run
    (one daemon thread, started on first use). Also the process's own "in flight"
    set, for readers that ask which tasks this process is submitting."""

    def __init__(self, registry: _Registry, owner: str, lease_s: float) -> None:
        self.registry = registry
        self.owner = owner
        self.lease = timedelta(seconds=lease_s)
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def until(self) -> datetime:
        return utcnow() + self.lease

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    @contextmanager
    def hold(self, task_ids: Iterable[str]) -> Iterator[None]:
        ids = list(task_ids)
        with self._lock:
            self._held.update(ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="gproc-claims", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.subtract(ids)
                self._held += Counter()  # drop zero counts

    def _loop(self) -> None:
        period = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            self._wake.wait(period)
            ids = self.held()
            if not ids:
                continue
            try:
                self.registry.renew_claims(ids, self.owner, self.until())
            except Exception:  # noqa: BLE001 - retried next period; the lease is the bound
                log.exception("renewing the claims of %d tasks failed", len(ids))
