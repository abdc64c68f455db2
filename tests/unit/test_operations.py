"""The operations figures (gproc.operations) on SQLite and PostgreSQL: state counts,
entries per state per bucket, failures by reason, usage per VO and group, the
tracker's heartbeat; and the pure parts (windows, reason masking, pool tallies)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from gproc import operations as ops
from gproc.models import MetaRow, TaskEventRow, TaskRow
from gproc.registry import Registry
from gproc.tracker import HEARTBEAT_KEY
from gproc.workflow_models import WorkflowEventRow, WorkflowRow
from gproc.wrappers.htcondor.pool_summary import job_counts, node_slots

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = ops.Window(T0, T0 + timedelta(hours=1), 600)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh registry database (PostgreSQL: its own database on the session server)."""
    if request.param == "sqlite":
        reg = Registry(f"sqlite:///{tmp_path / 'gproc.db'}")
        yield reg.engine
        reg.close()
        return
    server_url: str = request.getfixturevalue("postgres_url")
    name = f"ops_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    reg = Registry(server_url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield reg.engine
    finally:
        reg.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _task(state: str, **fields: Any) -> TaskRow:
    base: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "owner_dn": "/CN=ann",
        "owner_vo": "testvo",
        "tool": "ndvi",
        "request_json": "{}",
        "plan_json": "{}",
        "state": state,
        "created_at": _at(10),
    }
    return TaskRow(**{**base, **fields})


def _add(engine: Engine, *rows: Any) -> None:
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as s:
        for r in rows:
            s.add(r)
            s.commit()


def _event(task: TaskRow, state: str | None, seconds: float, kind: str = "X") -> TaskEventRow:
    return TaskEventRow(task_id=task.id, time=_at(seconds), kind=kind, state=state)


def test_task_state_counts_cover_every_state(engine: Engine) -> None:
    _add(engine, _task("running"), _task("running"), _task("held"))
    counts = ops.task_state_counts(engine)
    assert counts["running"] == 2 and counts["held"] == 1
    assert counts["completed"] == 0 and len(counts) == 10


def test_state_series_counts_entries_per_bucket(engine: Engine) -> None:
    a, b = _task("completed"), _task("completed")
    _add(engine, a, b)
    _add(
        engine,
        _event(a, "registered", 30),
        _event(b, "registered", 599),
        _event(a, "running", 650),
        _event(a, "completed", 1300),
        _event(b, "completed", 1799),
        _event(b, None, 1000, kind="EXECUTE"),  # not a state change
        _event(a, "failed", -10),  # before the window
        _event(b, "failed", 3600),  # at its end (exclusive)
    )
    series = ops.state_series(engine, ops.TASK_EVENTS, WINDOW)
    assert len(series.buckets) == 6 and series.buckets[1] == _at(600)
    assert series.of("registered") == [2, 0, 0, 0, 0, 0]
    assert series.of("running") == [0, 1, 0, 0, 0, 0]
    assert series.of("completed") == [0, 0, 2, 0, 0, 0]
    assert series.of("failed") == [0] * 6
    assert ops.throughput(series) == [0, 0, 2, 0, 0, 0]


def test_workflow_series_leaves_node_events_out(engine: Engine) -> None:
    wf = WorkflowRow(
        id=uuid.uuid4().hex, name="f7", owner_dn="/CN=ann", form="json", document="{}",
        compiled_json="[]", state="running", created_at=_at(5),
    )  # fmt: skip
    _add(engine, wf)
    _add(
        engine,
        WorkflowEventRow(workflow_id=wf.id, time=_at(60), kind="RUNNING", state="running"),
        WorkflowEventRow(workflow_id=wf.id, time=_at(70), kind="NODE", state="running"),
    )
    series = ops.state_series(engine, ops.WORKFLOW_EVENTS, WINDOW, ("NODE",))
    assert series.of("running") == [1, 0, 0, 0, 0, 0]
    assert ops.state_counts(engine, ops.WORKFLOWS) == {"running": 1}
    assert ops.workflow_state_counts(engine)["completed"] == 0


def test_failure_reasons_group_one_cause_per_row(engine: Engine) -> None:
    _add(
        engine,
        _task("failed", state_reason="job exited with code 1", finished_at=_at(100)),
        _task("failed", state_reason="job exited with code 1", finished_at=_at(200)),
        _task("failed", state_reason="job vm#12.0#1700000000 is no longer known to the WMS",
              finished_at=_at(300)),
        _task("failed", state_reason="job vm#13.0#1700000001 is no longer known to the WMS",
              finished_at=_at(400)),
        _task("failed", state_reason=None, finished_at=_at(500)),
        _task("failed", state_reason="job exited with code 1", finished_at=_at(-100)),  # before
        _task("held", hold_reason="disk quota exceeded"),
    )  # fmt: skip
    got = ops.failure_reasons(engine, WINDOW.start)
    assert [(f.kind, f.reason, f.count) for f in got] == [
        ("task-failed", "job <job> is no longer known to the WMS", 2),
        ("task-failed", "job exited with code 1", 2),
        ("task-failed", "(no reason recorded)", 1),
        ("task-held", "disk quota exceeded", 1),
    ]


def test_usage_per_vo_and_group_with_wall_time(engine: Engine) -> None:
    run = {"started_at": _at(100), "finished_at": _at(190)}
    _add(
        engine,
        _task("completed", accounting_group="group_testvo.grid", **run),
        _task("completed", accounting_group="group_testvo.grid", started_at=_at(0),
              finished_at=_at(30)),
        _task("failed", accounting_group="group_testvo.grid", finished_at=_at(50)),  # never ran
        _task("running", owner_vo="othervo", accounting_group=None, started_at=_at(20)),
        _task("completed", created_at=_at(-7200), finished_at=_at(-7000)),  # long before
    )  # fmt: skip
    got = {(u.vo, u.group): u for u in ops.usage(engine, WINDOW.start)}
    grid = got[("testvo", "group_testvo.grid")]
    assert (grid.tasks, grid.completed, grid.failed) == (3, 2, 1)
    assert grid.wall_s == pytest.approx(120.0, abs=0.01)
    assert grid.cpu_s is None  # not recorded: never invented
    other = got[("othervo", None)]
    assert (other.tasks, other.completed, other.wall_s) == (1, 0, 0.0)
    assert len(got) == 2


def test_tracker_beat(engine: Engine) -> None:
    assert ops.tracker_beat(engine) is None
    at = datetime.now(UTC) - timedelta(seconds=42)
    beat = json.dumps({"at": at.timestamp(), "ms": 12.5, "errors": 1})
    _add(engine, MetaRow(key=HEARTBEAT_KEY, value=beat))
    got = ops.tracker_beat(engine)
    assert got is not None and got.cycle_ms == 12.5 and got.errors == 1
    assert 41 < got.age_s() < 60


def test_summarise_without_wms_says_why(engine: Engine) -> None:
    summary = ops.summarise(engine, None, WINDOW)
    assert summary.pool.summary is None and "no workload manager" in (summary.pool.error or "")
    assert summary.tasks_by_state["registered"] == 0


# ---- pure parts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "bucket", "now", "start", "count"),
    [
        (3600, 600, _at(3599), _at(0), 6),  # aligned: the current bucket is the last
        (3600, 600, _at(3600), _at(0), 6),  # on a boundary: the window ends there
        (3600, 600, _at(3600.5), _at(600), 6),
        (100, 600, _at(30), _at(0), 1),  # at least one bucket
        (10**9, 10, _at(0), _at(-ops.MAX_BUCKETS * 10), ops.MAX_BUCKETS),  # bounded
    ],
)
def test_window_last(seconds: int, bucket: int, now: datetime, start: datetime, count: int) -> None:
    w = ops.Window.last(seconds, bucket, now)
    assert (w.start, w.count, w.end) == (start, count, now)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("job exited with code 1", "job exited with code 1"),
        ("job vm#1.0#17 is no longer known", "job <job> is no longer known"),
        (f"task {'ab' * 16} lost", "task <id> lost"),
        ("held after 12.5 s  on\nslot", "held after <n.n> s on slot"),
        (None, "(no reason recorded)"),
        ("x" * 300, "x" * 200),
    ],
)
def test_normalise_reason(raw: str | None, masked: str) -> None:
    assert ops.normalise_reason(raw) == masked


def test_pool_tallies() -> None:
    slots = [
        {"Machine": "n1", "Name": "slot1@n1", "State": "Claimed", "Cpus": 1},
        {"Machine": "n1", "Name": "slot2@n1", "State": "Unclaimed", "Cpus": 1},
        {"Machine": "n2", "Name": "slot1@n2", "State": "Owner", "Cpus": 2},
        {"Name": "slot3@n2", "State": "Unclaimed"},
    ]
    n1, n2 = node_slots(slots)
    assert (n1.node, n1.total, n1.claimed, n1.idle, n1.other, n1.cpus) == ("n1", 2, 1, 1, 0, 2)
    assert (n2.node, n2.total, n2.claimed, n2.idle, n2.other, n2.cpus) == ("n2", 2, 0, 1, 1, 2)
    jobs = [{"JobStatus": s, "GprocInstance": i} for s, i in
            [(1, "me"), (2, "me"), (5, "other"), (2, None), (4, "me")]]  # fmt: skip
    every, mine = job_counts(jobs, "me")
    assert (every.idle, every.running, every.held, every.other, every.total) == (1, 2, 1, 1, 5)
    assert (mine.idle, mine.running, mine.held, mine.other) == (1, 1, 0, 1)
