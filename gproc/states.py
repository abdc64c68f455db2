"""Task states, the allowed transitions, and the WMS-state mapping: pure tables.

The life cycle follows CREAM's two-phase model: a task is *registered* (its
job description is fixed) and later *submitted*. ``submitting`` is the durable
intent recorded before the WMS is called, so a crash between the WMS accepting
a job and the registry hearing of it is resolved by looking the task id up in
the WMS, never by submitting again blindly.
"""

from __future__ import annotations

from enum import StrEnum

from gproc import errors
from gproc.wrappers.base import JobState


class TaskState(StrEnum):
    REGISTERED = "registered"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PURGED = "purged"


S = TaskState
_IN_WMS = frozenset({S.SUBMITTED, S.IDLE, S.RUNNING, S.HELD, S.COMPLETED, S.FAILED, S.CANCELLED})

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.REGISTERED: frozenset({S.SUBMITTING, S.CANCELLED, S.PURGED}),
    # back to REGISTERED only when the WMS is known not to hold the job
    S.SUBMITTING: _IN_WMS | {S.REGISTERED},
    S.SUBMITTED: _IN_WMS - {S.SUBMITTED},
    S.IDLE: frozenset({S.RUNNING, S.HELD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.IDLE, S.HELD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.HELD: frozenset({S.IDLE, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.PURGED}),
    S.FAILED: frozenset({S.REGISTERED, S.PURGED}),  # REGISTERED = resubmit
    S.CANCELLED: frozenset({S.REGISTERED, S.PURGED}),
    S.PURGED: frozenset(),
}

ACTIVE = frozenset({S.SUBMITTING, S.SUBMITTED, S.IDLE, S.RUNNING, S.HELD})
"""States the tracker follows."""

TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
FINAL = TERMINAL | {S.PURGED}

JOB_TO_TASK: dict[JobState, TaskState | None] = {
    JobState.IDLE: S.IDLE,
    JobState.RUNNING: S.RUNNING,
    JobState.HELD: S.HELD,
    JobState.COMPLETED: S.COMPLETED,
    JobState.FAILED: S.FAILED,
    JobState.REMOVED: S.CANCELLED,
    JobState.UNKNOWN: None,  # not evidence of anything: keep the task as it is
}


class InvalidTransition(errors.Conflict):
    """A state change the table does not allow (``Client.StateConflict``)."""

    code = "Client.StateConflict"

    def __init__(self, task_id: str, current: TaskState, target: TaskState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        super().__init__(
            f"task {task_id} is {current}; it cannot become {target} (allowed: {allowed})"
        )
        self.current = current
        self.target = target


def can_transition(current: TaskState, target: TaskState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(task_id: str, current: TaskState, target: TaskState) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(task_id, current, target)


def task_state_for(job: JobState) -> TaskState | None:
    return JOB_TO_TASK[job]
