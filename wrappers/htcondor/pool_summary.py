"""The pool summary of :class:`~gproc.wrappers.htcondor.schedd.HTCondorWMS`: slots per
node from the collector's startd ads, jobs by state from the schedd's queue.

Two queries with small projections: one collector query (``Machine``, ``State``,
``Cpus``, ``SlotType``) and one schedd query (``JobStatus``, ``GprocInstance``). A
partitionable slot counts once, with the CPUs it still offers; its dynamic
children are the claimed slots carved out of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from gproc.wrappers.base import JobCounts, NodeSlots

SLOT_ATTRS = ["Machine", "Name", "State", "Cpus", "SlotType"]
JOB_ATTRS = ["JobStatus", "GprocInstance"]
_JOB_STATUS = {1: "idle", 2: "running", 5: "held"}  # the rest: "other"


def node_slots(ads: Iterable[Mapping[str, Any]]) -> tuple[NodeSlots, ...]:
    """Slots per node, sorted by node name."""
    per: dict[str, Counter[str]] = {}
    for ad in ads:
        node = str(ad.get("Machine") or str(ad.get("Name", "?")).partition("@")[2] or "?")
        c = per.setdefault(node, Counter())
        state = str(ad.get("State", ""))
        kind = "claimed" if state == "Claimed" else "idle" if state == "Unclaimed" else "other"
        c["total"] += 1
        c[kind] += 1
        c["cpus"] += int(ad.get("Cpus") or 0)
    return tuple(
        NodeSlots(n, c["total"], c["claimed"], c["idle"], c["other"], c["cpus"])
        for n, c in sorted(per.items())
    )


def job_counts(ads: Iterable[Mapping[str, Any]], instance: str) -> tuple[JobCounts, JobCounts]:
    """Jobs by state for the whole queue and for ``instance``'s jobs."""
    every: Counter[str] = Counter()
    mine: Counter[str] = Counter()
    for ad in ads:
        kind = _JOB_STATUS.get(int(ad.get("JobStatus") or 0), "other")
        every[kind] += 1
        if ad.get("GprocInstance") == instance:
            mine[kind] += 1
    return _counts(every), _counts(mine)


def _counts(c: Counter[str]) -> JobCounts:
    return JobCounts(c["idle"], c["running"], c["held"], c["other"])
