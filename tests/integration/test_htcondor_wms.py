"""HTCondorWMS against the real pool: spooled batches, states, holds, events, escaping."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest

from gproc.wrappers.base import (
    JobInfo,
    JobSpec,
    JobState,
    SubmittedJob,
    WmsRejected,
    WmsUnavailable,
)
from gproc.wrappers.htcondor import HTCondorWMS

WAIT_S = 180.0
ENDED = {JobState.COMPLETED, JobState.FAILED, JobState.REMOVED}

JOB_SCRIPT = """#!/bin/sh
for a in "$@"; do printf '[%s]\\n' "$a"; done
if [ -f in.txt ]; then cat in.txt > out.txt; printf 'tag=%s\\n' "$GP_TAG" >> out.txt; fi
echo scratch > undeclared.txt
echo to-stderr >&2
sleep "${GP_SLEEP:-0}"
exit "${GP_EXIT:-0}"
"""

TRICKY_ARGS = (
    "plain",
    "two words",
    "it's",
    'say "hi"',
    "'single' and \"double\"",
    "back\\slash\\",
    "$(Owner)",
    "$ENV(HOME) $RANDOM_INTEGER(1,9)",
    "cost: $5",
    "x#not-a-comment",
    "",
    "tab\there",
    "é ü",
    "--opt=a;b|c&d",
)


def new_task() -> str:
    return uuid.uuid4().hex


def wait_for(
    wms: HTCondorWMS, job_ids: Iterable[str], states: set[JobState], timeout: float = WAIT_S
) -> dict[str, JobInfo]:
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        infos = wms.query(ids)
        if all(infos[i].state in states for i in ids):
            return infos
        if time.monotonic() > deadline:
            pytest.fail(f"jobs did not reach {states}: {infos}")
        time.sleep(1.0)


def all_events(wms: HTCondorWMS, cursor: str | None = None) -> tuple[list[Any], str | None]:
    """Every event from ``cursor`` on (one read is bounded, so read until it stops moving)."""
    out: list[Any] = []
    for _ in range(1000):
        events, new = wms.read_events(cursor)
        out += events
        if new == cursor:
            break
        cursor = new
    return out, cursor


@pytest.fixture(scope="module")
def wms(pool: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTCondorWMS]:
    instance = f"itest-{uuid.uuid4().hex[:8]}"  # isolates this run's jobs in a shared pool
    sandboxes = tmp_path_factory.mktemp("sandboxes")
    event_log = Path(pool.event_log) if pool.event_log else None
    wms = HTCondorWMS(instance, event_log=event_log, sandbox_root=sandboxes)
    yield wms
    left = [i.job_id for i in wms.find_jobs(None).values()]  # leave the pool clean
    if left:
        wms.cancel(left, "test cleanup")
        wms.forget(left)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tool") / "job.sh"
    path.write_text(JOB_SCRIPT)
    path.chmod(0o755)
    return path


def make_spec(script: Path, **kw: Any) -> JobSpec:
    return JobSpec(
        task_id=new_task(), executable=script, request_memory_mb=64, request_disk_mb=16, **kw
    )


@dataclass
class Batch:
    specs: list[JobSpec]
    jobs: list[SubmittedJob]
    infos: dict[str, JobInfo]
    contents: list[str]


@pytest.fixture(scope="module")
def batch(wms: HTCondorWMS, script: Path, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """One submit call: 3 jobs with inputs, one that exits 3, one echoing tricky argv."""
    inputs = tmp_path_factory.mktemp("inputs")
    specs, contents = [], []
    for n in range(3):
        (inputs / str(n)).mkdir()
        infile = inputs / str(n) / "in.txt"
        contents.append(f"input number {n} {uuid.uuid4().hex}\n")
        infile.write_text(contents[-1])
        specs.append(
            make_spec(
                script,
                arguments=(f"job {n}",),
                input_files=(infile,),
                output_files=("out.txt", "never-made.txt"),
                environment={"GP_TAG": f"t{n} $(Owner)"},
                labels={"Tool": "ndvi", "Note": 'a "quoted" $(x)'},
            )
        )
    specs.append(make_spec(script, environment={"GP_EXIT": "3"}))
    specs.append(make_spec(script, arguments=TRICKY_ARGS))
    jobs = wms.submit(specs)
    infos = wait_for(wms, [j.job_id for j in jobs], ENDED)
    return Batch(specs, jobs, infos, contents)


def test_job_ids_derived_from_submit_results_are_the_queue_s(
    pool: Any, script: Path, tmp_path: Path
) -> None:
    """The first batch checks the derivation against the queue; later batches use it
    without a query, and their ids are still the ones the schedd assigned."""
    instance = f"itest-{uuid.uuid4().hex[:8]}"
    wms = HTCondorWMS(instance, sandbox_root=tmp_path)
    try:
        first = wms.submit([make_spec(script) for _ in range(2)])
        assert wms._ids_derived is True
        later = wms.submit([make_spec(script) for _ in range(3)])
        ads = htcondor2.Schedd().query(
            f"GprocInstance == {classad2.quote(instance)}", ["GprocTaskId", "GlobalJobId"]
        )
        queue = {ad["GprocTaskId"]: ad["GlobalJobId"] for ad in ads}
        assert {j.task_id: j.job_id for j in first + later} == queue
    finally:
        ids = [j.job_id for j in wms.find_jobs(None).values()]
        wms.cancel(ids, "test cleanup")
        wms.forget(ids)


def test_submit_returns_global_ids_in_order(batch: Batch) -> None:
    assert [j.task_id for j in batch.jobs] == [s.task_id for s in batch.specs]
    for job in batch.jobs:
        schedd, cluster_proc, qdate = job.job_id.split("#")
        assert schedd and qdate.isdigit() and "." in cluster_proc
    assert len({j.job_id for j in batch.jobs}) == len(batch.jobs)


def test_spooled_jobs_complete_and_outputs_are_retrieved(
    wms: HTCondorWMS, batch: Batch, tmp_path: Path
) -> None:
    for n, job in enumerate(batch.jobs[:3]):
        info = batch.infos[job.job_id]
        assert (info.state, info.exit_code, info.task_id) == (JobState.COMPLETED, 0, job.task_id)
        assert info.submitted_at and info.started_at and info.finished_at
        dest = tmp_path / f"out{n}"
        files = wms.retrieve(job.job_id, dest)
        assert sorted(p.name for p in files) == ["_gproc.err", "_gproc.out", "out.txt"]
        assert (dest / "out.txt").read_text() == batch.contents[n] + f"tag=t{n} $(Owner)\n"
        assert (dest / "_gproc.out").read_text() == f"[job {n}]\n"
        assert (dest / "_gproc.err").read_text() == "to-stderr\n"
        assert not (dest / "undeclared.txt").exists()
        assert not (dest / "never-made.txt").exists()  # missing output: no error, no file


def test_nonzero_exit_is_failed_with_its_code(batch: Batch) -> None:
    info = batch.infos[batch.jobs[3].job_id]
    assert (info.state, info.exit_code, info.raw_status) == (JobState.FAILED, 3, 4)


def test_tricky_arguments_arrive_verbatim(wms: HTCondorWMS, batch: Batch, tmp_path: Path) -> None:
    job = batch.jobs[4]
    wms.retrieve(job.job_id, tmp_path)
    echoed = (tmp_path / "_gproc.out").read_text()
    assert echoed == "".join(f"[{a}]\n" for a in TRICKY_ARGS)


def test_find_jobs_reconciles_by_task_id(wms: HTCondorWMS, batch: Batch) -> None:
    found = wms.find_jobs([s.task_id for s in batch.specs] + [new_task()])
    assert {t: i.job_id for t, i in found.items()} == {j.task_id: j.job_id for j in batch.jobs}
    assert found[batch.jobs[3].task_id].state is JobState.FAILED
    assert all(i.attempt == 1 for i in found.values())
    everything = wms.find_jobs(None)
    assert set(found) <= set(everything)


def test_events_are_read_and_typed(wms: HTCondorWMS, batch: Batch) -> None:
    events, cursor = all_events(wms)
    assert cursor is not None
    by_task: dict[str, list[str]] = {}
    for ev in events:
        if ev.task_id:
            by_task.setdefault(ev.task_id, []).append(ev.kind)
    for job in batch.jobs:
        kinds = by_task.get(job.task_id, [])
        assert kinds[0] == "SUBMIT" and "EXECUTE" in kinds and "JOB_TERMINATED" in kinds
    ends = {ev.task_id: ev for ev in events if ev.kind == "JOB_TERMINATED"}
    assert ends[batch.jobs[3].task_id].state is JobState.FAILED
    assert ends[batch.jobs[3].task_id].exit_code == 3
    assert ends[batch.jobs[0].task_id].state is JobState.COMPLETED
    assert ends[batch.jobs[0].task_id].job_id == batch.jobs[0].job_id
    again, _ = all_events(wms, cursor)  # resumes: nothing already read comes back
    tasks = {j.task_id for j in batch.jobs}
    assert not [e for e in again if e.task_id in tasks and e.kind in ("SUBMIT", "EXECUTE")]


def test_forget_lets_completed_jobs_leave_the_queue(wms: HTCondorWMS, batch: Batch) -> None:
    job = batch.jobs[3]
    wms.forget([job.job_id])
    deadline = time.monotonic() + 30
    schedd = wms._get_schedd()
    while schedd.query(f'GlobalJobId == "{job.job_id}"', ["JobStatus"]):
        assert time.monotonic() < deadline, "forgotten job still in the queue"
        time.sleep(0.5)
    info = wms.query([job.job_id])[job.job_id]  # from the history now
    assert (info.state, info.exit_code) == (JobState.FAILED, 3)
    with pytest.raises(WmsRejected):
        wms.retrieve(job.job_id, Path("/tmp/unused"))


def wait_event(wms: HTCondorWMS, task_id: str, kind: str, timeout: float = 60.0) -> Any:
    """The first ``kind`` event of ``task_id`` in the event log, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    events, cursor = all_events(wms)
    while True:
        found = [e for e in events if e.task_id == task_id and e.kind == kind]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no {kind} event for task {task_id}")
        time.sleep(1.0)
        more, cursor = all_events(wms, cursor)
        events += more


def test_hold_release_cancel(wms: HTCondorWMS, script: Path) -> None:
    (job,) = wms.submit([make_spec(script, environment={"GP_SLEEP": "300"})])
    # a job still spooling is already held by the schedd: hold it once it runs
    wait_for(wms, [job.job_id], {JobState.RUNNING})
    wms.hold([job.job_id], "operator says wait")
    held = wait_for(wms, [job.job_id], {JobState.HELD})[job.job_id]
    assert held.hold_reason and held.hold_reason.startswith("operator says wait")
    assert held.hold_code == 1  # UserRequest
    held_ev = wait_event(wms, job.task_id, "JOB_HELD")
    assert held_ev.state is JobState.HELD and held_ev.detail.startswith("operator says wait")
    wms.release([job.job_id])
    wait_for(wms, [job.job_id], {JobState.IDLE, JobState.RUNNING})
    assert wait_event(wms, job.task_id, "JOB_RELEASED").state is JobState.IDLE
    wms.cancel([job.job_id], "user cancelled")
    removed = wait_for(wms, [job.job_id], {JobState.REMOVED})[job.job_id]
    assert removed.raw_status == 3
    aborted = wait_event(wms, job.task_id, "JOB_ABORTED")
    assert aborted.state is JobState.REMOVED and aborted.detail.startswith("user cancelled")
    wms.forget([job.job_id])
    found = wms.find_jobs([job.task_id])
    assert found[job.task_id].state is JobState.REMOVED


def test_periodic_style_hold_reason_is_reported(wms: HTCondorWMS, tmp_path: Path) -> None:
    """A job HTCondor itself holds (executable missing on the execute side)."""
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    (job,) = wms.submit([make_spec(broken)])
    held = wait_for(wms, [job.job_id], {JobState.HELD})[job.job_id]
    assert held.hold_reason and held.hold_code not in (None, 16)
    wms.cancel([job.job_id], "cleanup")
    wms.forget([job.job_id])


def test_proxy_and_accounting_reach_the_job(
    wms: HTCondorWMS, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from gproc.security.pki import make_test_pki

    pki = make_test_pki(tmp_path_factory.mktemp("pki"))
    proxy = pki.proxies["alice-voms"]
    probe = tmp_path / "probe.sh"
    probe.write_text(
        '#!/bin/sh\n[ -s "$X509_USER_PROXY" ] && echo "proxy $(basename "$X509_USER_PROXY")"\n'
    )
    probe.chmod(0o755)
    spec = make_spec(
        probe, x509_proxy=proxy, accounting_group="group_testvo.grid", accounting_user="alice"
    )
    (job,) = wms.submit([spec])
    info = wait_for(wms, [job.job_id], ENDED)[job.job_id]
    assert info.state is JobState.COMPLETED
    wms.retrieve(job.job_id, tmp_path / "out")
    assert (tmp_path / "out" / "_gproc.out").read_text() == f"proxy {proxy.name}\n"
    ad = wms._get_schedd().query(
        f'GlobalJobId == "{job.job_id}"', ["AcctGroup", "AcctGroupUser", "AccountingGroup"]
    )
    assert ad[0]["AcctGroup"] == "group_testvo.grid" and ad[0]["AcctGroupUser"] == "alice"
    assert ad[0]["AccountingGroup"] == "group_testvo.grid.alice"


def test_unsafe_spec_is_rejected_before_submission(wms: HTCondorWMS, script: Path) -> None:
    with pytest.raises(WmsRejected):
        wms.submit([make_spec(script, arguments=("line\nbreak",))])
    with pytest.raises(WmsRejected):
        wms.submit([make_spec(script, labels={"bad-name": "x"})])


def test_ping(wms: HTCondorWMS) -> None:
    info = wms.ping()
    assert info.reachable and info.wms == "htcondor"
    assert "CondorVersion" in info.version and info.slots >= 1


def test_unreachable_pool_maps_to_wms_unavailable() -> None:
    dead = HTCondorWMS("itest-dead", collector="127.0.0.1:1")
    assert dead.ping().reachable is False
    with pytest.raises(WmsUnavailable):
        dead.query(["vm#1.0#1"])
