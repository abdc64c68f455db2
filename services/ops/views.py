"""The JSON shape of ``GET /ops/summary`` (documented in the README, drawn by
``static/dashboard.js``): plain dicts from the core's typed figures."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from gproc.operations import StateSeries, Summary, throughput
from gproc.services.ops.health import ServiceHealth
from gproc.wrappers.base import JobCounts, NodeSlots

VERSION = 1


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _slots(n: NodeSlots) -> dict[str, Any]:
    return asdict(n)


def _jobs(j: JobCounts) -> dict[str, int]:
    return {**asdict(j), "total": j.total}


def _series(s: StateSeries) -> dict[str, list[int]]:
    return {state: list(v) for state, v in sorted(s.counts.items())}


def summary_json(summary: Summary, services: list[ServiceHealth]) -> dict[str, Any]:
    w, pool = summary.window, summary.pool.summary
    pool_doc: dict[str, Any] = {"available": pool is not None, "error": summary.pool.error}
    if pool is not None:
        total = _slots(pool.slots)
        del total["node"]
        pool_doc.update(
            schedd=pool.schedd,
            slots=total,
            nodes=[_slots(n) for n in pool.nodes],
            jobs=_jobs(pool.jobs),
            gproc_jobs=_jobs(pool.instance_jobs),
        )
    beat = summary.tracker
    return {
        "version": VERSION,
        "generated_at": _iso(summary.generated_at),
        "window": {
            "start": _iso(w.start),
            "end": _iso(w.end),
            "bucket_s": w.bucket_s,
            "buckets": [_iso(b) for b in summary.tasks_over_time.buckets],
        },
        "pool": pool_doc,
        "tasks": {
            "by_state": summary.tasks_by_state,
            "over_time": _series(summary.tasks_over_time),
        },
        "workflows": {
            "by_state": summary.workflows_by_state,
            "over_time": _series(summary.workflows_over_time),
        },
        "throughput": {
            "completed": throughput(summary.tasks_over_time, ("completed",)),
            "failed": throughput(summary.tasks_over_time, ("failed",)),
        },
        "failures": [asdict(f) for f in summary.failures],
        "usage": [asdict(u) for u in summary.usage],
        "tracker": None
        if beat is None
        else {
            "last_cycle_at": _iso(beat.at),
            "age_s": round(beat.age_s(), 1),
            "cycle_ms": beat.cycle_ms,
            "errors": beat.errors,
        },
        "services": [asdict(s) for s in services],
        "notes": summary.notes,
    }
