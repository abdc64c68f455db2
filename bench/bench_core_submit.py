"""Tasks per second through gproc's core (register + submit) vs a direct htcondor2
spooled submission of the same jobs, measured in the same run, alternating.

gproc: ``TaskService.register`` of N ``band`` tasks as one batch (validation,
input staging, registry rows), then ``TaskService.submit`` of them as one batch
(registry transitions, one itemdata cluster, input upload, job ids recorded).
Each repetition uses a fresh SQLite state dir and a fresh WMS instance name.
Direct: one ``htcondor2.Submit`` with itemdata for the same executable, arguments
and input file, ``Schedd.submit(..., spool=True)`` + ``Schedd.spool``.

The jobs request more memory than any slot has, so they never run (gproc's job
spec is changed only in that field). Every job of the run is removed and waited
out of the queue after each repetition and at the end. Needs the personal pool
up (``gproc pool up``).

Run: .venv/bin/python bench/bench_core_submit.py [--tasks 1000] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import classad2
import htcondor2

from gproc.connectors import ToolRequest
from gproc.domain import Owner, TaskRequest
from gproc.lifecycle import TaskService, plan_request
from gproc.models import TaskRow
from gproc.registry import Registry
from gproc.settings import LimitsSettings, Settings
from gproc.staging import TaskDirs, local_file_resolver
from gproc.task_data import LocalTaskData
from gproc.wrappers.base import JobSpec, SubmittedJob
from gproc.wrappers.htcondor.pool import PersonalPool
from gproc.wrappers.htcondor.schedd import HTCondorWMS

NEVER_MATCHES_MB = 10**8  # no slot has 100 TB of memory: jobs stay idle
OWNER = Owner(
    dn="/C=RO/O=GiSHEO/CN=bench",
    vo="benchvo",
    fqans=("/benchvo",),
    accounting_group="group_benchvo",
)
DRAIN_TIMEOUT_S = 180.0


class NeverRunsService(TaskService):
    """The core unchanged, except that its jobs can never match a slot."""

    def job_spec(self, row: TaskRow) -> JobSpec:
        return replace(super().job_spec(row), request_memory_mb=NEVER_MATCHES_MB)


@dataclass
class Rep:
    register_s: float
    submit_s: float
    schedd_s: float  # of submit_s: the schedd calls (submit, spool, reading job ids)

    @property
    def total_s(self) -> float:
        return self.register_s + self.submit_s


def never_runs_service(
    root: Path, instance: str, max_batch: int, src_dir: Path, event_log: Path | None = None
) -> NeverRunsService:
    """The core over a fresh SQLite state dir under ``root``, as build_service makes it."""
    settings = Settings(state_dir=root / "state", limits=LimitsSettings(max_batch=max_batch))
    settings.state_dir.mkdir(parents=True)
    wms = HTCondorWMS(instance, event_log=event_log, sandbox_root=root / "sandboxes")
    return NeverRunsService(
        Registry(settings.database_url),
        wms,
        TaskDirs(settings.tasks_dir),
        LocalTaskData(local_file_resolver((src_dir,))),
        max_batch=max_batch,
    )


def run_gproc(root: Path, instance: str, n: int, image: Path) -> Rep:
    svc = never_runs_service(root, instance, n, image.parent)
    wms_submit = svc.wms.submit
    in_wms = [0.0]

    def timed_submit(specs: Sequence[JobSpec]) -> list[SubmittedJob]:
        t = time.perf_counter()
        try:
            return wms_submit(specs)
        finally:
            in_wms[0] += time.perf_counter() - t

    svc.wms.submit = timed_submit  # type: ignore[method-assign]
    requests = [
        TaskRequest(ToolRequest("band", {"image": str(image)}, {"band": 2}), OWNER)
        for _ in range(n)
    ]
    try:
        t0 = time.perf_counter()
        views = svc.register(requests)
        t1 = time.perf_counter()
        results = svc.submit([v.id for v in views])
        t2 = time.perf_counter()
    finally:
        svc.registry.close()
    bad = [r for r in results if r.task is None or r.task.job_id is None]
    if bad:
        raise SystemExit(f"gproc submission failed for {len(bad)} tasks: {bad[0]}")
    return Rep(t1 - t0, t2 - t1, in_wms[0])


def run_direct(root: Path, instance: str, n: int, image: Path) -> Rep:
    """The same jobs as one hand-written itemdata cluster; no registry, no staging."""
    plan = plan_request(ToolRequest("band", {"image": str(image)}, {"band": 2}))
    (name,) = plan.inputs.values()
    staged = root / "direct-in"
    staged.mkdir()
    (staged / str(name)).write_bytes(image.read_bytes())  # the sandbox name the plan expects
    out_dir = root / "direct-out"
    out_dir.mkdir()
    schedd = htcondor2.Schedd()
    t0 = time.perf_counter()
    sub = htcondor2.Submit(
        {
            "universe": "vanilla",
            "executable": str(plan.executable),
            "arguments": '"' + " ".join(plan.arguments) + '"',
            "initialdir": str(out_dir),
            "output": "$(ProcId).out",
            "error": "$(ProcId).err",
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": str(staged / str(name)),
            "request_cpus": str(plan.request_cpus),
            "request_memory": str(NEVER_MATCHES_MB),
            "request_disk": str(plan.request_disk_mb * 1024),
            "accounting_group": str(OWNER.accounting_group),
            "MY.GprocInstance": classad2.quote(instance),
            "MY.GprocTaskId": "$(tid)",
        }
    )
    items = [{"tid": classad2.quote(uuid.uuid4().hex)} for _ in range(n)]
    result = schedd.submit(sub, spool=True, itemdata=iter(items))
    schedd.spool(result)
    t1 = time.perf_counter()
    if result.num_procs() != n:
        raise SystemExit(f"direct submission made {result.num_procs()} jobs, not {n}")
    return Rep(0.0, t1 - t0, t1 - t0)


def clean(prefix: str, timeout: float = DRAIN_TIMEOUT_S) -> int:
    """Remove every job whose instance starts with ``prefix``; wait until they are gone."""
    schedd = htcondor2.Schedd()
    mine = f'regexp({classad2.quote("^" + prefix)}, GprocInstance ?: "")'
    ads = schedd.query(mine, ["ClusterId"])
    if not ads:
        return 0
    schedd.edit(mine, "GprocRetrieved", classad2.ExprTree("true"))  # lifts leave_in_queue
    schedd.act(htcondor2.JobAction.Remove, f"({mine}) && JobStatus != 3", "benchmark cleanup")
    deadline = time.monotonic() + timeout
    while schedd.query(mine, ["ClusterId"]):
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs of {prefix} still in the queue after {timeout:.0f} s")
        schedd.act(htcondor2.JobAction.RemoveX, f"({mine}) && JobStatus == 3", "benchmark cleanup")
        time.sleep(1.0)
    return len(ads)


def _rate(n: int, seconds: list[float]) -> str:
    med = statistics.median(seconds)
    runs = ", ".join(f"{x:.2f}" for x in seconds)
    return f"{n / med:8.1f} tasks/s  (median {med:5.2f} s; runs {runs})"


def run_reps(n: int, reps: int, run_id: str, tmp: Path) -> tuple[list[Rep], list[Rep]]:
    """Alternate the two modes (gproc first on even reps); empty the queue after each rep."""
    image = tmp / "bands.tif"
    image.write_bytes(b"II*\x00" + bytes(60))  # tiny: the jobs never run
    out: dict[str, list[Rep]] = {"gproc": [], "direct": []}
    for rep in range(reps):
        for mode in ("gproc", "direct") if rep % 2 == 0 else ("direct", "gproc"):
            root = tmp / f"{mode}{rep}"
            root.mkdir()
            run = run_gproc if mode == "gproc" else run_direct
            out[mode].append(run(root, f"{run_id}-{mode}{rep}", n, image))
            print(f"rep {rep + 1} {mode:6s}: {n / out[mode][-1].total_s:8.1f} tasks/s", flush=True)
        clean(run_id)
    return out["gproc"], out["direct"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--state-dir", default="/work/main/.state", help="personal pool state dir")
    args = ap.parse_args(argv)
    pool = PersonalPool(args.state_dir)
    if not pool.is_up():
        raise SystemExit(f"the personal pool under {args.state_dir} is not up: gproc pool up")
    pool.activate_client()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="gproc-bench-") as tmp:
            gp, direct = run_reps(args.tasks, args.reps, run_id, Path(tmp))
    finally:
        removed = clean(run_id)
    report(args.tasks, gp, direct)
    print(f"left in the queue by this run: none (removed {removed} at the end)")


def report(n: int, gp: list[Rep], direct: list[Rep]) -> None:
    g_total = statistics.median(r.total_s for r in gp)
    d_total = statistics.median(r.total_s for r in direct)
    print(f"\ntasks per batch: {n} (band connector, one tiny input each, spooled); reps: {len(gp)}")
    print(f"gproc register       : {_rate(n, [r.register_s for r in gp])}")
    print(f"gproc submit         : {_rate(n, [r.submit_s for r in gp])}")
    print(f"  of which schedd    : {_rate(n, [r.schedd_s for r in gp])}")
    print(f"gproc register+submit: {_rate(n, [r.total_s for r in gp])}")
    print(
        f"gproc own work       : {_rate(n, [r.total_s - r.schedd_s for r in gp])}"
        "  (outside schedd calls)"
    )
    print(f"direct htcondor2     : {_rate(n, [r.total_s for r in direct])}  (baseline)")
    ratio = d_total / g_total
    pairs = ", ".join(f"{d.total_s / g.total_s:.2f}" for g, d in zip(gp, direct, strict=True))
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"ratio gproc/direct   : {ratio:.2f} (per rep: {pairs}); goal >= 0.5: {verdict}")
    rate = n / g_total
    print(
        f"gproc >= 1000 tasks/s: {'yes' if rate >= 1000 else 'no'} ({rate:.0f} tasks/s; "
        f"the direct baseline itself: {n / d_total:.0f} tasks/s)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
