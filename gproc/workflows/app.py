"""Assemble the workflow core from settings: store, DAGMan runner, directories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gproc.domain import Owner
from gproc.leader import WORKFLOWS, leadership_for
from gproc.registry import make_engine
from gproc.settings import Settings
from gproc.staging import InputResolver, local_file_resolver
from gproc.workflows.catalogue import WorkflowCatalogue
from gproc.workflows.notify import Notifier
from gproc.workflows.service import OutputSink, WorkflowDirs, WorkflowService
from gproc.workflows.store import WorkflowStore
from gproc.workflows.tracker import WorkflowTracker
from gproc.wrappers.dag_base import DagRunner


def build_runner(settings: Settings) -> DagRunner:
    """The DAG engine of the configured WMS (HTCondor: DAGMan on its schedd)."""
    if settings.wms != "htcondor":
        raise LookupError(f"workflows need HTCondor DAGMan; the WMS is {settings.wms!r}")
    from gproc.wrappers.htcondor.client import activate_if_present
    from gproc.wrappers.htcondor.dag import HTCondorDagRunner
    from gproc.wrappers.htcondor.pool import PersonalPool

    config = Path(settings.htcondor.condor_config or PersonalPool(settings.state_dir).client_config)
    activate_if_present(config)
    wf = settings.workflow
    return HTCondorDagRunner(
        settings.htcondor.instance,
        schedd_name=settings.htcondor.schedd_name,
        collector=settings.htcondor.collector,
        dagman=wf.dagman,
        scan_interval_s=wf.scan_interval_s,
        status_interval_s=wf.status_interval_s,
        client_config=config,
    )


def build_workflow_service(
    settings: Settings,
    *,
    runner: DagRunner | None = None,
    store: WorkflowStore | None = None,
    local_roots: tuple[Path, ...] | None = None,
    resolve_input: InputResolver | None = None,
    resolver_for: Callable[[Owner], InputResolver] | None = None,
    output_sink: OutputSink | None = None,
    catalogue: WorkflowCatalogue | None = None,
) -> WorkflowService:
    """``local_roots=None`` lets the caller name any local file (the CLI acts as the local
    user); network entry points pass ``()`` or an owner-aware resolver (``resolver_for``),
    where final outputs go (``output_sink``) and the catalogue for catalogue data."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return WorkflowService(
        store
        or WorkflowStore(
            make_engine(settings.database_url), auto_upgrade=settings.database.auto_upgrade
        ),
        runner or build_runner(settings),
        WorkflowDirs(settings.workflows_dir),
        resolve_input or local_file_resolver(local_roots),
        max_nodes=settings.workflow.max_nodes,
        node_retry=settings.workflow.node_retry,
        resolver_for=resolver_for,
        output_sink=output_sink,
        catalogue=catalogue,
        max_query_branches=settings.workflow.max_query_branches,
    )


def build_workflow_tracker(service: WorkflowService, settings: Settings) -> WorkflowTracker:
    """On PostgreSQL the replicas elect one workflow tracker (its own lock: it may run
    in other processes than the task tracker); on SQLite the in-process one leads."""
    return WorkflowTracker(
        service,
        interval_s=settings.workflow.interval_s,
        submit_grace_s=settings.workflow.submit_grace_s,
        leadership=leadership_for(service.store.engine, settings.tracker.replica_name, WORKFLOWS),
    )


def build_notifier(
    service: WorkflowService, settings: Settings, tracker: WorkflowTracker | None = None
) -> Notifier:
    """Workflow callbacks; beside a tracker, delivered only while that tracker leads."""
    wf = settings.workflow
    lead = tracker.leadership if tracker is not None else None
    return Notifier(
        service.store,
        timeout_s=wf.callback_timeout_s,
        max_attempts=wf.callback_max_attempts,
        backoff_s=wf.callback_backoff_s,
        gate=(lambda: lead.is_leader) if lead is not None else None,
    )
