"""Bulk submission to the HTCondor schedd: one cluster per job (baseline) vs one
``QUEUE ... FROM`` cluster per batch (itemdata), plus the per-cycle tracker query.

The jobs request more memory than any slot has, so they never run; they are
removed and purged at the end. Needs a running pool: CONDOR_CONFIG points at
its client config (``gproc pool up`` prints it).

Run: CONDOR_CONFIG=... .venv/bin/python bench/bench_htcondor_submit.py [jobs]
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from gproc.wrappers.base import JobSpec
from gproc.wrappers.htcondor import HTCondorWMS

NEVER_MATCHES_MB = 10**8  # no slot has 100 TB of memory: jobs stay idle


def _specs(n: int, script: Path, infile: Path) -> list[JobSpec]:
    return [
        JobSpec(
            task_id=uuid.uuid4().hex,
            executable=script,
            arguments=("x", str(i)),
            input_files=(infile,),
            output_files=("out.txt",),
            request_memory_mb=NEVER_MATCHES_MB,
        )
        for i in range(n)
    ]


def _timed_submit(wms: HTCondorWMS, specs: list[JobSpec]) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    jobs = wms.submit(specs)
    return time.perf_counter() - t0, [j.job_id for j in jobs]


def _cleanup(wms: HTCondorWMS, ids: list[str]) -> None:
    wms.cancel(ids, "benchmark cleanup")
    wms.forget(ids)


def main(n: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "job.sh"
        script.write_text('#!/bin/sh\necho "$@" > out.txt\n')
        script.chmod(0o755)
        infile = root / "in.txt"
        infile.write_text("input\n")
        instance = f"bench-{uuid.uuid4().hex[:8]}"
        per_job = HTCondorWMS(instance, sandbox_root=root / "sb", itemdata=False)
        batched = HTCondorWMS(instance, sandbox_root=root / "sb", itemdata=True)
        t_per_job, ids_a = _timed_submit(per_job, _specs(n, script, infile))
        t_batch, ids_b = _timed_submit(batched, _specs(n, script, infile))
        ids = ids_a + ids_b
        t0 = time.perf_counter()
        states = batched.query(ids)
        t_query = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = batched.find_jobs(None)
        t_find = time.perf_counter() - t0
        assert len(states) == len(ids) and len(found) == len(ids)
        _cleanup(batched, ids)
    print(f"jobs per mode: {n} (spooled, one input file each)")
    print(f"one cluster per job : {t_per_job:7.2f} s  {n / t_per_job:8.1f} jobs/s  (baseline)")
    print(
        f"itemdata, 1 cluster : {t_batch:7.2f} s  {n / t_batch:8.1f} jobs/s  "
        f"x{t_per_job / t_batch:.1f} vs baseline"
    )
    print(f"query({len(ids)} ids)      : {t_query * 1000:7.1f} ms (1 queue query)")
    print(f"find_jobs(all)      : {t_find * 1000:7.1f} ms (1 queue + 1 history query)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
