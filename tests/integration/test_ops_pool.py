"""The operations figures against the real pool: the WMS's pool summary (collector
slots per node, schedd jobs by state) follows a real job of this instance from
queued to held; the processing service's dashboard and /metrics report the pool and
the lag of its running tracker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gproc.wrappers.base import JobSpec, JobState, PoolSummary
from gproc.wrappers.htcondor import HTCondorWMS
from tests.fixtures.soap import SoapServer

WAIT_S = 120.0


@pytest.fixture(scope="module")
def wms(pool: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTCondorWMS]:
    event_log = Path(pool.event_log) if pool.event_log else None
    root = tmp_path_factory.mktemp("ops-pool")
    wms = HTCondorWMS(f"ops-{uuid.uuid4().hex[:8]}", event_log=event_log, sandbox_root=root)
    yield wms
    left = [i.job_id for i in wms.find_jobs(None).values()]
    if left:
        wms.cancel(left, "test cleanup")
        wms.forget(left)


def _until(
    what: str, probe: Callable[[], PoolSummary], ok: Callable[[PoolSummary], bool]
) -> PoolSummary:
    deadline = time.monotonic() + WAIT_S
    while True:
        summary = probe()
        if ok(summary):
            return summary
        if time.monotonic() > deadline:
            pytest.fail(f"pool summary never showed {what}: {summary}")
        time.sleep(1.0)


def test_pool_summary_follows_a_job(wms: HTCondorWMS, tmp_path: Path) -> None:
    first = wms.pool_summary()
    assert first.nodes, "the collector reports no execute node"
    for node in first.nodes:
        assert node.total == node.claimed + node.idle + node.other
    assert first.slots.total == sum(n.total for n in first.nodes) >= 1
    assert first.instance_jobs.total == 0 and first.schedd

    script = tmp_path / "sleep.sh"
    script.write_text("#!/bin/sh\nsleep 300\n")
    script.chmod(0o755)
    spec = JobSpec(task_id=uuid.uuid4().hex, executable=script, request_memory_mb=64)
    (job,) = wms.submit([spec])
    queued = _until(
        "the job queued or running",
        wms.pool_summary,
        lambda s: s.instance_jobs.idle + s.instance_jobs.running == 1,
    )
    assert queued.jobs.total >= 1 and queued.instance_jobs.total == 1
    wms.hold([job.job_id], "ops test")
    held = _until("the job held", wms.pool_summary, lambda s: s.instance_jobs.held == 1)
    assert held.jobs.held >= 1 and held.instance_jobs.idle + held.instance_jobs.running == 0
    wms.cancel([job.job_id], "ops test done")
    assert wms.query([job.job_id])[job.job_id].state in (JobState.REMOVED, JobState.HELD)


def test_dashboard_and_metrics_on_the_pool(soap_on_pool: SoapServer) -> None:
    bob, base = soap_on_pool.session("bob-voms"), soap_on_pool.server.url
    deadline = time.monotonic() + 30
    while True:  # the in-process tracker records its first cycle within a second or so
        doc = bob.get(base + "/ops/summary?window_s=3600&bucket_s=300", timeout=60).json()
        if doc["tracker"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    pool = doc["pool"]
    assert pool["available"] is True, pool
    assert pool["slots"]["total"] == sum(n["total"] for n in pool["nodes"]) >= 1
    assert set(pool["jobs"]) == {"idle", "running", "held", "other", "total"}
    assert doc["tracker"] is not None and doc["tracker"]["age_s"] < 30

    text = bob.get(base + "/metrics", timeout=30).text
    lag = {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("gproc_tracker_")
    }
    assert 0 <= lag["gproc_tracker_last_cycle_age_seconds"] < 30
    assert lag["gproc_tracker_cycle_duration_seconds"] >= 0
