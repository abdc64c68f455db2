"""Domain types the entry points (CLI, SOAP) exchange with the core."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gproc import errors
from gproc.connectors.base import ToolRequest
from gproc.errors import GprocError
from gproc.models import TaskRow
from gproc.states import TaskState

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


LimitExceeded = errors.LimitExceeded
WmsUnavailableError = errors.WmsUnavailable


@dataclass(frozen=True)
class Owner:
    """Who a task belongs to, as established by the entry point's authentication."""

    dn: str
    vo: str | None = None
    fqans: tuple[str, ...] = ()
    accounting_group: str | None = None
    # the entry point's validated credential (opaque to the core): owner-aware input
    # resolvers read data with it; never stored
    credential: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskRequest:
    tool_request: ToolRequest
    owner: Owner
    client_request_id: str | None = None
    inline_inputs: dict[str, bytes] = field(default_factory=dict)  # port -> content
    x509_proxy: Path | None = None  # a delegated proxy the job gets as x509userproxy


@dataclass(frozen=True)
class OutputFile:
    port: str
    name: str
    size: int
    adler32: str
    sha256: str
    path: str
    stored_at: str | None = None  # where an output sink stored it (e.g. a gateway path)


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
        outs = tuple(OutputFile(**o) for o in json.loads(row.outputs_json or "[]"))
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
