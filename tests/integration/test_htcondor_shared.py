"""Shared-filesystem mode on the real pool: no spooling, the schedd reads the task
directories in place and writes outputs into the job directory.

One representative real task end to end through the core and the tracker, plus the
paths that differ from the spooled mode: the job leaves the queue when it ends (a
tracker that was down retrieves it from the history), a job can be held at once
(nothing is being uploaded), and a crash between submission and its record is
adopted without a spool phase. The personal pool sees the test's directory through
:meth:`PersonalPool.share`; an external pool is taken to share the filesystem.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest

from gproc.app import build_service
from gproc.lifecycle import TaskService
from gproc.settings import HTCondorSettings, Settings
from gproc.states import TaskState
from gproc.tracker import Tracker
from gproc.wrappers.base import JobSpec, JobState
from gproc.wrappers.htcondor import factory
from gproc.wrappers.htcondor.pool import PersonalPool
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from gproc.wrappers.htcondor.shared import job_dir
from tests.fixtures.core import requests_for, wait_for
from tests.integration.connector_cases import CASES

S = TaskState
NDVI = next(c for c in CASES if c.tool == "ndvi")


@pytest.fixture
def shared(pool: Any, tmp_path: Path) -> Iterator[Path]:
    """A directory the schedd sees at the same path (and the job owner may enter)."""
    area = tmp_path / "shared"
    area.mkdir(mode=0o755)
    if isinstance(pool, PersonalPool):
        pool.share(area)
    try:
        yield area
    finally:
        if isinstance(pool, PersonalPool):
            pool.unshare(area)


def _wms(pool: Any, area: Path, instance: str) -> HTCondorWMS:
    owner = pool.job_owner() if isinstance(pool, PersonalPool) else None
    return HTCondorWMS(
        instance,
        event_log=getattr(pool, "event_log", None),
        sandbox_root=area / "sandboxes",
        shared_filesystem=True,
        job_owner=owner,
    )


@pytest.fixture
def make_core(pool: Any, shared: Path) -> Iterator[Callable[[], TaskService]]:
    """Core services over one state dir in the shared area; call again to restart."""
    instance = f"sh{uuid.uuid4().hex[:12]}"
    made: list[TaskService] = []

    def make() -> TaskService:
        svc = build_service(Settings(state_dir=shared / "state"), wms=_wms(pool, shared, instance))
        made.append(svc)
        return svc

    yield make
    for svc in made:
        jobs = svc.wms.find_jobs()
        if jobs:
            svc.wms.cancel([j.job_id for j in jobs.values()], "test cleanup")
            svc.wms.forget([j.job_id for j in jobs.values()])
        svc.registry.close()


def _ad(job_id: str, attrs: list[str]) -> dict[str, Any]:
    """The job's ad from the queue, else from the history ({} if neither has it)."""
    schedd = htcondor2.Schedd()
    constraint = f"GlobalJobId == {classad2.quote(job_id)}"
    ads = schedd.query(constraint, attrs) or list(schedd.history(constraint, attrs, match=1))
    return dict(ads[0]) if ads else {}


def _in_queue(job_id: str) -> bool:
    return bool(htcondor2.Schedd().query(f"GlobalJobId == {classad2.quote(job_id)}", ["ProcId"]))


def test_a_real_task_runs_end_to_end_from_the_task_directory(
    make_core: Callable[[], TaskService], tmp_path: Path
) -> None:
    svc = make_core()
    (tmp_path / "in").mkdir()
    task = svc.register(requests_for([NDVI.request(NDVI.make_inputs(tmp_path / "in"))]))[0]
    job = svc.submit([task.id])[0].task
    assert job is not None and job.state == S.SUBMITTED and job.job_id
    ad = _ad(job.job_id, ["Iwd", "TransferInput", "GprocShared", "JobStatus", "HoldReason"])
    # no spool: the schedd works in the job directory and reads the staged inputs there
    assert ad["GprocShared"] is True
    assert ad["Iwd"] == str(job_dir(svc.wms.sandbox_root, task.id, 1))  # type: ignore[attr-defined]
    assert all(p.startswith(str(svc.dirs.inputs(task.id))) for p in ad["TransferInput"].split(","))
    assert ad.get("HoldReason") != "Spooling input data files"

    done = wait_for(Tracker(svc), svc, [task.id])[0]
    assert done.state == S.COMPLETED, svc.log(task.id)
    NDVI.check({o.port: Path(o.path) for o in done.outputs})
    assert not _in_queue(job.job_id)  # ended jobs leave the queue: nothing to forget
    assert not job_dir(svc.wms.sandbox_root, task.id, 1).exists()  # type: ignore[attr-defined]


def test_a_job_that_ended_while_the_tracker_was_down_is_retrieved_from_the_history(
    make_core: Callable[[], TaskService], tmp_path: Path
) -> None:
    svc = make_core()
    (tmp_path / "in").mkdir()
    task = svc.register(requests_for([NDVI.request(NDVI.make_inputs(tmp_path / "in"))]))[0]
    job_id = svc.submit([task.id])[0].task.job_id  # type: ignore[union-attr]
    assert job_id
    deadline = time.monotonic() + 240
    while _in_queue(job_id):  # no tracker runs meanwhile
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(1.0)
    assert svc.wms.query([job_id])[job_id].state is JobState.COMPLETED  # from the history

    restarted = make_core()
    done = wait_for(Tracker(restarted), restarted, [task.id], timeout=60)[0]
    assert done.state == S.COMPLETED, restarted.log(task.id)
    NDVI.check({o.port: Path(o.path) for o in done.outputs})


def test_a_crash_between_submission_and_its_record_is_adopted(
    make_core: Callable[[], TaskService], tmp_path: Path
) -> None:
    svc = make_core()
    (tmp_path / "in").mkdir()
    task = svc.register(requests_for([NDVI.request(NDVI.make_inputs(tmp_path / "in"))]))[0]
    svc.registry.transition(task.id, S.REGISTERED, S.SUBMITTING, attempt=1)
    job = svc.wms.submit([svc.job_spec(svc.registry.get(task.id))])[0]  # then the crash

    restarted = make_core()
    tracker = Tracker(restarted)
    tracker.cycle()  # no spool phase to wait for: adopted at the first look
    view = restarted.get(task.id)
    assert view.state != S.SUBMITTING and view.job_id == job.job_id and view.attempt == 1
    assert wait_for(tracker, restarted, [task.id])[0].state == S.COMPLETED
    assert list(restarted.wms.find_jobs([task.id])) == [task.id]


def test_a_job_can_be_held_right_after_submission(pool: Any, shared: Path) -> None:
    wms = _wms(pool, shared, f"sh{uuid.uuid4().hex[:12]}")
    script = shared / "sleep.sh"
    script.write_text("#!/bin/sh\nsleep 300\n")
    script.chmod(0o755)
    (job,) = wms.submit([JobSpec(task_id=uuid.uuid4().hex, executable=script)])
    try:
        assert wms.query([job.job_id])[job.job_id].spooling is False
        wms.hold([job.job_id], "operator says wait")
        held = wms.query([job.job_id])[job.job_id]
        assert held.state is JobState.HELD and held.hold_code == 1  # UserRequest
    finally:
        wms.cancel([job.job_id], "test cleanup")
        wms.forget([job.job_id])


def test_the_factory_builds_the_shared_mode_from_settings(pool: Any, tmp_path: Path) -> None:
    if not isinstance(pool, PersonalPool):
        pytest.skip("reads the personal pool's job owner")
    config = HTCondorSettings(shared_filesystem=True).model_dump()
    wms = factory.create(config, pool.state_dir)
    assert wms.shared is not None and wms.shared.owner == pool.job_owner()
    assert wms.sandbox_root in pool.shared_dirs()
    assert factory.create(HTCondorSettings().model_dump(), pool.state_dir).shared is None
