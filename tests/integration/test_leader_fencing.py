"""Elected duties across replicas on one PostgreSQL: fencing of a deposed tracker
leader, one workflow tracker, one proxy renewer, and the directories every replica
must share. Real PostgreSQL; the mid-cycle case runs a real job on the pool."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from gproc.domain import TaskRequest
from gproc.leader import (
    RENEWAL,
    TRACKER,
    WORKFLOWS,
    LeadershipLost,
    PgLeadership,
    Role,
    SharedStoreMismatch,
    check_shared_directory,
    current_leader,
)
from gproc.lifecycle import TaskService
from gproc.registry import Registry, TaskChange
from gproc.security.delegation import DelegationStore
from gproc.security.pki import TestPKI
from gproc.services.renewal import build_renewer
from gproc.services.soap.app import build_context, build_validator
from gproc.settings import Settings
from gproc.states import TaskState
from gproc.tracker import CURSOR_KEY, Tracker
from gproc.workflows.app import build_notifier, build_workflow_service, build_workflow_tracker
from gproc.workflows.tracker import WorkflowTracker
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.core import ALICE
from tests.fixtures.replicas import schedd_jobs, task_row
from tests.integration.connector_cases import CASES

S = TaskState


def _terminate(engine: Engine, role: Role) -> str:
    """End the lock session of ``role``'s leader under it (a dropped connection)."""
    holder = current_leader(engine, role)
    assert holder is not None, f"nobody leads {role.name}"
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder["pid"]})
        conn.commit()
    return str(holder["replica"])


def _wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.02)
    return time.monotonic() - started


# ---- fencing ------------------------------------------------------------------------
def test_a_stale_epoch_commits_nothing(pg_database: Callable[[], str]) -> None:
    url = pg_database()
    reg = Registry(url)
    a, b = PgLeadership(reg.engine, "a"), PgLeadership(reg.engine, "b")
    try:
        row = task_row("fence-1")
        reg.insert_tasks([row])
        before = [(e.kind, e.state) for e in reg.events(row.id)]
        assert a.ensure() and a.fence is not None
        stale = a.fence
        step = TaskChange(row.id, S.REGISTERED, S.CANCELLED, {}, (("CANCEL", "cancelled", ""),))
        _terminate(reg.engine, TRACKER)  # the lock goes once the backend has ended
        _wait(b.ensure, 5, "b never took the lead")
        assert b.fence is not None and b.fence.token != stale.token
        with pytest.raises(LeadershipLost, match="is over"):
            reg.apply_changes([step], {CURSOR_KEY: "stale"}, fence=stale)
        assert reg.get(row.id).state == S.REGISTERED  # nothing of it was written
        assert reg.get_meta(CURSOR_KEY) is None
        assert [(e.kind, e.state) for e in reg.events(row.id)] == before
        assert reg.apply_changes([step], {CURSOR_KEY: "new"}, fence=b.fence) == {row.id}
        assert reg.get_meta(CURSOR_KEY) == "new"
    finally:
        a.release()
        b.release()
        reg.close()


class PausedWMS(HTCondorWMS):
    """The real WMS; with ``pause`` set, a cycle waits for ``gate`` after reading the
    event log: a leader stalled in the middle of its cycle."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pause = False
        self.gate = threading.Event()
        self.entered = threading.Event()

    def read_events(self, cursor: str | None) -> Any:
        out = super().read_events(cursor)
        if self.pause:
            self.entered.set()
            assert self.gate.wait(180), "the test never opened the gate"
        return out


def test_a_leader_deposed_mid_cycle_writes_nothing_and_the_new_leader_finishes(
    replicas: Callable[..., TaskService], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Leader A has read the event log when its lock session ends; B takes the lead
    and tracks the task to the end; then A's stalled cycle goes on with what it read.
    Without fencing, A's late write puts back its older event-log cursor (B reads the
    same events again) and records its stale view; with it, A's cycle writes nothing
    and A stops leading."""
    a, b = replicas("a", PausedWMS), replicas("b")
    case = next(c for c in CASES if c.tool == "ndvi")
    (tmp_path / "in").mkdir()
    (view,) = a.register([TaskRequest(case.request(case.make_inputs(tmp_path / "in")), ALICE)])
    a.submit([view.id])
    ta = Tracker(a, interval_s=0.5, leadership=PgLeadership(a.registry.engine, "a"))
    tb = Tracker(b, interval_s=0.5, leadership=PgLeadership(b.registry.engine, "b"))
    try:
        ta._safe_cycle()  # A leads and follows the job for a while
        assert ta.leadership.is_leader
        instance = replicas.instance  # type: ignore[attr-defined]
        _wait(
            lambda: any(j.status == 4 for j in schedd_jobs(instance).values()),
            90,
            "the job never ended",
        )  # its events wait in the log for A's next cycle
        a.wms.pause = True  # type: ignore[attr-defined]
        stalled = threading.Thread(target=ta._safe_cycle)
        stalled.start()
        assert a.wms.entered.wait(30)  # type: ignore[attr-defined]
        assert _terminate(a.registry.engine, TRACKER) == "a"

        def b_finishes() -> bool:
            tb._safe_cycle()
            return b.registry.get(view.id).state in (S.COMPLETED, S.FAILED)

        _wait(b_finishes, 120, "the new leader did not finish the task")
        assert tb.leadership.is_leader
        after_b = (
            b.registry.get(view.id).state,
            b.registry.get_meta(CURSOR_KEY),
            [(e.kind, e.state) for e in b.registry.events(view.id)],
        )
        with caplog.at_level(logging.WARNING, logger="gproc.tracker"):
            a.wms.gate.set()  # type: ignore[attr-defined]
            stalled.join(60)
        assert not stalled.is_alive()
        assert after_b[0] == S.COMPLETED
        assert (
            a.registry.get(view.id).state,
            a.registry.get_meta(CURSOR_KEY),
            [(e.kind, e.state) for e in a.registry.events(view.id)],
        ) == after_b  # the deposed leader's late cycle changed nothing
        assert not ta.leadership.is_leader
        assert "tracker cycle dropped" in caplog.text
        jobs = [j for j in schedd_jobs(replicas.instance).values()]  # type: ignore[attr-defined]
        assert [(j.task_id, j.attempt) for j in jobs] == [(view.id, 1)]  # one job, run once
    finally:
        a.wms.gate.set()  # type: ignore[attr-defined]
        ta.leadership.release()
        tb.leadership.release()


# ---- one workflow tracker, one renewer -----------------------------------------------
def _settings(tmp_path: Path, url: str, name: str) -> Settings:
    settings = Settings(state_dir=tmp_path / "state")
    settings.database.url = url
    settings.tracker.replica_name = name
    settings.workflow.interval_s = 0.25
    return settings


@pytest.fixture
def workflow_trackers(
    pg_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[list[WorkflowTracker], Engine]]:
    url = pg_database()
    trackers = []
    for name in ("w0", "w1"):
        settings = _settings(tmp_path, url, name)
        trackers.append(build_workflow_tracker(build_workflow_service(settings), settings))
    for t in trackers:
        t.start()
    try:
        yield trackers, trackers[0].svc.store.engine
    finally:
        for t in trackers:
            t.stop()
            t.svc.store.engine.dispose()


def test_replicas_elect_one_workflow_tracker_and_another_takes_over(
    workflow_trackers: tuple[list[WorkflowTracker], Engine], tmp_path: Path
) -> None:
    trackers, engine = workflow_trackers
    _wait(lambda: current_leader(engine, WORKFLOWS) is not None, 5, "no workflow tracker leads")
    time.sleep(1.0)  # four intervals: the follower keeps asking, never cycles
    leading = [t for t in trackers if t.leadership.is_leader]
    assert len(leading) == 1
    leader, follower = leading[0], next(t for t in trackers if t is not leading[0])
    assert leader._cycles >= 3 and follower._cycles == 0
    notifiers = [build_notifier(t.svc, _settings(tmp_path, "", "n"), t) for t in trackers]
    assert [n.gate() for n in notifiers if n.gate] == [t is leader for t in trackers]
    gone = _terminate(engine, WORKFLOWS)
    assert gone == leader.leadership.name
    gap = _wait(lambda: follower.leadership.is_leader, 5, "nobody took the lead")
    assert gap <= 2 * follower.interval_s + 0.25  # two intervals (and the lock round trip)
    _wait(lambda: follower._cycles > 0, 2, "the new leader does not cycle")
    _wait(lambda: not leader.leadership.is_leader, 2, "the old leader still thinks it leads")
    holder = current_leader(engine, WORKFLOWS)
    assert holder is not None and holder["replica"] == follower.leadership.name


def test_replicas_elect_one_proxy_renewer(
    pg_database: Callable[[], str], test_pki: TestPKI, tmp_path: Path
) -> None:
    url = pg_database()
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    registries, renewers = [], []
    for name in ("p0", "p1", "p2"):
        settings = _settings(tmp_path, url, name)
        settings.service.cert, settings.service.key = test_pki.host_cert, test_pki.host_key
        settings.service.ca_dir = test_pki.ca_dir
        settings.myproxy.host, settings.myproxy.renew_interval_s = "127.0.0.1", 0.25
        reg = Registry(url)
        store = DelegationStore(tmp_path / "shared-delegations", validator)
        registries.append(reg)
        renewers.append(build_renewer(settings, store, validator, registry=reg))
    try:
        for r in renewers:
            r.start()
        _wait(lambda: current_leader(registries[0].engine, RENEWAL) is not None, 5, "no renewer")
        time.sleep(0.6)
        assert sum(r.leadership.is_leader for r in renewers) == 1
        lead = next(r for r in renewers if r.leadership.is_leader)
        assert _terminate(registries[0].engine, RENEWAL) == lead.leadership.name
        _wait(
            lambda: sum(r.leadership.is_leader for r in renewers if r is not lead) == 1,
            5,
            "no renewer took over",
        )
    finally:
        for r in renewers:
            r.stop()
        for reg in registries:
            reg.close()


# ---- shared directories ---------------------------------------------------------------
def test_replicas_must_share_the_delegation_directory(
    pg_database: Callable[[], str], test_pki: TestPKI, tmp_path: Path
) -> None:
    """Two SOAP replicas on one database and one delegation directory start; a third
    with a directory of its own is refused at start-up, naming both ids."""
    url = pg_database()
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    shared = tmp_path / "shared"

    def context(delegations: Path) -> Any:
        settings = _settings(tmp_path, url, uuid.uuid4().hex[:6])
        settings.service.delegation_dir = delegations
        wms = HTCondorWMS(instance="x", collector="127.0.0.1:1", sandbox_root=tmp_path / "sb")
        return build_context(settings, validator, wms=wms)

    made = [context(shared), context(shared)]
    try:
        with pytest.raises(SharedStoreMismatch, match="replicas must share it") as info:
            made.append(context(tmp_path / "own"))
        assert info.value.code == "Server.SharedStoreMismatch"
        marker = (shared / ".gproc-store-id").read_text().strip()
        assert marker in str(info.value) and "missing" in str(info.value)
    finally:
        for gp in made:
            gp.core.registry.close()


def test_on_sqlite_a_delegation_directory_is_not_checked(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        check_shared_directory(reg.engine, "delegations", tmp_path / "d")
        assert not (tmp_path / "d").exists()  # one node: nothing to agree on
    finally:
        reg.close()
