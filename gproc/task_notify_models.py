"""Rows of task callbacks: a subscription per task and the outbox of its events."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from gproc.models import utcnow


class TaskSubscriptionRow(SQLModel, table=True):
    """A task's callback, given at registration (kept apart from the task row)."""

    __tablename__ = "task_subscriptions"

    task_id: str = Field(primary_key=True, max_length=32)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=128)


class TaskNotificationRow(SQLModel, table=True):
    """Outbox of task callback deliveries: written with the state change, sent at least once."""

    __tablename__ = "task_notifications"

    id: str = Field(primary_key=True, max_length=64)  # the stable event id
    task_id: str = Field(index=True, max_length=32)
    url: str = Field(max_length=2048)
    body: str
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = None
