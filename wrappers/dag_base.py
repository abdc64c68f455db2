"""The DAG-engine interface the workflow core talks to (HTCondor: DAGMan).

A workflow runs as *one* engine job that runs the node jobs itself (the engine is
the scheduler, never the service). Node descriptions are ordinary
:class:`~gproc.wrappers.base.JobSpec` values, so the same validation and quoting
as for single tasks applies to every node. States are WMS-neutral
(:class:`~gproc.wrappers.base.JobState`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from gproc.wrappers.base import TASK_ID_RE, JobInfo, JobSpec

DAG_NODE_RE = re.compile(r"^n[0-9]{1,5}_[A-Za-z][A-Za-z0-9_]{0,31}$")
"""DAG node names: an index, the document's node name, an optional branch number."""


class NodeStatus(StrEnum):
    """A node as the DAG engine reports it at the end of a run (or live)."""

    WAITING = "waiting"  # parents not done yet
    READY = "ready"  # may be submitted
    QUEUED = "queued"  # its job is in the queue
    DONE = "done"
    FAILED = "failed"
    FUTILE = "futile"  # an ancestor failed: it will not run


@dataclass(frozen=True)
class DagNode:
    name: str  # matches DAG_NODE_RE
    job: JobSpec  # task_id is the workflow id; input files live in the DAG directory
    parents: tuple[str, ...] = ()
    retry: int = 0
    meta_json: str = "{}"  # document meta-attributes, passed on to the node's jobs


@dataclass(frozen=True)
class DagSpec:
    """One run of a workflow: ``files`` are shipped to the engine's working directory
    (workflow inputs, a rescue file, outputs of nodes already done)."""

    workflow_id: str
    attempt: int
    nodes: tuple[DagNode, ...]
    files: tuple[Path, ...]
    run_dir: Path  # where the run's files come back
    accounting_group: str | None = None

    def __post_init__(self) -> None:
        if not TASK_ID_RE.fullmatch(self.workflow_id):
            raise ValueError(f"workflow id {self.workflow_id!r} is not a uuid4 hex string")


@dataclass(frozen=True)
class DagRun:
    """The engine job of one workflow attempt."""

    workflow_id: str
    attempt: int
    job: JobInfo


@dataclass(frozen=True)
class NodeJob:
    """One job the engine ran (or runs) for a node; a retried node has several."""

    workflow_id: str
    node: str
    job: JobInfo
    dag_job_id: str | None = None


@dataclass(frozen=True)
class NodeReport:
    """A node's line in the engine's node status file."""

    node: str
    status: NodeStatus
    detail: str = ""
    retries: int = 0


class DagRunner(ABC):
    @abstractmethod
    def submit(self, spec: DagSpec) -> str:
        """Write the DAG into ``spec.run_dir`` and submit it as one engine job; its id.

        Raises WmsUnavailable (outcome unknown: look it up with :meth:`find`) or
        WmsRejected."""

    @abstractmethod
    def find(self, workflow_ids: Iterable[str], since: datetime | None = None) -> dict[str, DagRun]:
        """Engine jobs by workflow id, queue then history; the highest attempt wins.
        ``since``: the history older than this is not read (no job of these is there)."""

    @abstractmethod
    def node_jobs(
        self, workflow_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, list[NodeJob]]:
        """Every node job of these workflows (all attempts), queue and history."""

    @abstractmethod
    def retrieve(self, job_id: str, run_dir: Path) -> list[Path]:
        """Fetch a finished engine job's directory (node outputs, logs, status) into run_dir."""

    @abstractmethod
    def node_reports(self, run_dir: Path) -> list[NodeReport]:
        """The node status file of a retrieved run ([] if there is none)."""

    @abstractmethod
    def rescue_file(self, run_dir: Path) -> Path | None:
        """The newest rescue DAG a failed run left, if any."""

    @abstractmethod
    def log_files(self, run_dir: Path) -> dict[str, Path]:
        """The engine's own log and each node's stdout/stderr in a retrieved run."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str], reason: str) -> None:
        """Remove engine jobs; the engine removes their node jobs."""

    @abstractmethod
    def forget(self, job_ids: Sequence[str]) -> None:
        """Let finished engine jobs leave the queue (their files are safe)."""
