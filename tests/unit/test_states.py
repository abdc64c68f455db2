"""The task state machine and the WMS-state mapping, as tables."""

from __future__ import annotations

import pytest

from gproc.states import (
    ACTIVE,
    JOB_TO_TASK,
    TRANSITIONS,
    InvalidTransition,
    TaskState,
    can_transition,
    check_transition,
    task_state_for,
)
from gproc.wrappers.base import JobState

S = TaskState

ALLOWED = [
    (S.REGISTERED, S.SUBMITTING),
    (S.REGISTERED, S.CANCELLED),
    (S.SUBMITTING, S.SUBMITTED),
    (S.SUBMITTING, S.REGISTERED),
    (S.SUBMITTING, S.RUNNING),
    (S.SUBMITTED, S.IDLE),
    (S.IDLE, S.RUNNING),
    (S.RUNNING, S.IDLE),  # evicted, back in the queue
    (S.RUNNING, S.HELD),
    (S.HELD, S.IDLE),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.HELD, S.CANCELLED),
    (S.FAILED, S.REGISTERED),  # resubmit
    (S.CANCELLED, S.REGISTERED),
    (S.COMPLETED, S.PURGED),
    (S.FAILED, S.PURGED),
]

REFUSED = [
    (S.REGISTERED, S.RUNNING),  # never submitted
    (S.REGISTERED, S.COMPLETED),
    (S.COMPLETED, S.RUNNING),  # a finished task never runs again
    (S.COMPLETED, S.REGISTERED),  # completed tasks are not resubmitted
    (S.COMPLETED, S.CANCELLED),
    (S.CANCELLED, S.RUNNING),
    (S.PURGED, S.REGISTERED),
    (S.PURGED, S.COMPLETED),
    (S.SUBMITTED, S.REGISTERED),  # the WMS has it: going back would submit twice
    (S.IDLE, S.SUBMITTING),
]


@pytest.mark.parametrize(("a", "b"), ALLOWED)
def test_allowed_transitions(a: TaskState, b: TaskState) -> None:
    assert can_transition(a, b)
    check_transition("t", a, b)


@pytest.mark.parametrize(("a", "b"), REFUSED)
def test_refused_transitions_name_the_states(a: TaskState, b: TaskState) -> None:
    assert not can_transition(a, b)
    with pytest.raises(InvalidTransition) as exc:
        check_transition("t1", a, b)
    assert str(a) in str(exc.value) and str(b) in str(exc.value)


def test_every_state_has_a_row_and_purged_is_final() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    assert TRANSITIONS[S.PURGED] == frozenset()


def test_active_states_can_all_reach_an_end() -> None:
    for state in ACTIVE:
        assert TRANSITIONS[state] & {S.COMPLETED, S.FAILED, S.CANCELLED}


@pytest.mark.parametrize(
    ("job", "task"),
    [
        (JobState.IDLE, S.IDLE),
        (JobState.RUNNING, S.RUNNING),
        (JobState.HELD, S.HELD),
        (JobState.COMPLETED, S.COMPLETED),
        (JobState.FAILED, S.FAILED),
        (JobState.REMOVED, S.CANCELLED),
        (JobState.UNKNOWN, None),
    ],
)
def test_job_state_mapping(job: JobState, task: TaskState | None) -> None:
    assert task_state_for(job) == task


def test_mapping_covers_every_job_state() -> None:
    assert set(JOB_TO_TASK) == set(JobState)
