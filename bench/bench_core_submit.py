"""Tasks per second through gproc's core (register + submit) vs a direct htcondor2
submission of the same jobs, measured in the same run, alternating; in the spooled
mode (the default) and in the shared-filesystem mode.

gproc: ``TaskService.register`` of N ``band`` tasks as one batch (validation,
input staging, registry rows), then ``TaskService.submit`` of them as one batch
(registry transitions, one itemdata cluster, job ids recorded; spooled: the input
upload; shared: the job directories). Each repetition uses a fresh SQLite state dir
and a fresh WMS instance name.
Direct (the baseline of each mode): one ``htcondor2.Submit`` with itemdata for the
same executable, arguments and input file in one ``Schedd.submit`` transaction:
``spool=True`` + ``Schedd.spool`` for the spooled mode, ``spool=False`` (the schedd's
own one-transaction ceiling) for the shared mode.

"schedd" is the time spent inside ``htcondor2.Schedd`` calls (wrapped in this
process); "own work" is the rest. The jobs request more memory than any slot has,
so they never run (gproc's job spec is changed only in that field). Every job of
the run is removed and waited out of the queue after each repetition and at the
end. Needs the personal pool up (``gproc pool up``); in the shared mode the
benchmark's directory is bind-mounted into the pool's root for the run.

Run: .venv/bin/python bench/bench_core_submit.py [--tasks 1000] [--reps 3]
     [--modes spooled shared] [--state-dir DIR]   (GPROC_POOL_PORT for another pool)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import wraps
from pathlib import Path
from typing import Any

import classad2
import htcondor2

from gproc.connectors import ToolRequest
from gproc.domain import Owner, TaskRequest
from gproc.lifecycle import TaskService, plan_request
from gproc.models import TaskRow
from gproc.registry import Registry
from gproc.settings import LimitsSettings, Settings
from gproc.staging import TaskDirs, local_file_resolver
from gproc.wrappers.base import JobSpec
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
SCHEDD_CALLS = ("submit", "spool", "query", "act", "edit", "history", "retrieve")
IN_SCHEDD = [0.0]


def _count_schedd_time() -> None:
    """Wrap the ``htcondor2.Schedd`` methods so their time adds up in IN_SCHEDD."""
    for name in SCHEDD_CALLS:
        original = getattr(htcondor2.Schedd, name)

        def timed(*a: Any, __f: Callable[..., Any] = original, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return __f(*a, **kw)
            finally:
                IN_SCHEDD[0] += time.perf_counter() - t

        setattr(htcondor2.Schedd, name, wraps(original)(timed))


class NeverRunsService(TaskService):
    """The core unchanged, except that its jobs can never match a slot."""

    def job_spec(self, row: TaskRow) -> JobSpec:
        return replace(super().job_spec(row), request_memory_mb=NEVER_MATCHES_MB)


@dataclass
class Rep:
    register_s: float
    submit_s: float
    schedd_s: float  # inside htcondor2.Schedd calls

    @property
    def total_s(self) -> float:
        return self.register_s + self.submit_s


@dataclass(frozen=True)
class Mode:
    name: str  # "spooled" or "shared"
    job_owner: tuple[int, int] | None = None

    @property
    def shared(self) -> bool:
        return self.name == "shared"


def never_runs_service(
    root: Path, instance: str, max_batch: int, src_dir: Path, mode: Mode
) -> NeverRunsService:
    """The core over a fresh SQLite state dir under ``root``, as build_service makes it."""
    settings = Settings(state_dir=root / "state", limits=LimitsSettings(max_batch=max_batch))
    settings.state_dir.mkdir(parents=True)
    wms = HTCondorWMS(
        instance,
        sandbox_root=root / "sandboxes",
        shared_filesystem=mode.shared,
        job_owner=mode.job_owner,
    )
    return NeverRunsService(
        Registry(settings.database_url),
        wms,
        TaskDirs(settings.tasks_dir),
        local_file_resolver((src_dir,)),
        max_batch=max_batch,
    )


def run_gproc(root: Path, instance: str, n: int, image: Path, mode: Mode) -> Rep:
    svc = never_runs_service(root, instance, n, image.parent, mode)
    requests = [
        TaskRequest(ToolRequest("band", {"image": str(image)}, {"band": 2}), OWNER)
        for _ in range(n)
    ]
    try:
        IN_SCHEDD[0] = 0.0
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
    return Rep(t1 - t0, t2 - t1, IN_SCHEDD[0])


def run_direct(root: Path, instance: str, n: int, image: Path, mode: Mode) -> Rep:
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
    result = schedd.submit(sub, spool=not mode.shared, itemdata=iter(items))
    if not mode.shared:
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


def run_reps(
    n: int, reps: int, run_id: str, tmp: Path, mode: Mode, profile: cProfile.Profile | None
) -> tuple[list[Rep], list[Rep]]:
    """Alternate gproc and direct (gproc first on even reps); empty the queue after each."""
    image = tmp / "bands.tif"
    image.write_bytes(b"II*\x00" + bytes(60))  # tiny: the jobs never run
    out: dict[str, list[Rep]] = {"gproc": [], "direct": []}
    for rep in range(reps):
        for who in ("gproc", "direct") if rep % 2 == 0 else ("direct", "gproc"):
            root = tmp / f"{mode.name}-{who}{rep}"
            root.mkdir()
            instance = f"{run_id}-{mode.name[:2]}{who[0]}{rep}"
            if who == "gproc" and profile is not None:
                profile.enable()
            try:
                run = run_gproc if who == "gproc" else run_direct
                out[who].append(run(root, instance, n, image, mode))
            finally:
                if who == "gproc" and profile is not None:
                    profile.disable()
            print(
                f"{mode.name} rep {rep + 1} {who:6s}: {n / out[who][-1].total_s:8.1f} tasks/s",
                flush=True,
            )
        clean(run_id)
    return out["gproc"], out["direct"]


@contextmanager
def _shared_with(pool: PersonalPool, path: Path) -> Iterator[None]:
    path.chmod(0o755)
    pool.share(path)
    try:
        yield
    finally:
        pool.unshare(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", nargs="+", choices=("spooled", "shared"), default=["spooled"])
    ap.add_argument(
        "--state-dir",
        default=os.environ.get("GPROC_STATE_DIR", "/work/main/.state"),
        help="personal pool state dir",
    )
    ap.add_argument("--profile", help="write a cProfile of the gproc runs here (last mode)")
    args = ap.parse_args(argv)
    pool = PersonalPool(args.state_dir)
    if not pool.is_up():
        raise SystemExit(f"the personal pool under {args.state_dir} is not up: gproc pool up")
    pool.activate_client()
    _count_schedd_time()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    results = {}
    try:
        for name in args.modes:
            mode = Mode(name, pool.job_owner() if name == "shared" else None)
            profile = cProfile.Profile() if args.profile else None
            with tempfile.TemporaryDirectory(prefix="gproc-bench-") as tmp:
                if mode.shared:
                    with _shared_with(pool, Path(tmp)):
                        results[name] = run_reps(
                            args.tasks, args.reps, run_id, Path(tmp), mode, profile
                        )
                else:
                    results[name] = run_reps(
                        args.tasks, args.reps, run_id, Path(tmp), mode, profile
                    )
            if profile is not None:
                profile.dump_stats(args.profile)
    finally:
        removed = clean(run_id)
    for name, (gp, direct) in results.items():
        report(args.tasks, name, gp, direct)
    print(f"\nleft in the queue by this run: none (removed {removed} at the end)")
    if args.profile:
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)


def report(n: int, mode: str, gp: list[Rep], direct: list[Rep]) -> None:
    g_total = statistics.median(r.total_s for r in gp)
    d_total = statistics.median(r.total_s for r in direct)
    baseline = (
        "direct htcondor2, unspooled (the schedd's one-transaction ceiling)"
        if mode == "shared"
        else "direct htcondor2, spooled"
    )
    print(f"\n== {mode} mode: {n} tasks per batch (band, one tiny input each); reps {len(gp)}")
    print(f"gproc register       : {_rate(n, [r.register_s for r in gp])}")
    print(f"gproc submit         : {_rate(n, [r.submit_s for r in gp])}")
    print(f"  of which schedd    : {_rate(n, [r.schedd_s for r in gp])}")
    print(f"gproc register+submit: {_rate(n, [r.total_s for r in gp])}")
    own = [r.total_s - r.schedd_s for r in gp]
    print(f"gproc own work       : {_rate(n, own)}  (outside schedd calls)")
    print(f"baseline             : {_rate(n, [r.total_s for r in direct])}  ({baseline})")
    ratio = d_total / g_total
    pairs = ", ".join(f"{d.total_s / g.total_s:.2f}" for g, d in zip(gp, direct, strict=True))
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"ratio gproc/baseline : {ratio:.2f} (per rep: {pairs}); goal >= 0.5: {verdict}")
    if mode == "shared":
        own_rate = n / statistics.median(own)
        print(
            f"gproc own work >= 2000 tasks/s: {'met' if own_rate >= 2000 else 'NOT met'} "
            f"({own_rate:.0f} tasks/s)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
