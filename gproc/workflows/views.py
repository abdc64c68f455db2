"""Read-only snapshots of workflows for callers (CLI, SOAP); not database rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gproc.workflow_models import WorkflowNodeRow, WorkflowRow
from gproc.workflows.states import NodeState, WorkflowState


@dataclass(frozen=True)
class NodeView:
    name: str  # the DAG node name
    node: str  # the document's node
    branch: int
    tool: str
    state: NodeState
    job_id: str | None
    exit_code: int | None
    hold_reason: str | None
    detail: str | None
    runs: int
    final: bool

    @classmethod
    def from_row(cls, row: WorkflowNodeRow) -> NodeView:
        return cls(
            row.name,
            row.node,
            row.branch,
            row.tool,
            NodeState(row.state),
            row.job_id,
            row.exit_code,
            row.hold_reason,
            row.detail,
            row.runs,
            row.final,
        )


@dataclass(frozen=True)
class WorkflowOutput:
    node: str  # DAG node name
    port: str  # connector output port
    name: str
    size: int
    adler32: str
    sha256: str
    path: str
    final: bool = True
    stored_at: str | None = None


@dataclass(frozen=True)
class WorkflowView:
    id: str
    name: str
    form: str
    state: WorkflowState
    owner_dn: str
    owner_vo: str | None
    attempt: int
    job_id: str | None
    state_reason: str | None
    callback_url: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    nodes: tuple[NodeView, ...] = ()
    outputs: tuple[WorkflowOutput, ...] = ()
    tools: tuple[str, ...] = ()
    callback_secret: str | None = field(default=None, repr=False)  # only when registered

    @classmethod
    def from_rows(
        cls, row: WorkflowRow, nodes: list[WorkflowNodeRow], secret: bool = False
    ) -> WorkflowView:
        outs = tuple(WorkflowOutput(**o) for o in json.loads(row.outputs_json or "[]"))
        return cls(
            id=row.id,
            name=row.name,
            form=row.form,
            state=WorkflowState(row.state),
            owner_dn=row.owner_dn,
            owner_vo=row.owner_vo,
            attempt=row.attempt,
            job_id=row.job_id,
            state_reason=row.state_reason,
            callback_url=row.callback_url,
            created_at=row.created_at,
            updated_at=row.updated_at,
            submitted_at=row.submitted_at,
            finished_at=row.finished_at,
            nodes=tuple(NodeView.from_row(n) for n in nodes),
            outputs=outs,
            tools=tuple(sorted({n.tool for n in nodes})),
            callback_secret=row.callback_secret if secret else None,
        )

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["state"] = str(self.state)
        d["nodes"] = [dict(n.__dict__, state=str(n.state)) for n in self.nodes]
        d["outputs"] = [o.__dict__ for o in self.outputs]
        d["tools"] = list(self.tools)
        if d["callback_secret"] is None:
            d.pop("callback_secret")
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        return d
