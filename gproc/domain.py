"""Domain types the entry points (CLI, SOAP) exchange with the core, and the typed
records the core keeps of a task (its plan and its outputs)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from gproc import errors
from gproc.connectors.base import JobPlan, ToolRequest
from gproc.errors import GprocError
from gproc.models import TaskRow
from gproc.states import TaskState
from gproc.task_data import Credential, TaskOwner

if TYPE_CHECKING:
    from sqlalchemy import Row

CLIENT_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class InvalidTaskRequest(errors.InvalidRequest):
    """A task request value is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class TaskStateConflict(errors.Conflict):
    """The operation does not fit the task's current state."""

    code = "Client.StateConflict"


class NotReady(TaskStateConflict):
    code = "Client.NotReady"


class TaskPurged(TaskStateConflict):
    """The task was purged: its job, files and outputs are gone (its history stays)."""

    code = "Client.TaskPurged"


LimitExceeded = errors.LimitExceeded
WmsUnavailableError = errors.WmsUnavailable


@dataclass(frozen=True)
class Owner:
    """Who a task belongs to, as established by the entry point's authentication."""

    dn: str
    vo: str | None = None
    fqans: tuple[str, ...] = ()
    accounting_group: str | None = None
    # the credential the entry point validated for the caller: staging reads inputs
    # with it (TaskData.resolver_for); never stored
    credential: Credential | None = field(default=None, compare=False, repr=False)


class TaskPlan(BaseModel):
    """A connector's job plan as the registry keeps it (``plan_json``), typed both ways.

    ``output_labels`` (from the request) name the stored outputs: see
    :meth:`output_name`. Plans stored by older versions read back unchanged (their
    extra ``staging`` list is ignored: it is only needed at registration).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    tool: str = ""
    executable: Path
    arguments: tuple[str, ...] = ()
    inputs: dict[str, str | tuple[str, ...]]  # input port -> sandbox file name(s)
    outputs: dict[str, str]  # output port -> sandbox file name
    output_labels: dict[str, str] = {}
    request_cpus: int = 1
    request_memory_mb: int = 512
    request_disk_mb: int = 1024
    params: dict[str, Any] = {}

    @classmethod
    def of(cls, plan: JobPlan) -> TaskPlan:
        return cls(
            tool=plan.tool,
            executable=plan.executable,
            arguments=plan.arguments,
            inputs=dict(plan.inputs),
            outputs=dict(plan.outputs),
            output_labels=dict(plan.output_labels),
            request_cpus=plan.request_cpus,
            request_memory_mb=plan.request_memory_mb,
            request_disk_mb=plan.request_disk_mb,
            params=dict(plan.params),
        )

    @classmethod
    def from_json(cls, text: str) -> TaskPlan:
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        return self.model_dump_json()

    def input_files(self) -> tuple[str, ...]:
        """Every staged input's sandbox name, in port order."""
        out: list[str] = []
        for names in self.inputs.values():
            out.extend([names] if isinstance(names, str) else names)
        return tuple(out)

    def output_name(self, port: str) -> str:
        """The name an output is stored and reported under: its label when the request
        gave one (with the sandbox file's extension added unless the label has it:
        label ``ndvi-2024`` of ``out.tif`` -> ``ndvi-2024.tif``), else the sandbox name."""
        sandbox = self.outputs[port]
        label = self.output_labels.get(port)
        if not label:
            return sandbox
        suffix = PurePath(sandbox).suffix
        return label if not suffix or label.endswith(suffix) else label + suffix


@dataclass(frozen=True)
class TaskRequest:
    tool_request: ToolRequest
    owner: Owner
    client_request_id: str | None = None
    inline_inputs: dict[str, bytes] = field(default_factory=dict)  # port -> content
    x509_proxy: Path | None = None  # a delegated proxy the job gets as x509userproxy
    callback_url: str | None = None  # state changes are POSTed here (gproc.task_notify)
    callback_secret: str | None = None  # the HMAC key of those events


@dataclass(frozen=True)
class OutputFile:
    port: str
    name: str
    size: int
    adler32: str
    sha256: str
    path: str
    stored_at: str | None = None  # where the task data sink stored it (e.g. a gateway path)


def outputs_json(outputs: Sequence[OutputFile]) -> str:
    return json.dumps([asdict(o) for o in outputs])


def outputs_of(row: TaskRow | Row[Any]) -> tuple[OutputFile, ...]:
    return tuple(OutputFile(**o) for o in json.loads(row.outputs_json or "[]"))


def task_owner(row: TaskRow) -> TaskOwner:
    """The owner of a stored task, as recorded at registration."""
    return TaskOwner(
        task_id=row.id,
        dn=row.owner_dn,
        vo=row.owner_vo,
        fqans=tuple(json.loads(row.owner_fqans or "[]")),
        x509_proxy=Path(row.x509_proxy) if row.x509_proxy else None,
        tool=row.tool or "",
        request_json=row.request_json,
    )


@dataclass(frozen=True)
class TaskView:
    """A read-only snapshot of a task for callers."""

    id: str
    tool: str
    state: TaskState
    owner_dn: str
    owner_vo: str | None
    client_request_id: str | None
    job_id: str | None
    attempt: int
    state_reason: str | None
    hold_reason: str | None
    hold_code: int | None
    exit_code: int | None
    job_description: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    outputs: tuple[OutputFile, ...]

    @classmethod
    def from_row(cls, row: TaskRow | Row[Any]) -> TaskView:
        outs = outputs_of(row)
        return cls(
            id=row.id,
            tool=row.tool,
            state=TaskState(row.state),
            owner_dn=row.owner_dn,
            owner_vo=row.owner_vo,
            client_request_id=row.client_request_id,
            job_id=row.job_id,
            attempt=row.attempt,
            state_reason=row.state_reason,
            hold_reason=row.hold_reason,
            hold_code=row.hold_code,
            exit_code=row.exit_code,
            job_description=row.job_description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            outputs=outs,
        )

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["state"] = str(self.state)
        d["outputs"] = [o.__dict__ for o in self.outputs]
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        return d


@dataclass(frozen=True)
class TaskResult:
    """Per-task outcome of a batch operation: the task's view or why it failed."""

    task_id: str
    task: TaskView | None = None
    error: GprocError | None = None
