"""Durable workflow rows: compare-and-set state changes, node rows, events, outbox.

Every state change of a workflow or a node appends an event in the same transaction
and, when the workflow has a callback URL, an outbox row carrying the JSON event, so a
notification is never lost between the change and its delivery (``notify``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gproc import migrations
from gproc.errors import NotFound
from gproc.models import utcnow
from gproc.workflow_models import (
    NotificationRow,
    WorkflowEventRow,
    WorkflowNodeRow,
    WorkflowRow,
)
from gproc.workflows.states import WorkflowState, can_transition


class WorkflowNotFound(NotFound):
    code = "Client.UnknownWorkflow"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"unknown workflow {workflow_id[:64]}")
        self.workflow_id = workflow_id


class StateChanged(RuntimeError):
    """The workflow moved meanwhile; the caller re-reads and decides again."""


class WorkflowStore:
    def __init__(self, engine: Engine, *, auto_upgrade: bool = False) -> None:
        """The schema is prepared like the registry's (revision 0003 adds these tables)."""
        self.engine = engine
        migrations.prepare(engine, auto_upgrade=auto_upgrade)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # ---- creation
    def insert(self, row: WorkflowRow, nodes: Sequence[WorkflowNodeRow]) -> WorkflowRow:
        """Store a new workflow; an (owner, client request id) already known returns it."""
        try:
            with self.session() as s:
                s.add(row)
                s.flush()
                s.add_all(nodes)
                self._event(s, row, "REGISTERED", row.state, row.name)
                s.commit()
                return row
        except IntegrityError:
            existing = self.by_request(row.owner_dn, row.client_request_id)
            if existing is None:
                raise
            return existing

    def by_request(self, owner_dn: str, request_id: str | None) -> WorkflowRow | None:
        if request_id is None:
            return None
        with self.session() as s:
            stmt = select(WorkflowRow).where(
                WorkflowRow.owner_dn == owner_dn, WorkflowRow.client_request_id == request_id
            )
            return s.exec(stmt).first()

    # ---- reading
    def get(self, workflow_id: str) -> WorkflowRow:
        with self.session() as s:
            row = s.get(WorkflowRow, workflow_id)
            if row is None:
                raise WorkflowNotFound(workflow_id)
            return row

    def in_states(self, states: Iterable[WorkflowState]) -> list[WorkflowRow]:
        with self.session() as s:
            stmt = select(WorkflowRow).where(col(WorkflowRow.state).in_([str(x) for x in states]))
            return list(s.exec(stmt))

    def nodes(self, workflow_id: str) -> list[WorkflowNodeRow]:
        with self.session() as s:
            stmt = select(WorkflowNodeRow).where(WorkflowNodeRow.workflow_id == workflow_id)
            rows = list(s.exec(stmt))
        return sorted(rows, key=lambda r: int(r.name[1:].split("_", 1)[0]))

    def events(self, workflow_id: str) -> list[WorkflowEventRow]:
        with self.session() as s:
            stmt = (
                select(WorkflowEventRow)
                .where(WorkflowEventRow.workflow_id == workflow_id)
                .order_by(col(WorkflowEventRow.id))
            )
            return list(s.exec(stmt))

    def list_workflows(
        self, owner_dn: str | None, states: Sequence[WorkflowState], offset: int, limit: int
    ) -> tuple[list[WorkflowRow], int]:
        conds: list[Any] = []
        if owner_dn is not None:
            conds.append(WorkflowRow.owner_dn == owner_dn)
        if states:
            conds.append(col(WorkflowRow.state).in_([str(x) for x in states]))
        with self.session() as s:
            total = s.exec(select(func.count()).select_from(WorkflowRow).where(*conds)).one()
            stmt = (
                select(WorkflowRow)
                .where(*conds)
                .order_by(col(WorkflowRow.created_at).desc(), col(WorkflowRow.id))
                .offset(offset)
                .limit(limit)
            )
            return list(s.exec(stmt)), int(total)

    # ---- changing
    def transition(
        self,
        workflow_id: str,
        expect: WorkflowState,
        target: WorkflowState,
        *,
        kind: str | None = None,
        detail: str = "",
        **fields: Any,
    ) -> WorkflowRow:
        """Compare-and-set the state; raises StateChanged if it moved meanwhile."""
        if not can_transition(expect, target):
            raise StateChanged(f"workflow {workflow_id}: {expect} -> {target} is not allowed")
        with self.session() as s:
            stmt = (
                update(WorkflowRow)
                .where(col(WorkflowRow.id) == workflow_id, col(WorkflowRow.state) == str(expect))
                .values(state=str(target), updated_at=utcnow(), **fields)
            )
            if not s.execute(stmt).rowcount:  # type: ignore[attr-defined]
                s.rollback()
                raise StateChanged(f"workflow {workflow_id} is no longer {expect}")
            row = s.get(WorkflowRow, workflow_id)
            assert row is not None
            s.refresh(row)
            self._event(s, row, kind or str(target).upper(), str(target), detail)
            s.commit()
            return row

    def update_nodes(self, row: WorkflowRow, changes: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Apply per-node field changes; nodes whose state changed get an event."""
        changed: list[str] = []
        if not changes:
            return changed
        with self.session() as s:
            stmt = select(WorkflowNodeRow).where(WorkflowNodeRow.workflow_id == row.id)
            current = {n.name: n for n in s.exec(stmt)}  # one query, not one per node
            for name, fields in changes.items():
                node = current.get(name)
                if node is None:
                    continue
                before = node.state
                dirty = False
                for key, value in fields.items():
                    if getattr(node, key) != value:
                        setattr(node, key, value)
                        dirty = True
                if not dirty:
                    continue
                node.updated_at = utcnow()
                s.add(node)
                if node.state != before:
                    changed.append(name)
                    self._event(s, row, "NODE", node.state, f"{name}: {before} -> {node.state}")
            s.commit()
        return changed

    def _event(
        self, s: Session, row: WorkflowRow, kind: str, state: str | None, detail: str
    ) -> None:
        event = WorkflowEventRow(workflow_id=row.id, kind=kind, state=state, detail=detail)
        s.add(event)
        s.flush()
        if row.callback_url:
            body = self._event_body(s, row, event)
            s.add(
                NotificationRow(
                    id=body["id"],
                    workflow_id=row.id,
                    url=row.callback_url,
                    body=json.dumps(body, sort_keys=True),
                )
            )

    @staticmethod
    def _event_body(s: Session, row: WorkflowRow, event: WorkflowEventRow) -> dict[str, Any]:
        stmt = select(WorkflowNodeRow).where(WorkflowNodeRow.workflow_id == row.id)
        summary: dict[str, int] = {}
        for node in s.exec(stmt):
            summary[node.state] = summary.get(node.state, 0) + 1
        return {
            "id": f"{row.id}-{event.id}",
            "workflow_id": row.id,
            "kind": event.kind,
            "state": row.state,
            "detail": event.detail,
            "time": event.time.isoformat(),
            "nodes": dict(sorted(summary.items())),
        }

    # ---- outbox
    def due_notifications(self, now: datetime, limit: int = 100) -> list[NotificationRow]:
        with self.session() as s:
            stmt = (
                select(NotificationRow)
                .where(
                    col(NotificationRow.delivered_at).is_(None),
                    col(NotificationRow.next_attempt_at) <= now,
                )
                .order_by(col(NotificationRow.next_attempt_at))
                .limit(limit)
            )
            return list(s.exec(stmt))

    def secret(self, workflow_id: str) -> str | None:
        with self.session() as s:
            row = s.get(WorkflowRow, workflow_id)
            return row.callback_secret if row else None

    def mark_notification(self, event_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(
                update(NotificationRow).where(col(NotificationRow.id) == event_id).values(**fields)
            )
            s.commit()

    def notifications(self, workflow_id: str) -> list[NotificationRow]:
        with self.session() as s:
            stmt = select(NotificationRow).where(NotificationRow.workflow_id == workflow_id)
            return list(s.exec(stmt))
