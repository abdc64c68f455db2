"""Cost of one tracker cycle with 1,000 and 10,000 tracked tasks: schedd calls per
cycle and milliseconds per cycle, for an event-only cycle and a reconciling cycle,
against one raw ``Schedd.query`` of the same jobs with the same projection.

The tasks are real: registered and submitted through ``TaskService`` (``band``
connector, tiny input, spooled, in batches of 1,000; the jobs ask for more memory
than any slot has, see bench_core_submit.py), then all held with one schedd act by
the instance constraint, so 10,000 tasks are tracked without running 10,000 jobs.
The tracker follows the pool's event log from its end; it first catches up with
the submit and hold events (reported as "catch-up": the tracker applies a cycle's
events in memory and writes them in one transaction), then the same events are
applied again the way the tracker did before (for each event a registry read and one
durable compare-and-set transaction; "per-event baseline", after the tasks are set
back to ``submitted``), so the two rates are measured in the same run. Then the
cycles are measured, alternating event-only, reconciling and the raw query. Schedd
calls are counted by wrapping the methods of ``htcondor2.Schedd`` in this process.
Every job is removed at the end. Needs the personal pool up (``gproc pool up``).

Run: .venv/bin/python bench/bench_tracker.py [--sizes 1000 10000] [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import classad2
import htcondor2
from bench_core_submit import OWNER, clean, never_runs_service

from gproc.connectors import ToolRequest
from gproc.domain import TaskRequest
from gproc.lifecycle import TaskService
from gproc.models import TaskRow
from gproc.registry import ConcurrentChange
from gproc.states import TaskState, can_transition, task_state_for
from gproc.tracker import CURSOR_KEY, Tracker, _cluster_proc
from gproc.wrappers.htcondor.pool import PersonalPool
from gproc.wrappers.htcondor.schedd import INFO_ATTRS, HTCondorWMS
from gproc.wrappers.htcondor.states import HOLD_SPOOLING_INPUT

BATCH = 1000
CATCH_UP_TIMEOUT_S = 240.0
SCHEDD_METHODS = (
    "query",
    "history",
    "jobEpochHistory",
    "act",
    "edit",
    "submit",
    "spool",
    "retrieve",
    "export_jobs",
    "import_exported_job_results",
    "unexport_jobs",
)
CALLS: Counter[str] = Counter()


def count_schedd_calls() -> None:
    """Wrap the schedd methods of the bindings so every real call is counted."""
    for name in SCHEDD_METHODS:
        original = getattr(htcondor2.Schedd, name, None)
        if original is None:
            continue

        def counted(
            *args: Any, __name: str = name, __fn: Callable[..., Any] = original, **kwargs: Any
        ) -> Any:
            CALLS[__name] += 1
            return __fn(*args, **kwargs)

        setattr(htcondor2.Schedd, name, wraps(original)(counted))


def skip_to_log_end(svc: TaskService) -> None:
    """Start following the event log where it ends now, as a running tracker would."""
    cursor: str | None = None
    while True:
        _events, new = svc.wms.read_events(cursor)
        if new == cursor:
            break
        cursor = new
    if cursor is not None:
        svc.registry.set_meta(CURSOR_KEY, cursor)


def submit_held(svc: TaskService, n: int, image: Path) -> float:
    """n tasks registered and submitted through the core, then held; seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        reqs = [
            TaskRequest(ToolRequest("band", {"image": str(image)}, {"band": 2}), OWNER)
            for _ in range(min(BATCH, n - start))
        ]
        views = svc.register(reqs)
        results = svc.submit([v.id for v in views])
        if any(r.task is None or r.task.job_id is None for r in results):
            raise SystemExit("submission through the core failed")
    wms = svc.wms
    assert isinstance(wms, HTCondorWMS)
    hold_all(wms_constraint(wms), n)
    return time.perf_counter() - t0


def hold_all(mine: str, n: int) -> None:
    """Hold the jobs once the schedd has released them from the input-spooling hold
    (a job still spooling counts as held already, and would be released after)."""
    schedd = htcondor2.Schedd()
    held = f"({mine}) && JobStatus == 5 && HoldReasonCode =!= {HOLD_SPOOLING_INPUT}"
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while len(schedd.query(held, ["ClusterId"])) < n:
        if time.monotonic() > deadline:
            raise SystemExit("the jobs could not all be held")
        schedd.act(htcondor2.JobAction.Hold, f"({mine}) && JobStatus == 1", "benchmark: held")
        time.sleep(0.5)


def wms_constraint(wms: HTCondorWMS) -> str:
    return f"GprocInstance == {classad2.quote(wms.instance)}"


def catch_up(tracker: Tracker, n: int) -> tuple[float, int, int]:
    """Event-only cycles until every task is HELD: (seconds, cycles, events applied)."""
    t0 = time.perf_counter()
    cycles = events = 0
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        stats = tracker.cycle(reconcile=False)
        cycles += 1
        events += stats.events
        held = len(tracker.svc.registry.in_states([TaskState.HELD]))
        if held == n:
            return time.perf_counter() - t0, cycles, events
        if time.monotonic() > deadline:
            raise SystemExit(f"only {held}/{n} tasks HELD after {CATCH_UP_TIMEOUT_S:.0f} s")
        if stats.events == 0:
            time.sleep(0.5)


def per_event_baseline(svc: TaskService, cursor: str | None) -> tuple[float, int]:
    """(seconds, events applied) replaying the events since ``cursor`` one durable
    transaction per event, each after a registry read: the former tracker's costs."""
    with svc.registry.session() as s:  # back to where the events start from
        s.execute(
            TaskRow.__table__.update().values(state="submitted", hold_reason=None)  # type: ignore[attr-defined]
        )
        s.commit()
    t0 = time.perf_counter()
    events, _ = svc.wms.read_events(cursor)
    rows = svc.registry.in_states([TaskState.SUBMITTED])
    by_job = {r.job_id: r.id for r in rows if r.job_id}
    by_cluster = {_cluster_proc(j): t for j, t in by_job.items()}
    applied = 0
    for ev in events:
        task_id = by_job.get(ev.job_id or "") or by_cluster.get((ev.cluster, ev.proc))
        if task_id is None or ev.state is None:
            continue
        row = svc.registry.get(task_id)
        target = task_state_for(ev.state)
        current = TaskState(row.state)
        if target is None or not can_transition(current, target):
            continue
        applied += 1
        fields = {"hold_reason": ev.detail} if target == TaskState.HELD else {}
        with contextlib.suppress(ConcurrentChange):
            svc.registry.transition(task_id, current, target, kind=ev.kind, **fields)
    return time.perf_counter() - t0, applied


def timed(fn: Callable[[], Any]) -> tuple[float, int]:
    """(milliseconds, schedd calls) of one call of ``fn``."""
    before = sum(CALLS.values())
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000, sum(CALLS.values()) - before


def measure(n: int, reps: int, pool: PersonalPool, run_id: str, tmp: Path) -> dict[str, Any]:
    image = tmp / "bands.tif"
    image.write_bytes(b"II*\x00" + bytes(60))
    instance = f"{run_id}-n{n}"
    svc = never_runs_service(tmp / f"n{n}", instance, BATCH, tmp, event_log=pool.event_log)
    wms = svc.wms
    assert isinstance(wms, HTCondorWMS)
    tracker = Tracker(svc)
    skip_to_log_end(svc)
    start_cursor = svc.registry.get_meta(CURSOR_KEY)
    setup_s = submit_held(svc, n, image)
    print(f"  [{n}] {n} tasks submitted and held in {setup_s:.1f} s", flush=True)
    catch_s, catch_cycles, catch_events = catch_up(tracker, n)
    print(f"  [{n}] catch-up done: {catch_events} events in {catch_s:.1f} s", flush=True)
    base_s, base_events = per_event_baseline(svc, start_cursor)
    print(f"  [{n}] per-event baseline done: {base_events} in {base_s:.1f} s", flush=True)
    tracker.cycle(reconcile=True)  # the tracker's view again, whatever the replay left
    schedd = htcondor2.Schedd()
    raw_query = lambda: schedd.query(wms_constraint(wms), INFO_ATTRS)  # noqa: E731
    results: dict[str, list[tuple[float, int]]] = {"event": [], "reconcile": [], "raw": []}
    for _ in range(reps):
        results["event"].append(timed(lambda: tracker.cycle(reconcile=False)))
        results["reconcile"].append(timed(lambda: tracker.cycle(reconcile=True)))
        results["raw"].append(timed(raw_query))
    if len(schedd.query(wms_constraint(wms), ["ClusterId"])) != n:
        raise SystemExit("the queue does not hold the tracked jobs any more")
    held = len(svc.registry.in_states([TaskState.HELD]))
    svc.registry.close()
    return {
        "n": n,
        "setup_s": setup_s,
        "catch_s": catch_s,
        "catch_cycles": catch_cycles,
        "catch_events": catch_events,
        "base_s": base_s,
        "base_events": base_events,
        "held": held,
        **results,
    }


def report(r: dict[str, Any]) -> None:
    n = r["n"]
    raw_ms = statistics.median(ms for ms, _ in r["raw"])
    print(
        f"\n{n} tracked tasks (all HELD: {r['held'] == n}); setup through the core "
        f"{r['setup_s']:.1f} s ({n / r['setup_s']:.0f} tasks/s)"
    )
    print(
        f"  catch-up  : {r['catch_cycles']} event cycles, {r['catch_events']} events applied, "
        f"{r['catch_s']:.1f} s ({r['catch_events'] / r['catch_s']:.0f} events/s)"
    )
    new_rate = r["catch_events"] / r["catch_s"]
    base_rate = r["base_events"] / r["base_s"]
    print(
        f"  per-event : {r['base_events']} events in {r['base_s']:.1f} s ({base_rate:.0f} events/s)"
        f"; one transaction per cycle x{new_rate / base_rate:.1f}"
    )
    for key, label in (
        ("event", "event-only cycle"),
        ("reconcile", "reconciling cycle"),
        ("raw", "raw Schedd.query"),
    ):
        ms = [m for m, _ in r[key]]
        calls = sorted({c for _, c in r[key]})
        med = statistics.median(ms)
        runs = ", ".join(f"{m:.0f}" for m in ms)
        ratio = "" if key == "raw" else f"  x{med / raw_ms:.1f} vs raw query"
        print(f"  {label:18s}: {med:8.1f} ms  schedd calls/cycle {calls}  (runs {runs}){ratio}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--state-dir", default="/work/main/.state", help="personal pool state dir")
    args = ap.parse_args(argv)
    pool = PersonalPool(args.state_dir)
    if not pool.is_up():
        raise SystemExit(f"the personal pool under {args.state_dir} is not up: gproc pool up")
    pool.activate_client()
    count_schedd_calls()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="gproc-bench-") as tmp:
                try:
                    report(measure(n, args.reps, pool, run_id, Path(tmp)))
                except SystemExit as exc:  # say why before the cleanup may say more
                    print(f"  [{n}] stopped: {exc}", flush=True)
                    raise
                finally:
                    clean(run_id)
    finally:
        clean(run_id)
    print(f"\nschedd calls in this process, all phases: {dict(CALLS)}")


if __name__ == "__main__":
    main(sys.argv[1:])
