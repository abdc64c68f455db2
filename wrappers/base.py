"""The workload-manager (WMS) interface gproc's core talks to.

Another batch system is one more implementation of :class:`WorkloadManager`;
the core never sees HTCondor types. Job states are WMS-neutral
(:class:`JobState`); each implementation owns a pure table from its own status
codes to these.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gproc import errors

TASK_ID_RE = re.compile(r"^[0-9a-f]{32}$")
"""Task ids are uuid4 hex: the only form ever placed in a job description."""


class JobState(StrEnum):
    """What the WMS says of a job, in gproc's words."""

    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"  # ended, exit code 0
    FAILED = "failed"  # ended with non-zero exit code or signal
    REMOVED = "removed"  # cancelled in the WMS
    UNKNOWN = "unknown"  # the WMS no longer knows the job


class WmsError(errors.WmsUnavailable):
    """Base of all WMS failures (``Server.WmsUnavailable``: the WMS did not do it)."""

    def __init__(self, message: str = "", **where: Any) -> None:
        super().__init__(message, **where)


class WmsUnavailable(WmsError):
    """The WMS could not be reached; the operation may be retried later."""


class WmsRejected(WmsError):
    """The WMS refused the request (bad description, not authorised...): retrying the
    same request does not help."""

    code = "Server.WmsRejected"
    retryable = False


@dataclass(frozen=True)
class JobSpec:
    """Everything a WMS needs to run one task's job. All strings are validated upstream."""

    task_id: str
    executable: Path
    attempt: int = 1  # carried as GprocAttempt: tells a resubmission from an older job
    arguments: tuple[str, ...] = ()
    input_files: tuple[Path, ...] = ()  # local files; their basenames appear in the sandbox
    output_files: tuple[str, ...] = ()  # sandbox file names to bring back
    request_cpus: int = 1
    request_memory_mb: int = 512
    request_disk_mb: int = 1024
    accounting_group: str | None = None  # e.g. "group_testvo.grid"
    accounting_user: str | None = None
    x509_proxy: Path | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # extra Gproc* attributes

    def __post_init__(self) -> None:
        if not TASK_ID_RE.fullmatch(self.task_id):
            raise ValueError(f"task id {self.task_id!r} is not a uuid4 hex string")


@dataclass(frozen=True)
class SubmittedJob:
    task_id: str
    job_id: str  # global job id, unique across schedds and time


@dataclass(frozen=True)
class JobInfo:
    """One job as the WMS sees it now."""

    job_id: str
    task_id: str | None
    state: JobState
    attempt: int | None = None  # GprocAttempt of the job, if it carries one
    raw_status: int | None = None
    hold_reason: str | None = None
    hold_code: int | None = None
    hold_subcode: int | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spooling: bool = False  # inputs not yet uploaded (job cannot run yet)


@dataclass(frozen=True)
class JobEvent:
    """A typed job event (from the WMS event log)."""

    job_id: str | None
    cluster: int
    proc: int
    kind: str  # e.g. SUBMIT, EXECUTE, JOB_TERMINATED, JOB_HELD
    time: datetime
    state: JobState | None  # the state the event implies, if any
    detail: str = ""
    exit_code: int | None = None
    task_id: str | None = None  # gproc task id, when the event log carries it


@dataclass(frozen=True)
class PoolInfo:
    reachable: bool
    wms: str
    version: str = ""
    detail: str = ""
    slots: int = 0


@dataclass(frozen=True)
class NodeSlots:
    """The execute slots of one node, as the collector reports them."""

    node: str
    total: int
    claimed: int
    idle: int  # unclaimed: free for a job
    other: int = 0  # owner, matched, preempting, drained...
    cpus: int = 0


@dataclass(frozen=True)
class JobCounts:
    idle: int = 0
    running: int = 0
    held: int = 0
    other: int = 0  # completed, removed, transferring, suspended

    @property
    def total(self) -> int:
        return self.idle + self.running + self.held + self.other


@dataclass(frozen=True)
class PoolSummary:
    """The pool right now: slots per node (collector), jobs by state (schedd), for the
    whole schedd and for this gproc instance's jobs alone."""

    nodes: tuple[NodeSlots, ...]
    jobs: JobCounts
    instance_jobs: JobCounts
    schedd: str = ""

    @property
    def slots(self) -> NodeSlots:
        """The totals over every node (``node`` is ``"*"``)."""
        n = self.nodes
        return NodeSlots(
            "*",
            sum(x.total for x in n),
            sum(x.claimed for x in n),
            sum(x.idle for x in n),
            sum(x.other for x in n),
            sum(x.cpus for x in n),
        )


class WorkloadManager(ABC):
    """The grid job life cycle on one WMS."""

    name: str = "abstract"

    @abstractmethod
    def describe(self, spec: JobSpec) -> str:
        """The native job description for ``spec`` (what register shows the user)."""

    @abstractmethod
    def submit(self, specs: Sequence[JobSpec]) -> list[SubmittedJob]:
        """Submit jobs (inputs uploaded) and return their global ids, in order.

        Raises :class:`WmsUnavailable` when the WMS cannot be reached; a job
        may still have been created, so callers look it up with
        :meth:`find_jobs` before submitting again.
        """

    @abstractmethod
    def find_jobs(self, task_ids: Iterable[str] | None = None) -> dict[str, JobInfo]:
        """Jobs of this gproc instance by task id, queue and recent history.

        One queue query plus at most one history query. Where a task has
        several jobs, the one with the highest ``attempt`` wins (a job still in
        the queue wins a tie). ``None`` means every job of this instance.
        Used for reconciliation.
        """

    @abstractmethod
    def query(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """The current state of the given jobs with a constant number of WMS queries."""

    @abstractmethod
    def read_events(self, cursor: str | None) -> tuple[list[JobEvent], str | None]:
        """New events since ``cursor`` and the new cursor; ([], cursor) if unsupported."""

    @abstractmethod
    def retrieve(self, job_id: str, dest: Path) -> list[Path]:
        """Fetch the output sandbox of a finished job into ``dest``."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str], reason: str) -> None: ...

    @abstractmethod
    def hold(self, job_ids: Sequence[str], reason: str) -> None: ...

    @abstractmethod
    def release(self, job_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def forget(self, job_ids: Sequence[str]) -> None:
        """Let finished jobs leave the queue (after their output is safe)."""

    @abstractmethod
    def ping(self) -> PoolInfo: ...

    @abstractmethod
    def pool_summary(self) -> PoolSummary:
        """Slots per node and jobs by state, in a constant number of WMS queries;
        raises :class:`WmsUnavailable` when the WMS cannot be reached."""

    def refresh_proxy(self, job_ids: Sequence[str], proxy: Path) -> int:
        """Give a renewed proxy file to these jobs where they still wait or run;
        returns how many took it. A WMS that cannot returns 0 (jobs keep theirs)."""
        return 0
