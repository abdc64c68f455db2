"""The task life cycle end to end on the real HTCondor pool."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from gproc.connectors import ToolRequest
from gproc.domain import TaskRequest, TaskStateConflict
from gproc.lifecycle import TaskService
from gproc.states import TaskState
from gproc.tracker import Tracker
from gproc.wrappers.base import JobState, WmsUnavailable
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.core import ALICE, requests_for, wait_for
from tests.integration.connector_cases import CASES

S = TaskState
MakeCore = Callable[..., TaskService]


def _ndvi_request(tmp: Path) -> ToolRequest:
    case = next(c for c in CASES if c.tool == "ndvi")
    tmp.mkdir(parents=True, exist_ok=True)
    return case.request(case.make_inputs(tmp))


def test_every_connector_runs_on_the_pool_and_outputs_are_correct(
    make_core: MakeCore, tmp_path: Path
) -> None:
    svc = make_core()
    for c in CASES:
        (tmp_path / c.id).mkdir()
    inputs = {c.id: c.make_inputs(tmp_path / c.id) for c in CASES}
    views = svc.register(requests_for([c.request(inputs[c.id]) for c in CASES]))
    assert all(v.state == S.REGISTERED and "GprocTaskId" in v.job_description for v in views)
    results = svc.submit([v.id for v in views])
    assert all(r.task and r.task.state == S.SUBMITTED and r.task.job_id for r in results)
    done = wait_for(Tracker(svc), svc, [v.id for v in views], timeout=420)
    for case, view in zip(CASES, done, strict=True):
        assert view.state == S.COMPLETED, (case.id, view.state_reason, svc.log(view.id))
        outputs = {o.port: Path(o.path) for o in view.outputs}
        assert all(o.size > 0 and len(o.adler32) == 8 for o in view.outputs)
        case.check(outputs)


def test_submit_twice_makes_one_job_and_request_id_is_idempotent(
    make_core: MakeCore, tmp_path: Path
) -> None:
    svc = make_core()
    req = TaskRequest(_ndvi_request(tmp_path), ALICE, client_request_id="portal-42")
    first = svc.register([req])[0]
    again = svc.register([req])[0]
    assert again.id == first.id
    a = svc.submit([first.id])[0].task
    b = svc.submit([first.id, first.id])[0].task
    assert a and b and a.job_id == b.job_id
    jobs = svc.wms.find_jobs([first.id])
    assert list(jobs) == [first.id] and jobs[first.id].job_id == a.job_id


def test_crash_between_wms_submit_and_registry_update_leaves_one_job(
    make_core: MakeCore, tmp_path: Path
) -> None:
    """The process dies right after the schedd accepted the job: on restart the
    tracker finds the job by task id and adopts it instead of submitting again."""
    svc = make_core()
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.registry.transition(
        task.id, S.REGISTERED, S.SUBMITTING, attempt=1
    )  # the intent was recorded...
    row = svc.registry.get(task.id)
    job = svc.wms.submit([svc.job_spec(row)])[0]  # ...the schedd took it, then the crash

    restarted = make_core()  # a new process over the same registry
    tracker = Tracker(restarted, submit_grace_s=5.0)  # a submit older than this crashed
    view = wait_for(
        tracker, restarted, [task.id], until=lambda v: v.state != S.SUBMITTING, timeout=60
    )[0]
    assert view.job_id == job.job_id and view.attempt == 1  # adopted, not resubmitted
    assert "ADOPTED" in [e["kind"] for e in restarted.log(task.id)["events"]]
    done = wait_for(tracker, restarted, [task.id])[0]
    assert done.state == S.COMPLETED and done.job_id == job.job_id
    all_jobs = _all_jobs_of(restarted, task.id)
    assert all_jobs == [job.job_id]


def test_crash_before_the_wms_heard_of_the_task_submits_it_exactly_once(
    make_core: MakeCore, tmp_path: Path
) -> None:
    svc = make_core()
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.registry.transition(task.id, S.REGISTERED, S.SUBMITTING, attempt=1)  # then the crash
    restarted = make_core()
    tracker = Tracker(restarted)
    tracker.cycle()
    tracker.cycle()  # a second cycle must not submit again
    done = wait_for(tracker, restarted, [task.id])[0]
    assert done.state == S.COMPLETED
    assert len(_all_jobs_of(restarted, task.id)) == 1


def test_a_pool_outage_at_submit_keeps_the_task_and_it_runs_later(
    make_core: MakeCore, tmp_path: Path
) -> None:
    from gproc.wrappers.htcondor.schedd import HTCondorWMS

    broken = HTCondorWMS(instance="outage", collector="127.0.0.1:1")  # nothing listens there
    down = make_core(wms=broken)
    task = down.register(requests_for([_ndvi_request(tmp_path)]))[0]
    result = down.submit([task.id])[0]
    assert result.task and result.task.state == S.SUBMITTING  # accepted, not lost
    reason = result.task.state_reason or ""
    assert reason.startswith("WMS unreachable since ") and "HTCondor unreachable" in reason
    assert "WMS_UNREACHABLE" in [e["kind"] for e in down.log(task.id)["events"]]
    healthy = make_core()
    done = wait_for(Tracker(healthy, submit_grace_s=0), healthy, [task.id])[0]
    assert done.state == S.COMPLETED
    assert len(_all_jobs_of(healthy, task.id)) == 1


def test_restarting_the_tracker_resumes_tracking(make_core: MakeCore, tmp_path: Path) -> None:
    svc = make_core()
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.submit([task.id])
    first = Tracker(svc)
    first.cycle()
    first.stop()
    restarted = make_core()
    done = wait_for(Tracker(restarted), restarted, [task.id])[0]
    assert done.state == S.COMPLETED
    kinds = [e["kind"] for e in restarted.log(task.id)["events"]]
    assert kinds[0] == "REGISTERED" and "STAGED_OUT" in kinds


def _wait_inputs_uploaded(svc: TaskService, task_id: str) -> None:
    job_id = svc.get(task_id).job_id or ""
    for _ in range(240):  # a job whose inputs are still spooling cannot be held yet
        info = svc.wms.query([job_id])[job_id]
        if not info.spooling:
            return
        time.sleep(0.25)
    raise AssertionError("inputs never finished uploading")


def test_hold_release_and_a_wms_side_hold_reports_its_reason(
    make_core: MakeCore, tmp_path: Path
) -> None:
    svc = make_core()
    tracker = Tracker(svc)
    a, b = svc.register(
        requests_for([_ndvi_request(tmp_path / "a"), _ndvi_request(tmp_path / "b")])
    )
    svc.submit([a.id, b.id])
    # an administrator pins b in the queue (it cannot match while its inputs spool,
    # so this always lands before it could run), then holds it in the schedd
    schedd = htcondor2.Schedd()
    job_b = f'GlobalJobId == "{svc.get(b.id).job_id}"'
    schedd.edit(job_b, "Requirements", "false")
    assert svc.hold(a.id, "portal asked to wait").state == S.HELD  # even while uploading
    held = svc.get(a.id)
    assert held.state == S.HELD and held.hold_reason == "portal asked to wait"
    _wait_inputs_uploaded(svc, b.id)
    res = schedd.act(htcondor2.JobAction.Hold, job_b, ("site maintenance", 0))
    assert res["TotalSuccess"] == 1, res
    seen = wait_for(tracker, svc, [b.id], until=lambda v: v.state == S.HELD, timeout=120)[0]
    assert seen.hold_reason and "site maintenance" in seen.hold_reason
    assert svc.get(a.id).state == S.HELD  # the user hold stays until released
    svc.release(a.id)
    assert svc.cancel(b.id).state == S.CANCELLED
    done = wait_for(tracker, svc, [a.id])[0]
    assert done.state == S.COMPLETED


def test_cancel_then_resubmit_runs_a_new_attempt(make_core: MakeCore, tmp_path: Path) -> None:
    svc = make_core()
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.submit([task.id])
    job = f'GlobalJobId == "{svc.get(task.id).job_id}"'
    htcondor2.Schedd().edit(job, "Requirements", "false")  # keep it from running
    cancelled = svc.cancel(task.id)
    assert cancelled.state == S.CANCELLED
    with pytest.raises(TaskStateConflict):
        svc.release(task.id)
    again = svc.resubmit(task.id)
    assert again.attempt == 2 and again.job_id and again.job_id != cancelled.job_id
    done = wait_for(Tracker(svc), svc, [task.id])[0]
    assert done.state == S.COMPLETED and done.attempt == 2
    purged = svc.purge(task.id)
    assert purged.state == S.PURGED and not svc.dirs.task(task.id).exists()


def test_a_failing_job_is_failed_with_its_exit_code_and_log(
    make_core: MakeCore, tmp_path: Path
) -> None:
    """NDVI over rasters of different grids: the payload exits non-zero."""
    svc = make_core()
    req = _ndvi_request(tmp_path)
    other = next(c for c in CASES if c.tool == "grayscale")
    (tmp_path / "odd").mkdir()
    odd = other.make_inputs(tmp_path / "odd")
    bad = ToolRequest(
        tool="ndvi",
        inputs={"red": req.inputs["red"], "nir": str(next(iter(odd.values())))},
        params={"nir_band": 1},
    )
    task = svc.register(requests_for([bad]))[0]
    svc.submit([task.id])
    done = wait_for(Tracker(svc), svc, [task.id])[0]
    assert done.state == S.FAILED and done.exit_code not in (None, 0)
    assert done.state_reason and "exit" in done.state_reason
    assert svc.log(task.id)["stderr"].strip()


def test_the_core_runs_on_postgresql(
    make_core: MakeCore, postgres_url: str, tmp_path: Path
) -> None:
    svc = make_core(db_url=postgres_url)
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.submit([task.id])
    done = wait_for(Tracker(svc), svc, [task.id])[0]
    assert done.state == S.COMPLETED and done.outputs


def _all_jobs_of(svc: TaskService, task_id: str) -> list[str]:
    """Every job (queue and history) carrying the task id: proof of no duplicates."""
    schedd = htcondor2.Schedd()
    constraint = f'GprocTaskId == "{task_id}"'
    ids = {ad["GlobalJobId"] for ad in schedd.query(constraint, ["GlobalJobId"])}
    ids |= {ad["GlobalJobId"] for ad in schedd.history(constraint, ["GlobalJobId"], 50)}
    return sorted(ids)


def test_job_state_enum_is_what_the_wms_reports() -> None:
    assert json.dumps([s.value for s in JobState])  # the neutral vocabulary is serialisable


class SlowUpload(HTCondorWMS):
    """The real WMS whose input upload waits until the test lets it go (as a large
    upload would). Mirrors ``HTCondorWMS._submit_one`` without the ``spool`` call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred: list[Any] = []

    def _submit_one(self, template: dict[str, str], items: list[dict[str, str]]) -> Any:
        with self._call("submitting jobs", rejectable=True) as schedd:
            result = schedd.submit(htcondor2.Submit(template), count=1, spool=True)
        self.deferred.append(result)
        return result

    def finish_upload(self) -> None:
        for result in self.deferred:
            with self._call("uploading job inputs") as schedd:
                schedd.spool(result)
        self.deferred.clear()


class FlakyForget(HTCondorWMS):
    """The real WMS whose first ``forget`` fails as a busy schedd's would."""

    failures = 1

    def forget(self, job_ids: Sequence[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise WmsUnavailable("forgetting jobs: HTCondor unreachable or failing: timed out")
        super().forget(job_ids)


def _wms_like(svc: TaskService, cls: type[HTCondorWMS], tmp: Path) -> HTCondorWMS:
    """Another WMS object of the same instance (it sees the same jobs)."""
    return cls(instance=svc.wms.instance, event_log=svc.wms.event_log, sandbox_root=tmp / "sb2")  # type: ignore[attr-defined]


def _in_queue(job_id: str) -> bool:
    return bool(htcondor2.Schedd().query(f'GlobalJobId == "{job_id}"', ["ClusterId"]))


def _until(check: Callable[[], bool], tracker: Tracker, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        tracker.cycle()
        time.sleep(0.5)


def test_a_hold_while_the_inputs_upload_is_accepted_and_applied_once_they_are_up(
    make_core: MakeCore, tmp_path: Path, pool: Any
) -> None:
    slow = SlowUpload(
        instance=f"t{uuid.uuid4().hex[:12]}",
        event_log=getattr(pool, "event_log", None),
        sandbox_root=tmp_path / "sb",
    )
    svc = make_core(wms=slow)
    tracker = Tracker(svc)
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    job_id = svc.submit([task.id])[0].task.job_id  # type: ignore[union-attr]
    assert job_id and slow.query([job_id])[job_id].spooling
    held = svc.hold(task.id, "portal asked to wait")  # not refused
    assert held.state == S.HELD and held.hold_reason == "portal asked to wait"
    assert svc.hold_pending(task.id)
    tracker.cycle(reconcile=True)  # still uploading: the WMS cannot hold it yet
    assert svc.get(task.id).state == S.HELD and svc.hold_pending(task.id)
    slow.finish_upload()
    _until(lambda: slow.query([job_id])[job_id].state == JobState.HELD, tracker)
    info = slow.query([job_id])[job_id]
    assert info.hold_reason and "portal asked to wait" in info.hold_reason
    tracker.cycle(reconcile=True)
    view = svc.get(task.id)
    assert view.state == S.HELD and not svc.hold_pending(task.id)
    kinds = [e["kind"] for e in svc.log(task.id)["events"]]
    assert "HOLD_PENDING" in kinds and "HOLD_APPLIED" in kinds
    assert svc.release(task.id).state == S.IDLE
    done = wait_for(tracker, svc, [task.id])[0]
    assert done.state == S.COMPLETED


def test_a_failed_forget_is_retried_after_the_task_completed(
    make_core: MakeCore, tmp_path: Path, pool: Any
) -> None:
    flaky = FlakyForget(
        instance=f"t{uuid.uuid4().hex[:12]}",
        event_log=getattr(pool, "event_log", None),
        sandbox_root=tmp_path / "sb",
    )
    svc = make_core(wms=flaky)
    tracker = Tracker(svc)
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.submit([task.id])
    done = wait_for(tracker, svc, [task.id])[0]
    assert done.state == S.COMPLETED and done.job_id and flaky.failures == 0
    assert _in_queue(done.job_id)  # the forget failed: the finished job lingers
    _until(lambda: not _in_queue(done.job_id or ""), tracker, timeout=60)
    assert svc.get(task.id).state == S.COMPLETED


def test_removing_an_orphaned_upload_is_recorded_on_the_task(
    make_core: MakeCore, tmp_path: Path
) -> None:
    """A crash in the middle of the input upload leaves a job held for spooling: the
    tracker removes it, says so in the task's events, and submits a new attempt."""
    svc = make_core()
    task = svc.register(requests_for([_ndvi_request(tmp_path)]))[0]
    svc.registry.transition(task.id, S.REGISTERED, S.SUBMITTING, attempt=1)
    orphan = _wms_like(svc, SlowUpload, tmp_path).submit([svc.job_spec(svc.registry.get(task.id))])
    time.sleep(1.1)  # the orphan's queue date is now in the past
    tracker = Tracker(svc, submit_grace_s=0)
    tracker.cycle()
    events = svc.log(task.id)["events"]
    removed = [e for e in events if e["kind"] == "ORPHAN_REMOVED"]
    assert removed and orphan[0].job_id in removed[0]["detail"]
    done = wait_for(tracker, svc, [task.id])[0]
    assert done.state == S.COMPLETED and done.attempt == 2 and done.job_id != orphan[0].job_id
