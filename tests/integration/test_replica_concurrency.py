"""Several replicas on one PostgreSQL registry: every state change safe under
concurrency. Each "replica" is a TaskService with its own engine (own connections,
own process memory) and its own name, as separate ``gproc serve`` processes have;
they share the database, the task directories and the WMS instance, on the real
pool and a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gproc.domain import TaskRequest
from gproc.leader import PgLeadership, current_leader
from gproc.lifecycle import TaskService
from gproc.models import utcnow
from gproc.registry import Registry
from gproc.states import TaskState
from gproc.tracker import Tracker
from gproc.wrappers.base import JobSpec, SubmittedJob
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.core import ALICE
from tests.fixtures.replicas import schedd_jobs, task_row
from tests.integration.connector_cases import CASES

S = TaskState
pytestmark = pytest.mark.usefixtures("pool")


class GatedWMS(HTCondorWMS):
    """The real WMS, whose submissions wait for ``gate`` first: a slow upload."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.entered = threading.Event()

    def submit(self, specs: Sequence[JobSpec]) -> list[SubmittedJob]:
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().submit(specs)


def _requests(tmp: Path, n: int, prefix: str | None = None) -> list[TaskRequest]:
    case = next(c for c in CASES if c.tool == "ndvi")
    tmp.mkdir(parents=True, exist_ok=True)
    tool_request = case.request(case.make_inputs(tmp))
    return [
        TaskRequest(tool_request, ALICE, client_request_id=f"{prefix}-{i}" if prefix else None)
        for i in range(n)
    ]


def _jobs_per_attempt(instance: str) -> Counter[tuple[str, int]]:
    return Counter((j.task_id, j.attempt) for j in schedd_jobs(instance).values())


def test_overlapping_submits_from_two_replicas_make_one_job_per_task(
    replicas: Callable[..., TaskService], tmp_path: Path
) -> None:
    a, b = replicas("a"), replicas("b")
    ids = [v.id for v in a.register(_requests(tmp_path / "in", 24))]
    # the same tasks, in other orders and overlapping batches, at the same moment
    batches = [(a, ids[:16]), (b, ids[8:]), (a, ids[::-1]), (b, ids[4:20])]
    start = threading.Barrier(len(batches))

    def submit(job: tuple[TaskService, list[str]]) -> list[str]:
        svc, batch = job
        start.wait(10)
        return [str(r.task.state) for r in svc.submit(batch) if r.task]

    with ThreadPoolExecutor(len(batches)) as ex:
        states = list(ex.map(submit, batches))  # no call fails: a lost claim is no error
    assert all(set(s) <= {"submitting", "submitted"} for s in states), states
    rows = a.registry.get_many(ids)
    assert {r.state for r in rows.values()} == {"submitted"}
    assert {r.attempt for r in rows.values()} == {1}
    assert all(r.claimed_by is None for r in rows.values())
    per_attempt = _jobs_per_attempt(replicas.instance)  # type: ignore[attr-defined]
    assert sorted(per_attempt) == sorted((t, 1) for t in ids)
    assert set(per_attempt.values()) == {1}, per_attempt


def test_the_leaders_recovery_leaves_another_replicas_submission_alone(
    replicas: Callable[..., TaskService], tmp_path: Path
) -> None:
    """Replica A is still uploading when B's tracker (just become leader: it looks
    every ``submitting`` task up) runs; without a durable claim B would find no job,
    submit the task itself, and A's job would then be a second one."""
    a = replicas("a", GatedWMS)
    b = replicas("b", submit_grace_s=0)
    (view,) = a.register(_requests(tmp_path / "in", 1))
    worker = threading.Thread(target=a.submit, args=([view.id],))
    worker.start()
    assert a.wms.entered.wait(30)  # type: ignore[attr-defined]
    try:
        row = b.registry.get(view.id)
        assert row.state == S.SUBMITTING and row.claimed_by == "a"
        stats = Tracker(b, submit_grace_s=0).cycle()
        assert stats.recovered == 0, stats
    finally:
        a.wms.gate.set()  # type: ignore[attr-defined]
        worker.join(60)
    row = b.registry.get(view.id)
    assert row.state == S.SUBMITTED and row.attempt == 1 and row.claimed_by is None
    assert _jobs_per_attempt(replicas.instance) == {(view.id, 1): 1}  # type: ignore[attr-defined]


def test_a_dead_replicas_claim_is_recovered_once_its_lease_runs_out(
    replicas: Callable[..., TaskService], tmp_path: Path
) -> None:
    """A replica that recorded the intent and died before the schedd heard of it:
    the claim blocks recovery until the lease ends, then the lookup finds no job of
    that attempt and exactly one new attempt is submitted, by one of two trackers."""
    a = replicas("a")
    (view,) = a.register(_requests(tmp_path / "in", 1))
    lease_end = utcnow() + timedelta(seconds=2)
    assert a.registry.claim_registered([view.id], "dead-replica", lease_end) == [view.id]
    b, c = replicas("b"), replicas("c")
    assert Tracker(b, submit_grace_s=0).cycle().recovered == 0  # the claim is live
    time.sleep(2.2)
    trackers = [Tracker(b, submit_grace_s=0), Tracker(c, submit_grace_s=0)]
    start = threading.Barrier(2)

    def cycle(t: Tracker) -> int:
        start.wait(10)
        return t.cycle().recovered

    with ThreadPoolExecutor(2) as ex:
        recovered = sorted(ex.map(cycle, trackers))
    assert recovered == [0, 1]  # one of the two resent it, the other found it claimed
    row = a.registry.get(view.id)
    assert row.state == S.SUBMITTED and row.attempt == 2
    assert _jobs_per_attempt(replicas.instance) == {(view.id, 2): 1}  # type: ignore[attr-defined]


def test_registration_by_request_id_is_idempotent_across_replicas(
    replicas: Callable[..., TaskService], tmp_path: Path
) -> None:
    """Four replicas register the same 40 request ids at once, in different orders:
    every call succeeds, each request id has one task, every caller gets it, and the
    inputs the losers staged are removed."""
    cores = [replicas(n) for n in "abcd"]
    reqs = _requests(tmp_path / "in", 40, prefix=f"portal{uuid.uuid4().hex[:6]}")
    orders = [reqs, reqs[::-1], reqs[20:] + reqs[:20], reqs[::2] + reqs[1::2]]
    start = threading.Barrier(len(cores))

    def register(i: int) -> dict[str, str]:
        start.wait(10)
        views = cores[i].register(orders[i])
        return {str(r.client_request_id): v.id for r, v in zip(orders[i], views, strict=True)}

    with ThreadPoolExecutor(len(cores)) as ex:
        answers = list(ex.map(register, range(len(cores))))
    assert all(ans == answers[0] for ans in answers)
    assert len(set(answers[0].values())) == 40
    with cores[0].registry.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM tasks")).scalar_one()
    assert n == 40
    staged = {p.name for p in (tmp_path / "state" / "tasks").iterdir()}
    assert staged == set(answers[0].values())  # the losers' staged inputs are gone


def test_racing_registrations_of_the_same_request_ids_never_deadlock(
    pg_database: Callable[[], str],
) -> None:
    """Two replicas insert 200 tasks with the same request ids in opposite orders at
    the same moment, ten times: on PostgreSQL each insert waits for the other's key
    it meets first, so unordered inserts deadlock (about one round in two before the
    keys were sorted, each a refused registration); now both succeed and agree."""
    url = pg_database()
    regs = [Registry(url), Registry(url)]
    try:
        for rnd in range(10):
            keys = [f"k{rnd}-{i:03d}" for i in range(200)]
            start = threading.Barrier(2)

            def insert(
                i: int, keys: list[str] = keys, start: threading.Barrier = start
            ) -> list[str]:
                ordered = keys if i == 0 else keys[::-1]
                rows = [task_row(k) for k in ordered]
                start.wait(10)
                stored = regs[i].insert_tasks(rows)
                return [r.id for r in sorted(stored, key=lambda r: r.client_request_id or "")]

            with ThreadPoolExecutor(2) as ex:
                first, second = ex.map(insert, range(2))
            assert first == second and len(set(first)) == 200
    finally:
        for r in regs:
            r.close()


def test_one_tracker_leads_and_another_takes_over_when_its_connection_is_lost(
    pg_database: Callable[[], str],
) -> None:
    url = pg_database()
    engines = [create_engine(url) for _ in range(3)]
    Registry(url).close()  # the schema (meta table)
    leads = [PgLeadership(e, f"r{i}") for i, e in enumerate(engines)]
    try:
        assert [x.ensure() for x in leads] == [True, False, False]
        assert [x.ensure() for x in leads] == [True, False, False]  # held, not re-asked
        holder = current_leader(engines[1])
        assert holder is not None and holder["replica"] == "r0"
        with engines[2].connect() as conn:  # the leader's session ends under it
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder["pid"]})
            conn.commit()
        assert leads[0].ensure() is False and not leads[0].is_leader  # it stops tracking
        assert [leads[1].ensure(), leads[2].ensure()] == [True, False]
        holder = current_leader(engines[0])
        assert holder is not None and holder["replica"] == "r1"
        leads[1].release()
        assert leads[2].ensure() is True
    finally:
        for x in leads:
            x.release()
        for e in engines:
            e.dispose()
