"""Assemble the core from settings: registry, WMS, task directories, task data.

WMS implementations register under the ``gproc.wms`` entry-point group
(see pyproject.toml), so another batch system plugs in without touching the core.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gproc.leader import leadership_for
from gproc.lifecycle import TaskService
from gproc.notify import Deliverer
from gproc.registry import Registry
from gproc.settings import Settings
from gproc.staging import TaskDirs, local_file_resolver
from gproc.task_data import LocalTaskData, TaskData
from gproc.task_notify import task_deliverer
from gproc.tracker import Tracker
from gproc.wrappers.base import WorkloadManager


def load_wms(settings: Settings) -> WorkloadManager:
    name = settings.wms
    eps = {ep.name: ep for ep in entry_points(group="gproc.wms")}
    if name not in eps:
        raise LookupError(f"no WMS implementation {name!r}; installed: {sorted(eps)}")
    factory: Any = eps[name].load()
    wms: WorkloadManager = factory(getattr(settings, name).model_dump(), settings.state_dir)
    return wms


def build_service(
    settings: Settings,
    *,
    wms: WorkloadManager | None = None,
    local_roots: tuple[Path, ...] | None = None,
    task_data: TaskData | None = None,
) -> TaskService:
    """The core service. ``local_roots=None`` lets callers name any local file as input
    (the CLI acts as the local user); network entry points pass ``()``. ``task_data``
    replaces local files as the source of inputs and the sink of outputs."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return TaskService(
        Registry(settings.database_url, auto_upgrade=settings.database.auto_upgrade),
        wms or load_wms(settings),
        TaskDirs(settings.tasks_dir),
        task_data or LocalTaskData(local_file_resolver(local_roots)),
        max_batch=settings.limits.max_batch,
        max_inline=settings.limits.max_inline_input_bytes,
        replica=settings.tracker.replica_name,
        claim_lease_s=settings.tracker.claim_lease_s,
    )


def build_tracker(service: TaskService, settings: Settings) -> Tracker:
    return Tracker(
        service,
        interval_s=settings.tracker.interval_s,
        reconcile_every=settings.tracker.reconcile_every,
        submit_grace_s=settings.tracker.submit_grace_s,
        # PostgreSQL: replicas elect one tracker; SQLite: the in-process one leads
        leadership=leadership_for(service.registry.engine, service.replica),
    )


def build_task_deliverer(
    service: TaskService, settings: Settings, tracker: Tracker | None = None
) -> Deliverer:
    """Delivers task callbacks; retry knobs shared with workflow callbacks. Beside a
    tracker it delivers only while that tracker leads (one deliverer per registry)."""
    wf = settings.workflow
    lead = tracker.leadership if tracker is not None else None
    return task_deliverer(
        service.registry.engine,
        timeout_s=wf.callback_timeout_s,
        max_attempts=wf.callback_max_attempts,
        backoff_s=wf.callback_backoff_s,
        gate=(lambda: lead.is_leader) if lead is not None else None,
    )
