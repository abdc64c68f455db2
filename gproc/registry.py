"""The task registry: durable task rows in SQL (SQLite by default, PostgreSQL too).

State changes are compare-and-set updates (``WHERE state = <expected>``) so the
API and the tracker can never overwrite each other's transitions, and every
change appends a row to ``task_events`` in the same transaction.

SQLite settings, chosen for "an accepted task is never lost":
``journal_mode=WAL`` lets the tracker read while requests write;
``synchronous=FULL`` makes each commit durable across power loss, not only
across process crashes (NORMAL in WAL mode may lose the last commits), at the
cost of one fsync per transaction, which batching amortises;
``busy_timeout`` makes concurrent writers wait instead of failing;
``foreign_keys=ON`` for integrity.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, event, func, insert, tuple_, update
from sqlalchemy import delete as sa_delete
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, create_engine, select

from gproc import errors, migrations, task_notify
from gproc.errors import InvalidRequest
from gproc.leader import Fence, LeadershipLost
from gproc.models import MetaRow, TaskEventRow, TaskRow, utcnow
from gproc.states import TaskState, check_transition

_CHUNK = 500  # bound on IN (...) lists
_INSERT_TRIES = 5  # idempotent registration racing other writers of the same request ids
_TASKS = TaskRow.__table__  # type: ignore[attr-defined]
DEADLOCK_RETRIES = 3
_BY_IDS = sa_select(_TASKS).where(_TASKS.c.id.in_(bindparam("ids", expanding=True)))


class TaskNotFound(errors.NotFound):
    """No task of that id (``Client.UnknownTask``; ``task_id`` names it)."""

    code = "Client.UnknownTask"
    task_id: str

    def __init__(self, task_id: str) -> None:
        super().__init__(f"unknown task {task_id}", task_id=task_id)

    def __str__(self) -> str:  # the message names the task already
        return self.message


class ConcurrentChange(errors.Conflict):
    """The task changed state under us; the caller re-reads and decides again."""

    code = "Client.StateConflict"
    retryable = True


@dataclass(frozen=True)
class TaskChange:
    """One task's change in a batch: from ``expect`` to ``state`` with ``fields`` and
    the (kind, state, detail) events that record it."""

    task_id: str
    expect: TaskState
    state: TaskState
    fields: Mapping[str, Any]
    events: tuple[tuple[str, str | None, str], ...] = ()


class BadPageToken(InvalidRequest):
    """A continuation token that is malformed or belongs to another listing."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="page_token")


@dataclass(frozen=True)
class TaskPage:
    """Rows are read-only records with the columns of ``TaskRow`` as attributes, read
    without the ORM (building ORM objects cost ten times the query for 100 rows)."""

    rows: list[Row[Any]]
    next_token: str | None  # None: this is the last page
    total: int | None  # None unless asked for


@dataclass(frozen=True)
class TaskFilter:
    owner_dn: str | None = None
    owner_vo: str | None = None
    states: tuple[TaskState, ...] = ()
    tool: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def make_engine(url: str) -> Engine:
    """An engine with the durability settings above applied to every SQLite connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Registry:
    """Opening a registry prepares its schema (:func:`gproc.migrations.prepare`):
    a new database is created at head, an older one is upgraded when
    ``auto_upgrade`` is set and refused otherwise."""

    def __init__(self, url: str, *, auto_upgrade: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            migrations.prepare(self.engine, auto_upgrade=auto_upgrade)
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # ---- creation -------------------------------------------------------
    def insert_tasks(
        self, rows: Sequence[TaskRow], callbacks: Mapping[str, tuple[str, str]] | None = None
    ) -> list[TaskRow]:
        """Insert new tasks in one transaction; a (owner, client request id) already
        known returns the existing task instead (idempotent registration).
        ``callbacks`` maps a task id to its callback (url, secret)."""
        for _ in range(_INSERT_TRIES - 1):
            try:
                return self._insert_tasks(rows, callbacks or {})
            except IntegrityError:
                # a concurrent registration (another thread or replica) with one of
                # these request ids won the race: read the winners and try the rest
                continue
        return self._insert_tasks(rows, callbacks or {})

    def _insert_tasks(
        self, rows: Sequence[TaskRow], callbacks: Mapping[str, tuple[str, str]]
    ) -> list[TaskRow]:
        with self.session() as s:
            existing = self._existing_by_request(s, rows)
            out: list[TaskRow] = []
            fresh: list[TaskRow] = []
            seen: dict[tuple[str, str], TaskRow] = {}
            for row in rows:
                key = (row.owner_dn, row.client_request_id) if row.client_request_id else None
                if key and key in existing:
                    out.append(existing[key])
                elif key and key in seen:
                    out.append(seen[key])
                else:
                    fresh.append(row)
                    out.append(row)
                    if key:
                        seen[key] = row
            # one global order of the unique keys: two batches naming the same request
            # ids in other orders then wait for each other instead of deadlocking
            ordered: list[TaskRow] = sorted(fresh, key=_request_key)
            s.add_all(ordered)
            s.flush()  # the task rows are written before their events
            task_notify.subscribe(s, {r.id: callbacks[r.id] for r in fresh if r.id in callbacks})
            _add_events(s, [(r.id, "REGISTERED", r.state, r.tool) for r in fresh])
            s.commit()
            return out

    @staticmethod
    def _existing_by_request(s: Session, rows: Sequence[TaskRow]) -> dict[tuple[str, str], TaskRow]:
        keyed = [r for r in rows if r.client_request_id]
        found: dict[tuple[str, str], TaskRow] = {}
        for dn in {r.owner_dn for r in keyed}:
            ids = [r.client_request_id for r in keyed if r.owner_dn == dn]
            for chunk in _chunks(ids):
                stmt = select(TaskRow).where(
                    TaskRow.owner_dn == dn, col(TaskRow.client_request_id).in_(chunk)
                )
                for t in s.exec(stmt):
                    found[(t.owner_dn, t.client_request_id or "")] = t
        return found

    # ---- reading --------------------------------------------------------
    def get(self, task_id: str) -> TaskRow:
        with self.session() as s:
            row = s.get(TaskRow, task_id)
            if row is None:
                raise TaskNotFound(task_id)
            return row

    def get_many(self, task_ids: Iterable[str]) -> dict[str, TaskRow]:
        out: dict[str, TaskRow] = {}
        with self.session() as s:
            for chunk in _chunks(list(task_ids)):
                for row in s.exec(select(TaskRow).where(col(TaskRow.id).in_(chunk))):
                    out[row.id] = row
        return out

    def records(self, task_ids: Iterable[str]) -> dict[str, Row[Any]]:
        """Like :meth:`get_many`, as read-only records without the ORM, through one
        statement built once (status reads: building the ORM objects and the SQL
        expression cost more than the query itself)."""
        out: dict[str, Row[Any]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(task_ids)):
                for row in conn.execute(_BY_IDS, {"ids": chunk}):
                    out[row.id] = row
        return out

    def in_states(self, states: Iterable[TaskState]) -> list[TaskRow]:
        with self.session() as s:
            stmt = select(TaskRow).where(col(TaskRow.state).in_([str(x) for x in states]))
            return list(s.exec(stmt))

    def page(
        self,
        flt: TaskFilter,
        *,
        limit: int = 100,
        after: str | None = None,
        offset: int = 0,
        with_total: bool = False,
    ) -> TaskPage:
        """One page of tasks, newest first (created_at, then id, descending).

        ``after`` is the ``next_token`` of the previous page: keyset paging, so every
        page reads only its own rows through the (owner|vo|state, created_at, id)
        indexes, however deep. ``offset`` skips rows the old way (cost grows with
        it). The total is counted only when asked for (it reads every match)."""
        conds = _conditions(flt)
        if after is not None:
            created, task_id = _decode_token(after, flt)
            conds.append(tuple_(col(TaskRow.created_at), col(TaskRow.id)) < (created, task_id))
        table = _TASKS
        stmt = (
            sa_select(table)
            .where(*conds)
            .order_by(col(TaskRow.created_at).desc(), col(TaskRow.id).desc())
            .offset(offset)
            .limit(limit + 1)  # one more tells whether a next page exists
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
            total = None
            if with_total:
                count = sa_select(func.count()).select_from(table).where(*_conditions(flt))
                total = int(conn.execute(count).scalar_one())
        more = len(rows) > limit
        rows = rows[:limit]
        token = _encode_token(rows[-1], flt) if more and rows else None
        return TaskPage(rows, token, total)

    def list_tasks(
        self, flt: TaskFilter, offset: int = 0, limit: int = 100
    ) -> tuple[list[Row[Any]], int]:
        """One page by offset and the total matching (see :meth:`page`)."""
        p = self.page(flt, limit=limit, offset=offset, with_total=True)
        return p.rows, p.total or 0

    def events(self, task_id: str) -> list[TaskEventRow]:
        with self.session() as s:
            stmt = (
                select(TaskEventRow)
                .where(TaskEventRow.task_id == task_id)
                .order_by(col(TaskEventRow.id))
            )
            return list(s.exec(stmt))

    # ---- changing -------------------------------------------------------
    def transition(
        self,
        task_id: str,
        expect: TaskState,
        target: TaskState,
        *,
        kind: str | None = None,
        detail: str = "",
        **fields: Any,
    ) -> None:
        """Compare-and-set the state of one task; raises ConcurrentChange if it moved."""
        self.transition_many([task_id], expect, target, kind=kind, detail=detail, **fields)

    def transition_many(
        self,
        task_ids: Sequence[str],
        expect: TaskState,
        target: TaskState,
        *,
        kind: str | None = None,
        detail: str = "",
        **fields: Any,
    ) -> None:
        """The same transition for several tasks in one transaction: all or none."""
        if expect != target:
            check_transition(",".join(task_ids[:3]), expect, target)
        values = {"state": str(target), "updated_at": utcnow(), **fields}
        with self.session() as s:
            for chunk in _chunks(list(task_ids)):
                stmt = (
                    update(TaskRow)
                    .where(col(TaskRow.id).in_(chunk), col(TaskRow.state) == str(expect))
                    .values(**values)
                )
                if s.execute(stmt).rowcount != len(chunk):  # type: ignore[attr-defined]
                    s.rollback()
                    raise ConcurrentChange(f"tasks changed state while becoming {target}")
            _add_events(
                s, [(t, kind or str(target).upper(), str(target), detail) for t in task_ids]
            )
            s.commit()

    def transition_each(
        self,
        changes: Mapping[str, Mapping[str, Any]],
        expect: TaskState,
        target: TaskState,
        *,
        kind: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> set[str]:
        """Compare-and-set of several tasks, each with its own fields, in one transaction
        (one commit instead of one per task). Unlike ``transition_many`` a task that
        moved meanwhile is skipped, not an error; returns the ids that moved."""
        if not changes:
            return set()
        if expect != target:
            check_transition(",".join(list(changes)[:3]), expect, target)
        now = utcnow()
        moved: list[str] = []
        stmts: dict[tuple[str, ...], Any] = {}  # one statement per set of field names
        with self.session() as s:
            conn = s.connection()
            for task_id, fields in changes.items():
                keys = tuple(sorted(fields))
                if keys not in stmts:
                    stmts[keys] = (
                        update(TaskRow)
                        .where(
                            col(TaskRow.id) == bindparam("p_id"), col(TaskRow.state) == str(expect)
                        )
                        .values(
                            state=str(target),
                            updated_at=now,
                            **{k: bindparam(f"p_{k}") for k in keys},
                        )
                    )
                params = {"p_id": task_id, **{f"p_{k}": v for k, v in fields.items()}}
                if conn.execute(stmts[keys], params).rowcount:
                    moved.append(task_id)
            _add_events(
                s,
                [
                    (t, kind or str(target).upper(), str(target), (details or {}).get(t, ""))
                    for t in moved
                ],
            )
            s.commit()
        return set(moved)

    def update_fields(self, task_id: str, expect: TaskState, **fields: Any) -> bool:
        """Update fields without a state change, only if the state is still ``expect``."""
        with self.session() as s:
            stmt = (
                update(TaskRow)
                .where(col(TaskRow.id) == task_id, col(TaskRow.state) == str(expect))
                .values(updated_at=utcnow(), **fields)
            )
            ok = bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]
            s.commit()
            return ok

    def add_event(
        self, task_id: str, kind: str, detail: str = "", state: str | None = None
    ) -> None:
        with self.session() as s:
            s.add(TaskEventRow(task_id=task_id, kind=kind, state=state, detail=detail))
            s.commit()

    # ---- claims (revision 0006): who is submitting a task, until when ------------
    def claim_registered(self, task_ids: Sequence[str], owner: str, until: datetime) -> list[str]:
        """Move registered tasks to ``submitting`` with a new attempt, claimed by
        ``owner`` until ``until``; returns the ids claimed, in the order given. The
        rows are locked in id order (PostgreSQL ``FOR NO KEY UPDATE``, which does not
        wait for the key-share locks of event inserts; SQLite has one writer) and
        claimed only if still ``registered``: of two replicas submitting one task one
        claims it (hence one job), the other waits for that short transaction and
        sees the task taken. The lock is not held during the WMS call. A transaction
        PostgreSQL chose as a deadlock victim was rolled back whole: it is run again."""
        for attempt in range(DEADLOCK_RETRIES):
            try:
                claimed = self._claim_registered(task_ids, owner, until)
            except OperationalError as exc:
                if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            return [t for t in dict.fromkeys(task_ids) if t in claimed]
        raise AssertionError("unreachable")

    def _claim_registered(self, task_ids: Sequence[str], owner: str, until: datetime) -> set[str]:
        claimed: set[str] = set()
        with self.session() as s:
            conn = s.connection()
            for chunk in _chunks(sorted(set(task_ids))):
                free = list(
                    conn.execute(
                        sa_select(_TASKS.c.id)
                        .where(_TASKS.c.id.in_(chunk), _TASKS.c.state == str(TaskState.REGISTERED))
                        .order_by(_TASKS.c.id)
                        .with_for_update(key_share=True)
                    ).scalars()
                )
                if not free:
                    continue
                stmt = (
                    update(_TASKS)
                    .where(_TASKS.c.id.in_(free), _TASKS.c.state == str(TaskState.REGISTERED))
                    .values(
                        state=str(TaskState.SUBMITTING),
                        attempt=_TASKS.c.attempt + 1,
                        state_reason=None,
                        claimed_by=owner,
                        claim_until=until,
                        updated_at=utcnow(),
                    )
                    .returning(_TASKS.c.id)
                )
                claimed.update(conn.execute(stmt).scalars())
            target = str(TaskState.SUBMITTING)
            _add_events(s, [(t, target.upper(), target, "") for t in sorted(claimed)])
            s.commit()
        return claimed

    def claim_submitting(
        self, attempts: Mapping[str, int], owner: str, until: datetime, *, kind: str = "RESEND"
    ) -> list[str]:
        """Claim ``submitting`` tasks for a new attempt (the tracker's recovery, a work
        queue): rows another claimant has locked are skipped (PostgreSQL ``FOR UPDATE
        SKIP LOCKED``), the rest are compare-and-set on the attempt read by the caller
        and on the absence of a live claim, so of two trackers (an old leader still
        finishing a cycle and the new one) only one resends a task. Returns the ids
        claimed."""
        now = utcnow()
        live = (_TASKS.c.claim_until.is_not(None)) & (_TASKS.c.claim_until >= now)
        moved: list[str] = []
        with self.session() as s:
            conn = s.connection()
            for chunk in _chunks(sorted(attempts)):
                free = conn.execute(
                    sa_select(_TASKS.c.id, _TASKS.c.attempt)
                    .where(
                        _TASKS.c.id.in_(chunk),
                        _TASKS.c.state == str(TaskState.SUBMITTING),
                        ~live,
                    )
                    .order_by(_TASKS.c.id)
                    .with_for_update(skip_locked=True)
                ).all()
                for tid, attempt in free:
                    if attempt != attempts[tid]:
                        continue  # resent meanwhile: the caller's lookup is out of date
                    conn.execute(
                        update(_TASKS)
                        .where(_TASKS.c.id == tid, _TASKS.c.attempt == attempt)
                        .values(
                            attempt=attempt + 1, claimed_by=owner, claim_until=until, updated_at=now
                        )
                    )
                    moved.append(tid)
            state = str(TaskState.SUBMITTING)
            _add_events(s, [(t, kind, state, f"attempt {attempts[t] + 1}") for t in moved])
            s.commit()
        return moved

    def renew_claims(self, task_ids: Iterable[str], owner: str, until: datetime) -> int:
        """Extend ``owner``'s claims on tasks still ``submitting``; the number renewed."""
        return self._set_claims(task_ids, owner, until)

    def release_claims(self, task_ids: Iterable[str], owner: str) -> int:
        """Drop ``owner``'s claims (the submission has its outcome, whatever the state)."""
        return self._set_claims(task_ids, owner, None)

    def _set_claims(self, task_ids: Iterable[str], owner: str, until: datetime | None) -> int:
        n = 0
        with self.session() as s:
            for chunk in _chunks(sorted(set(task_ids))):
                conds = [_TASKS.c.id.in_(chunk), _TASKS.c.claimed_by == owner]
                if until is not None:
                    conds.append(_TASKS.c.state == str(TaskState.SUBMITTING))
                values = {"claim_until": until}
                if until is None:
                    values["claimed_by"] = None
                n += s.execute(update(_TASKS).where(*conds).values(**values)).rowcount  # type: ignore[attr-defined]
            s.commit()
        return n

    # ---- meta -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(MetaRow, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s:
            row = s.get(MetaRow, key) or MetaRow(key=key)
            row.value = value
            s.add(row)
            s.commit()

    # ---- batched tracker changes (one transaction per cycle) -----------------------
    def apply_changes(
        self,
        changes: Sequence[TaskChange],
        meta: Mapping[str, str] | None = None,
        *,
        fence: Fence | None = None,
    ) -> set[str]:
        """Apply the changes a tracker cycle worked out, and ``meta`` values (e.g. the
        event-log cursor), in one transaction. Each change is a compare-and-set on the
        state the cycle started from: a task that moved meanwhile is skipped with its
        events, not an error. The caller has checked every step of each change against
        the transition table. With a ``fence``, nothing is written unless its epoch is
        still the current one (:class:`LeadershipLost`). Returns the ids changed."""
        now = utcnow()
        moved: list[TaskChange] = []
        stmts: dict[tuple[str, ...], Any] = {}
        with self.session() as s:
            if fence is not None:
                _check_fence(s, fence)
            conn = s.connection()
            for ch in changes:
                keys = tuple(sorted(ch.fields))
                if keys not in stmts:
                    stmts[keys] = (
                        update(TaskRow)
                        .where(
                            col(TaskRow.id) == bindparam("p_id"),
                            col(TaskRow.state) == bindparam("p_expect"),
                        )
                        .values(
                            state=bindparam("p_state"),
                            updated_at=now,
                            **{k: bindparam(f"p_{k}") for k in keys},
                        )
                    )
                params = {
                    "p_id": ch.task_id,
                    "p_expect": str(ch.expect),
                    "p_state": str(ch.state),
                    **{f"p_{k}": v for k, v in ch.fields.items()},
                }
                if conn.execute(stmts[keys], params).rowcount:
                    moved.append(ch)
            _add_events(s, [(c.task_id, k, st, d) for c in moved for k, st, d in c.events])
            for key, value in (meta or {}).items():
                row = s.get(MetaRow, key) or MetaRow(key=key)
                row.value = value
                s.add(row)
            s.commit()
        return {c.task_id for c in moved}

    def meta_items(self, prefix: str) -> dict[str, str]:
        """Meta values whose key starts with ``prefix`` (e.g. pending WMS actions)."""
        with self.session() as s:
            stmt = select(MetaRow).where(col(MetaRow.key).startswith(prefix, autoescape=True))
            return {r.key: r.value for r in s.exec(stmt)}

    def delete_meta(self, keys: Iterable[str]) -> None:
        with self.session() as s:
            for chunk in _chunks(list(keys)):
                s.execute(sa_delete(MetaRow).where(col(MetaRow.key).in_(chunk)))
            s.commit()


def _check_fence(s: Session, fence: Fence) -> None:
    """Hold the epoch row (shared lock, to the end of the transaction: a new leader's
    raise of the epoch waits for it) and refuse a stale epoch."""
    stmt = select(MetaRow).where(col(MetaRow.key) == fence.key).with_for_update(read=True)
    row = s.exec(stmt).first()
    if row is None or row.value != fence.token:
        now = row.value if row is not None else "none"
        raise LeadershipLost(f"epoch {fence.token} of {fence.key} is over (now {now})")


def _request_key(row: TaskRow) -> tuple[str, str]:
    return (row.owner_dn, row.client_request_id or "")


def _add_events(s: Session, events: Sequence[tuple[str, str, str | None, str]]) -> None:
    """Append (task id, kind, state, detail) events as one multi-row INSERT: building
    an ORM object per event costs more than the insert itself. State changes of tasks
    with a callback are queued for delivery in the same transaction."""
    if not events:
        return
    now = utcnow()
    task_notify.enqueue(s, events, now)
    s.execute(
        insert(TaskEventRow),
        [
            {"task_id": t, "time": now, "kind": k, "state": st, "detail": d}
            for t, k, st, d in events
        ],
    )


def _filter_tag(flt: TaskFilter) -> str:
    """Binds a token to the filter it was made for (a token is not a capability:
    the filter, owner included, is applied on every page anyway)."""
    return hashlib.sha256(repr(flt).encode()).hexdigest()[:12]


def _encode_token(last: Row[Any], flt: TaskFilter) -> str:
    raw = json.dumps([last.created_at.isoformat(), last.id, _filter_tag(flt)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, flt: TaskFilter) -> tuple[datetime, str]:
    try:
        if len(token) > 200:
            raise ValueError("too long")
        created, task_id, tag = json.loads(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        )
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(task_id, str) or len(task_id) > 32:
            raise ValueError("bad fields")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadPageToken("not a page token of this service") from exc
    if tag != _filter_tag(flt):
        raise BadPageToken("the page token was made for other list criteria")
    return when, task_id


def _conditions(flt: TaskFilter) -> list[Any]:
    conds: list[Any] = []
    if flt.owner_dn is not None:
        conds.append(TaskRow.owner_dn == flt.owner_dn)
    if flt.owner_vo is not None:
        conds.append(TaskRow.owner_vo == flt.owner_vo)
    if flt.states:
        conds.append(col(TaskRow.state).in_([str(x) for x in flt.states]))
    if flt.tool is not None:
        conds.append(TaskRow.tool == flt.tool)
    if flt.created_after is not None:
        conds.append(col(TaskRow.created_at) >= flt.created_after)
    if flt.created_before is not None:
        conds.append(col(TaskRow.created_at) < flt.created_before)
    return conds


def _is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL's deadlock_detected (SQLSTATE 40P01)."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
