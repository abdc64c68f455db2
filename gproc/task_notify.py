"""Task callbacks: subscriptions recorded with the task, events enqueued with each change.

The registry calls :func:`enqueue` inside the transaction that records task events,
so every state change of a subscribed task leaves an outbox row (never lost between
the change and its delivery); :class:`TaskOutbox` is what the shared
:class:`gproc.notify.Deliverer` drains. An event's body is
``{id, task_id, kind, state, detail, time}``; its id is made once, at enqueue, so a
redelivery carries the same id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gproc.notify import Deliverer, check_callback
from gproc.task_notify_models import TaskNotificationRow, TaskSubscriptionRow

_CHUNK = 500


def check(url: str | None, secret: str | None) -> None:
    """A task callback: an http(s) URL and the secret its events are signed with."""
    check_callback(url, secret, secret_required=True)


def subscribe(s: Session, subscriptions: Mapping[str, tuple[str, str]]) -> None:
    """Record task id -> (url, secret) in the registration's transaction."""
    s.add_all(
        TaskSubscriptionRow(task_id=t, url=url, secret=secret)
        for t, (url, secret) in subscriptions.items()
    )
    if subscriptions:
        s.flush()


def enqueue(s: Session, events: Sequence[tuple[str, str, str | None, str]], now: datetime) -> None:
    """Outbox rows for the state-change events (state set) of subscribed tasks."""
    changes = [e for e in events if e[2] is not None]
    if not changes:
        return
    urls = _subscribed(s, {e[0] for e in changes})
    rows = []
    for task_id, kind, state, detail in changes:
        url = urls.get(task_id)
        if url is None:
            continue
        event_id = f"{task_id}-{uuid.uuid4().hex[:16]}"
        body = {
            "id": event_id,
            "task_id": task_id,
            "kind": kind,
            "state": state,
            "detail": detail,
            "time": now.isoformat(),
        }
        rows.append(
            TaskNotificationRow(
                id=event_id, task_id=task_id, url=url, body=json.dumps(body, sort_keys=True)
            )
        )
    s.add_all(rows)


def _subscribed(s: Session, task_ids: Iterable[str]) -> dict[str, str]:
    ids = list(task_ids)
    found: dict[str, str] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(TaskSubscriptionRow.task_id, TaskSubscriptionRow.url).where(
            col(TaskSubscriptionRow.task_id).in_(ids[i : i + _CHUNK])
        )
        found.update({t: u for t, u in s.exec(stmt)})
    return found


class TaskOutbox:
    """The task outbox as the deliverer reads and updates it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int = 100) -> list[TaskNotificationRow]:
        with Session(self.engine, expire_on_commit=False) as s:
            stmt = (
                select(TaskNotificationRow)
                .where(
                    col(TaskNotificationRow.delivered_at).is_(None),
                    col(TaskNotificationRow.next_attempt_at) <= now,
                )
                .order_by(col(TaskNotificationRow.next_attempt_at))
                .limit(limit)
            )
            return list(s.exec(stmt))

    def secret(self, item: TaskNotificationRow) -> str | None:
        with Session(self.engine) as s:
            row = s.get(TaskSubscriptionRow, item.task_id)
            return row.secret if row else None

    def mark(self, event_id: str, **fields: Any) -> None:
        with Session(self.engine) as s:
            s.execute(
                update(TaskNotificationRow)
                .where(col(TaskNotificationRow.id) == event_id)
                .values(**fields)
            )
            s.commit()

    def notifications(self, task_id: str) -> list[TaskNotificationRow]:
        with Session(self.engine, expire_on_commit=False) as s:
            stmt = select(TaskNotificationRow).where(TaskNotificationRow.task_id == task_id)
            return list(s.exec(stmt))


def task_deliverer(engine: Engine, **options: Any) -> Deliverer:
    return Deliverer(TaskOutbox(engine), name="gproc-task-notify", **options)
