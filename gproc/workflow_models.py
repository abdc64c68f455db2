"""Database rows of workflows (SQLModel). Not wire types: services convert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from gproc.models import utcnow


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("owner_dn", "client_request_id", name="uq_workflow_owner_request"),
    )

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    client_request_id: str | None = Field(default=None, max_length=128)
    owner_dn: str = Field(index=True, max_length=512)
    owner_vo: str | None = Field(default=None, index=True, max_length=128)
    owner_fqans: str = Field(default="[]")  # JSON list, as presented at registration
    accounting_group: str | None = Field(default=None, max_length=128)
    x509_proxy: str | None = None
    form: str = Field(max_length=8)  # silk | json
    document: str  # the text as registered
    compiled_json: str  # the DAG nodes (gproc.workflows.compile.NodeJob) as JSON
    keep_intermediate: bool = False
    state: str = Field(index=True, max_length=16)
    state_reason: str | None = None
    attempt: int = 0
    job_id: str | None = Field(default=None, index=True, max_length=256)  # the DAGMan job
    outputs_json: str | None = None
    callback_url: str | None = Field(default=None, max_length=2048)
    callback_secret: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    finished_at: datetime | None = None


class WorkflowNodeRow(SQLModel, table=True):
    """One DAG node: its state, its latest job and how many jobs it ran."""

    __tablename__ = "workflow_nodes"

    workflow_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(primary_key=True, max_length=64)  # the DAG node name
    node: str = Field(max_length=32)  # the document's node
    branch: int = 0
    tool: str = Field(max_length=64)
    final: bool = False
    state: str = Field(max_length=16)
    job_id: str | None = Field(default=None, max_length=256)
    exit_code: int | None = None
    hold_reason: str | None = None
    detail: str | None = None
    runs: int = 0  # node jobs seen over every attempt
    updated_at: datetime = Field(default_factory=utcnow)


class WorkflowEventRow(SQLModel, table=True):
    """Append-only history of a workflow (state changes, node changes)."""

    __tablename__ = "workflow_events"

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=32)
    time: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=32)
    state: str | None = Field(default=None, max_length=16)
    detail: str = ""


class NotificationRow(SQLModel, table=True):
    """Outbox of callback deliveries: written with the state change, sent at least once."""

    __tablename__ = "workflow_notifications"

    id: str = Field(primary_key=True, max_length=64)  # the stable event id
    workflow_id: str = Field(index=True, max_length=32)
    url: str = Field(max_length=2048)
    body: str
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = None
