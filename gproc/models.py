"""Database rows of the task registry (SQLModel). Not wire types: services convert."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("owner_dn", "client_request_id", name="uq_owner_request"),
        # keyset pages of task lists, newest first (revision 0002)
        Index("ix_tasks_owner_created", "owner_dn", "created_at", "id"),
        Index("ix_tasks_owner_state_created", "owner_dn", "state", "created_at", "id"),
        Index("ix_tasks_vo_created", "owner_vo", "created_at", "id"),
        Index("ix_tasks_state_created", "state", "created_at", "id"),
        Index("ix_tasks_created", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    client_request_id: str | None = Field(default=None, max_length=128)
    owner_dn: str = Field(max_length=512)
    owner_vo: str | None = Field(default=None, max_length=128)
    owner_fqans: str = Field(default="[]")  # JSON list, as presented at registration
    tool: str = Field(index=True, max_length=64)
    request_json: str  # validated tool request (inputs, params) as JSON
    plan_json: str  # the connector's job plan as JSON
    job_description: str = ""  # the WMS's native description, shown at registration
    accounting_group: str | None = Field(default=None, max_length=128)
    x509_proxy: str | None = None  # the owner's delegated proxy, handed to the job
    state: str = Field(max_length=16)
    state_reason: str | None = None
    attempt: int = 0
    wms: str = Field(default="htcondor", max_length=32)
    job_id: str | None = Field(default=None, index=True, max_length=256)
    hold_reason: str | None = None
    hold_code: int | None = None
    exit_code: int | None = None
    outputs_json: str | None = None  # list of retrieved outputs with checksums
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retrieved_at: datetime | None = None
    # revision 0006: the replica submitting the task and its lease (recovery waits)
    claimed_by: str | None = Field(default=None, max_length=128)
    claim_until: datetime | None = None


class TaskEventRow(SQLModel, table=True):
    """Append-only history of a task: state changes and WMS events."""

    __tablename__ = "task_events"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, max_length=32)
    time: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=32)
    state: str | None = Field(default=None, max_length=16)
    detail: str = ""


class MetaRow(SQLModel, table=True):
    """Small key/value store, e.g. the event-log cursor the tracker resumes from."""

    __tablename__ = "gproc_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = ""
