"""Workflow callbacks: the shared :class:`gproc.notify.Deliverer` over the workflow outbox.

The store writes an outbox row with every state change of a workflow that has a
callback URL (same transaction); each event carries ``id``, ``workflow_id``,
``kind``, ``state``, ``time`` and a per-state count of the nodes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gproc.notify import Deliverer, signature
from gproc.workflow_models import NotificationRow
from gproc.workflows.store import WorkflowStore

__all__ = ["Notifier", "signature"]


class _WorkflowOutbox:
    def __init__(self, store: WorkflowStore) -> None:
        self.store = store

    def due(self, now: datetime) -> list[NotificationRow]:
        return self.store.due_notifications(now)

    def secret(self, item: NotificationRow) -> str | None:
        return self.store.secret(item.workflow_id)

    def mark(self, event_id: str, **fields: Any) -> None:
        self.store.mark_notification(event_id, **fields)


class Notifier(Deliverer):
    def __init__(self, store: WorkflowStore, **options: Any) -> None:
        super().__init__(_WorkflowOutbox(store), name="gproc-workflow-notify", **options)
        self.store = store
