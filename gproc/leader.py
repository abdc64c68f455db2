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
before (:class:`SoleLeader`). The same lock, under another key, elects one workflow
tracker and one proxy renewer (:data:`ROLES`).

**Fencing.** A leader can lose its lock in the middle of a cycle (its connection
dropped, a pause longer than the lease of its TCP session) while another replica
takes over. Each taking of the lead raises the role's epoch (meta row
``<role>.epoch``); the tracker's writes carry the epoch they were worked out under
(:class:`Fence`) and the registry commits them only while it is still the current
one (:class:`LeadershipLost` otherwise), so a deposed leader's late cycle changes
nothing.

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
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from gproc import errors
from gproc.models import MetaRow, utcnow

LEADER_LOGGER = "gproc.tracker.leader"  # leadership changes, at INFO
log = logging.getLogger(LEADER_LOGGER)
LEADER_KEY = 0x67707472  # "gptr": the tracker's advisory lock (one bigint key)
LEADER_META = "tracker.leader"
APP_PREFIX = "gproc-tracker:"  # application_name of the leader's lock connection


@dataclass(frozen=True)
class Role:
    """One elected duty: its advisory-lock key and meta rows."""

    name: str
    key: int

    @property
    def meta(self) -> str:
        return f"{self.name}.leader"

    @property
    def epoch(self) -> str:
        return f"{self.name}.epoch"

    @property
    def app_prefix(self) -> str:
        return APP_PREFIX if self.name == "tracker" else f"gproc-{self.name}:"


TRACKER = Role("tracker", LEADER_KEY)
WORKFLOWS = Role("workflows", 0x67707766)  # "gpwf": the workflow tracker and its callbacks
RENEWAL = Role("renewal", 0x6770726E)  # "gprn": the renewer of delegated proxies
ROLES = {r.name: r for r in (TRACKER, WORKFLOWS, RENEWAL)}


@dataclass(frozen=True)
class Fence:
    """The epoch a leader's writes were worked out under (meta row ``key``)."""

    key: str
    token: str


class LeadershipLost(errors.Unavailable):
    """Another replica took the lead since this one's cycle began: its writes are
    dropped (the new leader works them out again)."""

    code = "Server.LeadershipLost"


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

    @property
    def fence(self) -> Fence | None:
        """What this leader's writes must carry; None where no fencing is needed."""
        ...


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

    @property
    def fence(self) -> Fence | None:
        return None  # one node: nobody else can take over


class PgLeadership:
    """Leadership as a PostgreSQL session-level advisory lock on a connection of its
    own (autocommit: it never holds a transaction open)."""

    def __init__(self, engine: Engine, name: str | None = None, role: Role = TRACKER) -> None:
        self.engine = engine
        self.name = name or default_replica_name()
        self.role = role
        self.key = role.key
        self._conn: Connection | None = None
        self._token: str | None = None
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    @property
    def fence(self) -> Fence | None:
        token = self._token
        return Fence(self.role.epoch, token) if token is not None and self.is_leader else None

    def ensure(self) -> bool:
        with self._lock:
            if self._conn is not None:
                if self._alive(self._conn):
                    return True
                log.warning(
                    "replica %s lost its database connection: stops leading %s",
                    self.name,
                    self.role.name,
                )
                self._drop()
                return False
            return self._try_acquire()

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(DBAPIError):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._drop()
                log.info("replica %s gave up the %s lead", self.name, self.role.name)

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
        try:
            self._token = _bump_epoch(conn, self.role.epoch)
        except DBAPIError as exc:  # no epoch, no fencing: do not lead this time
            log.warning("replica %s: epoch not raised: %s", self.name, exc)
            conn.invalidate()
            conn.close()
            return False
        self._conn = conn
        since = utcnow()
        record = {
            "replica": self.name,
            "since": since.isoformat(),
            "pid": os.getpid(),
            "epoch": self._token,
        }
        _write_meta(self.engine, self.role.meta, json.dumps(record))
        log.info(
            "replica %s leads the %s since %s (epoch %s)",
            self.name,
            self.role.name,
            since.isoformat(),
            self._token,
        )
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
    return (lead.role.app_prefix + lead.name)[:63]


def _bump_epoch(conn: Connection, key: str) -> str:
    """Raise the role's epoch by one (a row lock: it waits for a fenced write of the
    previous leader in flight) and return it."""
    q = text(
        "INSERT INTO gproc_meta (key, value) VALUES (:k, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(CAST(gproc_meta.value AS BIGINT) + 1 AS TEXT) RETURNING value"
    )
    return str(conn.execute(q, {"k": key}).scalar_one())


def _write_meta(engine: Engine, key: str, value: str) -> None:
    with Session(engine) as s:
        row = s.get(MetaRow, key) or MetaRow(key=key)
        row.value = value
        s.add(row)
        s.commit()


def leadership_for(engine: Engine, name: str | None = None, role: Role = TRACKER) -> Leadership:
    """PostgreSQL: the advisory lock; anything else (SQLite): the sole in-process leader."""
    if engine.dialect.name == "postgresql":
        return PgLeadership(engine, name, role)
    return SoleLeader(name)


def current_leader(engine: Engine, role: Role = TRACKER) -> dict[str, Any] | None:
    """Who holds the tracker lock now (PostgreSQL): ``replica``, backend ``pid`` and
    ``since`` (the lock connection's start); None when nobody leads."""
    if engine.dialect.name != "postgresql":
        return None
    key, prefix = role.key, role.app_prefix
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
        "replica": name[len(prefix) :] if name.startswith(prefix) else name,
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


# ---- stores every replica must see -------------------------------------------------
STORE_MARKER = ".gproc-store-id"
MARKER_WAIT_S = 5.0


class SharedStoreMismatch(errors.GprocError):
    """Replicas on one database do not share a directory they must share (e.g.
    ``[service] delegation_dir``): what one replica stored another could not see."""

    code = "Server.SharedStoreMismatch"


def check_shared_directory(engine: Engine, role: str, directory: Path) -> None:
    """On PostgreSQL, refuse to serve unless ``directory`` is the one every replica
    of this database uses for ``role``: the first replica to start leaves a random id
    in the directory (``.gproc-store-id``) and in the meta row ``shared.<role>``; the
    others must find the same id there. SQLite (one node): nothing to check."""
    if engine.dialect.name != "postgresql":
        return
    marker = directory / STORE_MARKER
    mine = _read_marker(marker)
    offer = mine or secrets.token_hex(16)
    key = f"shared.{role}"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO gproc_meta (key, value) VALUES (:k, :v) ON CONFLICT (key) DO NOTHING"
            ),
            {"k": key, "v": offer},
        )
        agreed = str(
            conn.execute(
                text("SELECT value FROM gproc_meta WHERE key = :k"), {"k": key}
            ).scalar_one()
        )
    if mine is None and agreed == offer:
        _write_marker(marker, agreed)  # this replica came first
        return
    deadline = time.monotonic() + MARKER_WAIT_S
    while mine is None and time.monotonic() < deadline:  # the first one is writing it
        time.sleep(0.1)
        mine = _read_marker(marker)
    if mine != agreed:
        raise SharedStoreMismatch(
            f"{directory} is not the {role} directory the other replicas of this database "
            f"use (its {STORE_MARKER} is {mine or 'missing'}, the database expects {agreed}): "
            "replicas must share it (the same path on shared storage)"
        )


def _read_marker(marker: Path) -> str | None:
    try:
        return marker.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_marker(marker: Path, value: str) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):  # another replica on the same directory wrote it
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
