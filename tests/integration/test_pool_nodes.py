"""A pool of several execute nodes: jobs of one batch spread over nodes; a node killed
mid-job makes HTCondor reschedule, gproc reports it and the task completes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from gproc.lifecycle import TaskService
from gproc.states import TaskState
from gproc.tracker import Tracker
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.core import requests_for, wait_for
from tests.fixtures.pool import PoolNodes
from tests.integration.connector_cases import CASES

S = TaskState
MakeCore = Callable[..., TaskService]
BATCH = 4  # = the slots of the two nodes
LEASE_S = 20  # how long the schedd waits for a lost node before rescheduling
RESCHEDULED = ("JOB_RECONNECT_FAILED", "JOB_EVICTED", "SHADOW_EXCEPTION")


class SlowJobs(HTCondorWMS):
    """The real WMS whose jobs run ``delay`` seconds longer: a wrapper sleeps, then runs
    the real executable (shipped beside it), so a test can catch them running."""

    delay = 0

    def _description(self, spec: Any) -> dict[str, str]:
        desc = super()._description(spec)
        if not self.delay:
            return desc
        real = Path(desc["executable"])
        wrapper = self.sandbox_root / f"slow-{self.delay}-{real.name}.sh"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(
            f'#!/bin/sh\nsleep {self.delay}\nchmod +x ./{real.name}\nexec ./{real.name} "$@"\n'
        )
        wrapper.chmod(0o755)
        desc["executable"] = str(wrapper)
        inputs = [p for p in desc.get("transfer_input_files", "").split(",") if p]
        desc["transfer_input_files"] = ",".join([*inputs, str(real)])
        return desc


@pytest.fixture
def short_lease() -> Iterator[None]:
    """Jobs submitted meanwhile carry a short job lease (JOB_DEFAULT_LEASE_DURATION)."""
    key = "_CONDOR_JOB_DEFAULT_LEASE_DURATION"
    os.environ[key] = str(LEASE_S)
    htcondor2.reload_config()
    try:
        yield
    finally:
        os.environ.pop(key, None)
        htcondor2.reload_config()


def _core(make_core: MakeCore, nodes: PoolNodes, tmp: Path, delay: int) -> TaskService:
    wms = SlowJobs(
        instance=nodes.instance, event_log=nodes.pool.event_log, sandbox_root=tmp / "sandboxes"
    )
    wms.delay = delay
    return make_core(wms=wms)


def _batch(svc: TaskService, tmp: Path) -> list[str]:
    case = next(c for c in CASES if c.tool == "ndvi")
    requests = []
    for i in range(BATCH):
        (tmp / f"in{i}").mkdir(parents=True)
        requests.append(case.request(case.make_inputs(tmp / f"in{i}")))
    views = svc.register(requests_for(requests))
    results = svc.submit([v.id for v in views])
    assert all(r.task and r.task.state == S.SUBMITTED for r in results), results
    return [v.id for v in views]


def _slots_run_on(svc: TaskService, task_id: str) -> list[str]:
    """The execute slots the task's job ran on, from gproc's task history."""
    events = svc.log(task_id)["events"]
    return [e["detail"][len("running on ") :] for e in events if e["kind"] == "EXECUTE"]


def _node_of(slot: str, nodes: PoolNodes) -> str | None:
    host = slot.partition("@")[2]
    return next((n for n in nodes.names if host == nodes.pool.nodes.hostname(n)), None)


def test_jobs_of_one_batch_land_on_several_execute_nodes(
    make_core: MakeCore, pool_nodes: PoolNodes, tmp_path: Path
) -> None:
    status = {n["name"]: n for n in pool_nodes.pool.status()["nodes"]}
    for name in pool_nodes.names:
        assert status[name]["running"] and status[name]["slots_advertised"] == 2, status
    svc = _core(make_core, pool_nodes, tmp_path, delay=5)
    ids = _batch(svc, tmp_path)
    done = wait_for(Tracker(svc), svc, ids, timeout=120)
    assert all(v.state == S.COMPLETED for v in done), [(v.state, v.state_reason) for v in done]
    slots = {t: _slots_run_on(svc, t) for t in ids}
    assert all(slots.values()), slots
    ran_on = {_node_of(s[-1], pool_nodes) for s in slots.values()}
    assert set(pool_nodes.names) <= ran_on, slots
    # what the schedd recorded agrees with what gproc reported
    for task_id, view in zip(ids, done, strict=True):
        ads = htcondor2.Schedd().history(
            f'GlobalJobId == "{view.job_id}"', ["LastRemoteHost"], match=1
        )
        hosts = [str(a.get("LastRemoteHost")) for a in ads]
        assert hosts in ([], [slots[task_id][-1]]), (hosts, slots[task_id])


def test_an_execute_node_killed_mid_job_the_task_is_rescheduled_reported_and_completes(
    make_core: MakeCore, pool_nodes: PoolNodes, tmp_path: Path, short_lease: None
) -> None:
    svc = _core(make_core, pool_nodes, tmp_path, delay=12)
    tracker = Tracker(svc)
    ids = _batch(svc, tmp_path)
    running = wait_for(  # running, and gproc has heard where
        tracker, svc, ids, lambda v: v.state == S.RUNNING and bool(_slots_run_on(svc, v.id)), 90
    )
    victim_slots = {t: _slots_run_on(svc, t)[-1] for t in ids}
    on_node = {t: _node_of(s, pool_nodes) for t, s in victim_slots.items()}
    victim = next(n for n in on_node.values() if n is not None)
    hit = [t for t, n in on_node.items() if n == victim]
    lease = htcondor2.Schedd().query(f'GlobalJobId == "{running[0].job_id}"', ["JobLeaseDuration"])[
        0
    ]["JobLeaseDuration"]
    assert lease == LEASE_S

    pids = pool_nodes.pool.nodes.pids(victim)  # the node crashes: every process, kill -9
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    try:
        done = wait_for(tracker, svc, ids, timeout=LEASE_S + 120)
    finally:
        pool_nodes.pool.add_node(victim, slots=2, instance=pool_nodes.instance)
    assert all(v.state == S.COMPLETED for v in done), [(v.state, v.state_reason) for v in done]
    assert time.monotonic() - t0 >= LEASE_S - 5  # rescheduled once the lease ran out
    for task_id in hit:
        events = svc.log(task_id)["events"]
        kinds = [e["kind"] for e in events]
        lost = [e for e in events if e["kind"] in RESCHEDULED]
        assert lost and "rescheduled" in lost[0]["detail"], events
        assert lost[0]["state"] == str(S.IDLE)
        assert kinds.count("EXECUTE") >= 2, kinds  # it ran again...
        again = _slots_run_on(svc, task_id)[-1]
        assert _node_of(again, pool_nodes) != victim, again  # ...elsewhere
        assert [e["kind"] for e in events].index(lost[0]["kind"]) < len(kinds) - 1
    for view in done:
        assert view.outputs and all(o.size > 0 for o in view.outputs)
