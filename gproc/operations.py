"""The core's operational figures: what the operations dashboard and ``/metrics`` show.

Every figure is one grouped SQL query on the task registry's database (tasks,
task events, workflows, workflow events share it) or one WMS call, with typed
results: no wire types, no HTTP. The same code runs on SQLite and PostgreSQL;
only the two date expressions differ (:func:`_seconds_between`).

* state counts now (``GROUP BY state``): cheap enough for every scrape;
* states over time: how many tasks (workflows) *entered* each state in each bucket of
  the window, from the event history (each state change is one event carrying the
  new state); throughput is the ``completed`` row of it;
* failures by reason: failed tasks and workflows of the window and tasks held now,
  grouped by their recorded reason (job ids and numbers masked so that one cause is
  one row);
* usage per VO and accounting group: tasks, completed, failed and wall time (start
  to end of the job, as HTCondor reported them). CPU time is not recorded by the
  registry: ``cpu_s`` is None rather than a guess;
* the tracker's heartbeat (when its last cycle ended), for its lag.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, Table, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from gproc.models import MetaRow, TaskEventRow, TaskRow
from gproc.states import TaskState
from gproc.tracker import HEARTBEAT_KEY, HEARTBEAT_S
from gproc.workflow_models import WorkflowEventRow, WorkflowRow
from gproc.workflows.states import WorkflowState
from gproc.wrappers.base import PoolSummary, WmsError, WorkloadManager

TASKS: Table = TaskRow.__table__  # type: ignore[attr-defined]
TASK_EVENTS: Table = TaskEventRow.__table__  # type: ignore[attr-defined]
WORKFLOWS: Table = WorkflowRow.__table__  # type: ignore[attr-defined]
WORKFLOW_EVENTS: Table = WorkflowEventRow.__table__  # type: ignore[attr-defined]
META: Table = MetaRow.__table__  # type: ignore[attr-defined]
MAX_BUCKETS = 500
_UNIX_JULIAN_DAY = 2440587.5  # julianday('1970-01-01')
__all__ = ["HEARTBEAT_S", "Summary", "Window", "summarise"]
MAX_REASONS = 20
_MASKS = (
    (re.compile(r"\S+#\d+\.\d+#\d+"), "<job>"),  # global job ids
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),  # task / workflow ids
    (re.compile(r"(?<![A-Za-z])\d+\.\d+(?![\d.])"), "<n.n>"),  # cluster.proc, seconds
)


@dataclass(frozen=True)
class Window:
    """A time window cut into equal buckets (the last one may end after ``end``)."""

    start: datetime
    end: datetime
    bucket_s: int

    @classmethod
    def last(cls, seconds: int, bucket_s: int, now: datetime | None = None) -> Window:
        """The ``seconds`` before ``now``, its start aligned on a bucket boundary."""
        if bucket_s <= 0 or seconds <= 0:
            raise ValueError("window and bucket must be positive")
        end = now or datetime.now(UTC)
        n = max(1, min(MAX_BUCKETS, -(-seconds // bucket_s)))
        stamp = end.timestamp()
        epoch = -(-int(stamp) // bucket_s) * bucket_s  # the bucket boundary at or after now
        if epoch < stamp:  # a fraction of a second past a boundary
            epoch += bucket_s
        start = datetime.fromtimestamp(epoch - n * bucket_s, UTC)
        return cls(start, end, bucket_s)

    @property
    def count(self) -> int:
        return max(1, math.ceil((self.end - self.start).total_seconds() / self.bucket_s))

    def starts(self) -> list[datetime]:
        return [self.start + timedelta(seconds=i * self.bucket_s) for i in range(self.count)]


@dataclass(frozen=True)
class StateSeries:
    """Entries into each state per bucket: ``counts[state][i]`` for ``buckets[i]``."""

    buckets: tuple[datetime, ...]
    counts: dict[str, list[int]]

    def of(self, state: str) -> list[int]:
        return self.counts.get(state, [0] * len(self.buckets))


@dataclass(frozen=True)
class FailureReason:
    kind: str  # task-failed | task-held | workflow-failed
    reason: str
    count: int


@dataclass(frozen=True)
class Usage:
    vo: str | None
    group: str | None  # the HTCondor accounting group
    tasks: int
    completed: int
    failed: int
    wall_s: float  # sum over finished jobs of (end - start)
    cpu_s: float | None = None  # not recorded by the registry


@dataclass(frozen=True)
class TrackerBeat:
    at: datetime  # when the last recorded cycle ended
    cycle_ms: float
    errors: int

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.at.timestamp())


@dataclass(frozen=True)
class PoolView:
    """The pool summary, or why it could not be read."""

    summary: PoolSummary | None
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    """Everything the dashboard shows except the services' health (probed by the front)."""

    generated_at: datetime
    window: Window
    pool: PoolView
    tasks_by_state: dict[str, int]
    workflows_by_state: dict[str, int]
    tasks_over_time: StateSeries
    workflows_over_time: StateSeries
    failures: list[FailureReason]
    usage: list[Usage]
    tracker: TrackerBeat | None = None
    notes: list[str] = field(default_factory=list)


# ---- counts now ---------------------------------------------------------------------
def state_counts(engine: Engine, table: Table) -> dict[str, int]:
    """Rows per state (one ``GROUP BY``)."""
    stmt = select(table.c.state, func.count()).group_by(table.c.state)
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(stmt)}


def task_state_counts(engine: Engine) -> dict[str, int]:
    """Tasks per state, every state present (zero when none)."""
    counts = state_counts(engine, TASKS)
    return {str(s): counts.get(str(s), 0) for s in TaskState}


def workflow_state_counts(engine: Engine) -> dict[str, int]:
    """Workflows per state, every state present."""
    counts = state_counts(engine, WORKFLOWS)
    return {str(s): counts.get(str(s), 0) for s in WorkflowState}


def tracker_beat(engine: Engine) -> TrackerBeat | None:
    """The tracker's last heartbeat, None if no tracker ever ran on this database."""
    stmt = select(META.c.value).where(META.c.key == HEARTBEAT_KEY)
    with engine.connect() as conn:
        raw = conn.execute(stmt).scalar()
    if not raw:
        return None
    try:
        data = json.loads(raw)
        at = datetime.fromtimestamp(float(data["at"]), UTC)
        return TrackerBeat(at, float(data.get("ms", 0.0)), int(data.get("errors", 0)))
    except (ValueError, KeyError, TypeError):
        return None


# ---- over time ----------------------------------------------------------------------
def _seconds_between(engine: Engine, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, in this database's dialect."""
    if engine.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def state_series(
    engine: Engine, events: Table, window: Window, exclude_kinds: Sequence[str] = ()
) -> StateSeries:
    """Entries into each state per bucket of ``window`` (one grouped query); events of
    ``exclude_kinds`` (a workflow's ``NODE`` events carry node states) are left out."""
    start = bindparam("w_start", window.start, type_=DateTime)
    if engine.dialect.name == "sqlite":  # floor() is optional in SQLite: truncate (>= 0);
        # the window's start as a Julian day, once, not per row
        day0 = window.start.timestamp() / 86400 + _UNIX_JULIAN_DAY
        per_day = 86400 / window.bucket_s
        bucket = cast((func.julianday(events.c.time) - day0) * per_day, Integer)
    else:
        offset = _seconds_between(engine, events.c.time, start)
        bucket = cast(func.floor(offset / window.bucket_s), Integer)
    stmt = (
        select(bucket.label("b"), events.c.state, func.count())
        .where(
            events.c.time >= start,
            events.c.time < bindparam("w_end", window.end, type_=DateTime),
            events.c.state.is_not(None),
            events.c.kind.not_in(exclude_kinds) if exclude_kinds else events.c.state.is_not(None),
        )
        .group_by(bucket, events.c.state)
    )
    starts = window.starts()
    counts: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for b, state, n in conn.execute(stmt):
            if b is None or not 0 <= int(b) < len(starts):
                continue
            counts.setdefault(str(state), [0] * len(starts))[int(b)] += int(n)
    return StateSeries(tuple(starts), counts)


# ---- failures -----------------------------------------------------------------------
def normalise_reason(reason: str | None) -> str:
    """One row per cause: ids and numbers that differ from job to job masked."""
    text = " ".join((reason or "(no reason recorded)").split())
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:200]


def failure_reasons(engine: Engine, since: datetime) -> list[FailureReason]:
    """Failed tasks and workflows finished since ``since``, and tasks held now, by reason."""
    t, w = TASKS, WORKFLOWS
    after = bindparam("since", since, type_=DateTime)
    queries = {
        "task-failed": select(t.c.state_reason, func.count())
        .where(t.c.state == "failed", t.c.finished_at >= after)
        .group_by(t.c.state_reason),
        "task-held": select(t.c.hold_reason, func.count())
        .where(t.c.state == "held")
        .group_by(t.c.hold_reason),
        "workflow-failed": select(w.c.state_reason, func.count())
        .where(w.c.state == "failed", w.c.finished_at >= after)
        .group_by(w.c.state_reason),
    }
    merged: Counter[tuple[str, str]] = Counter()
    with engine.connect() as conn:
        for kind, stmt in queries.items():
            for reason, n in conn.execute(stmt):
                merged[(kind, normalise_reason(reason))] += int(n)
    top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REASONS]
    return [FailureReason(k, r, n) for (k, r), n in top]


# ---- accounting ---------------------------------------------------------------------
def usage(engine: Engine, since: datetime) -> list[Usage]:
    """Tasks registered or finished since ``since``, per VO and accounting group."""
    t = TASKS
    after = bindparam("since", since, type_=DateTime)
    ran = and_(t.c.started_at.is_not(None), t.c.finished_at.is_not(None))
    wall = case((ran, _seconds_between(engine, t.c.finished_at, t.c.started_at)), else_=0.0)
    stmt = (
        select(
            t.c.owner_vo,
            t.c.accounting_group,
            func.count(),
            func.sum(case((t.c.state == "completed", 1), else_=0)),
            func.sum(case((t.c.state == "failed", 1), else_=0)),
            func.sum(wall),
        )
        .where(or_(t.c.created_at >= after, t.c.finished_at >= after))
        .group_by(t.c.owner_vo, t.c.accounting_group)
    )
    with engine.connect() as conn:
        rows = [
            Usage(vo, grp, int(n), int(ok or 0), int(bad or 0), round(max(0.0, float(s or 0)), 3))
            for vo, grp, n, ok, bad, s in conn.execute(stmt)
        ]
    return sorted(rows, key=lambda u: (-u.tasks, u.vo or "", u.group or ""))


# ---- the pool -----------------------------------------------------------------------
def pool_view(wms: WorkloadManager | None) -> PoolView:
    if wms is None:
        return PoolView(None, "no workload manager configured")
    try:
        return PoolView(wms.pool_summary())
    except WmsError as exc:
        return PoolView(None, str(exc)[:500])


def summarise(
    engine: Engine,
    wms: WorkloadManager | None,
    window: Window,
) -> Summary:
    """The dashboard's figures for ``window`` (a handful of grouped queries, one
    collector query and one schedd query)."""
    notes = [
        "states over time count entries into each state per bucket",
        "cpu_s is not recorded by the registry (None); wall_s is job start to end",
    ]
    return Summary(
        generated_at=datetime.now(UTC),
        window=window,
        pool=pool_view(wms),
        tasks_by_state=task_state_counts(engine),
        workflows_by_state=workflow_state_counts(engine),
        tasks_over_time=state_series(engine, TASK_EVENTS, window),
        workflows_over_time=state_series(engine, WORKFLOW_EVENTS, window, ("NODE",)),
        failures=failure_reasons(engine, window.start),
        usage=usage(engine, window.start),
        tracker=tracker_beat(engine),
        notes=notes,
    )


def throughput(series: StateSeries, states: Sequence[str] = ("completed",)) -> list[int]:
    """Tasks reaching ``states`` per bucket."""
    out = [0] * len(series.buckets)
    for s in states:
        for i, n in enumerate(series.of(s)):
            out[i] += n
    return out
