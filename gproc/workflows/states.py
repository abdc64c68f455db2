"""Workflow and node states: pure tables, tested table by table.

The overall state of a workflow is derived from its DAGMan job (which runs the
nodes) and, once it has ended, from the node status file: a DAG whose engine exited
cleanly but which reports a failed node is a failed workflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from gproc.wrappers.base import JobState
from gproc.wrappers.dag_base import NodeStatus


class WorkflowState(StrEnum):
    REGISTERED = "registered"
    SUBMITTING = "submitting"  # intent recorded; the DAGMan job may or may not exist yet
    SUBMITTED = "submitted"  # the DAGMan job is queued
    RUNNING = "running"  # DAGMan runs the nodes
    HELD = "held"  # the DAGMan job is held
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PURGED = "purged"


class NodeState(StrEnum):
    WAITING = "waiting"  # not submitted yet (parents running, or not started)
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    DONE = "done"
    FAILED = "failed"
    FUTILE = "futile"  # an ancestor failed: it will not run
    REMOVED = "removed"


W = WorkflowState
ACTIVE = frozenset({W.SUBMITTING, W.SUBMITTED, W.RUNNING, W.HELD})
TERMINAL = frozenset({W.COMPLETED, W.FAILED, W.CANCELLED})

TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    W.REGISTERED: frozenset({W.SUBMITTING, W.CANCELLED, W.PURGED}),
    W.SUBMITTING: frozenset({W.SUBMITTING, W.SUBMITTED, W.RUNNING, W.FAILED, W.CANCELLED}),
    W.SUBMITTED: frozenset({W.RUNNING, W.HELD, W.COMPLETED, W.FAILED, W.CANCELLED}),
    W.RUNNING: frozenset({W.SUBMITTED, W.HELD, W.COMPLETED, W.FAILED, W.CANCELLED}),
    W.HELD: frozenset({W.SUBMITTED, W.RUNNING, W.COMPLETED, W.FAILED, W.CANCELLED}),
    W.COMPLETED: frozenset({W.PURGED}),
    W.FAILED: frozenset({W.SUBMITTING, W.PURGED}),  # retry: the rescue DAG
    W.CANCELLED: frozenset({W.SUBMITTING, W.PURGED}),
    W.PURGED: frozenset(),
}

DAG_JOB_TABLE: dict[JobState, WorkflowState | None] = {
    JobState.IDLE: W.SUBMITTED,
    JobState.RUNNING: W.RUNNING,
    JobState.HELD: W.HELD,
    JobState.COMPLETED: W.COMPLETED,
    JobState.FAILED: W.FAILED,
    JobState.REMOVED: W.CANCELLED,
    JobState.UNKNOWN: None,
}
"""The DAGMan job's state -> the workflow's (before the node reports refine it)."""

NODE_JOB_TABLE: dict[JobState, NodeState] = {
    JobState.IDLE: NodeState.IDLE,
    JobState.RUNNING: NodeState.RUNNING,
    JobState.HELD: NodeState.HELD,
    JobState.COMPLETED: NodeState.DONE,
    JobState.FAILED: NodeState.FAILED,
    JobState.REMOVED: NodeState.REMOVED,
    JobState.UNKNOWN: NodeState.WAITING,
}
"""A node's latest job -> the node's state while the DAG runs."""

NODE_REPORT_TABLE: dict[NodeStatus, NodeState] = {
    NodeStatus.WAITING: NodeState.WAITING,
    NodeStatus.READY: NodeState.WAITING,
    NodeStatus.QUEUED: NodeState.IDLE,
    NodeStatus.DONE: NodeState.DONE,
    NodeStatus.FAILED: NodeState.FAILED,
    NodeStatus.FUTILE: NodeState.FUTILE,
}
"""DAGMan's node status file -> the node's state (authoritative once the DAG ended)."""


def can_transition(current: WorkflowState, target: WorkflowState) -> bool:
    return target in TRANSITIONS[current]


def derive(dag_job: JobState, reports: Iterable[NodeStatus] = ()) -> WorkflowState | None:
    """The workflow's state from its DAGMan job and, when it ended, its node reports."""
    base = DAG_JOB_TABLE[dag_job]
    if base == W.COMPLETED and any(r in (NodeStatus.FAILED, NodeStatus.FUTILE) for r in reports):
        return W.FAILED
    return base
