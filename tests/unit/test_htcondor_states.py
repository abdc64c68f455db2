"""HTCondor status table, fed with job ads as ``condor_q -long`` prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import classad2
import pytest

from gproc.wrappers.base import JobState
from gproc.wrappers.htcondor.states import classify, job_info

TASK = "0123456789abcdef0123456789abcdef"

# (condor_q -long text, expected state, spooling, exit code, exit signal)
CASES = [
    ("JobStatus = 1", JobState.IDLE, False, None, None),
    ("JobStatus = 2", JobState.RUNNING, False, None, None),
    ("JobStatus = 3", JobState.REMOVED, False, None, None),
    ("JobStatus = 4\nExitCode = 0\nExitBySignal = false", JobState.COMPLETED, False, 0, None),
    ("JobStatus = 4\nExitCode = 3\nExitBySignal = false", JobState.FAILED, False, 3, None),
    ("JobStatus = 4\nExitBySignal = true\nExitSignal = 9", JobState.FAILED, False, None, 9),
    ("JobStatus = 4", JobState.FAILED, False, None, None),  # no exit code: not a success
    (
        'JobStatus = 5\nHoldReasonCode = 16\nHoldReason = "Spooling input data files"',
        JobState.IDLE,
        True,
        None,
        None,
    ),
    ('JobStatus = 5\nHoldReasonCode = 1\nHoldReason = "by user"', JobState.HELD, False, None, None),
    ("JobStatus = 5\nHoldReasonCode = 12\nHoldReasonSubCode = 2", JobState.HELD, False, None, None),
    ("JobStatus = 6", JobState.RUNNING, False, None, None),
    ("JobStatus = 7", JobState.RUNNING, False, None, None),
    ("JobStatus = 0", JobState.UNKNOWN, False, None, None),
    ("JobStatus = 8", JobState.UNKNOWN, False, None, None),
    ('JobStatus = "2"', JobState.UNKNOWN, False, None, None),
    ('Owner = "gproc"', JobState.UNKNOWN, False, None, None),
    # completed, then removed by forget() after retrieval: still a completion
    (
        "JobStatus = 3\nGprocRetrieved = true\nCompletionDate = 1795241262\nExitCode = 0",
        JobState.COMPLETED,
        False,
        0,
        None,
    ),
    (
        "JobStatus = 3\nGprocRetrieved = true\nCompletionDate = 1795241262\nExitCode = 2",
        JobState.FAILED,
        False,
        2,
        None,
    ),
    # cancelled (never completed), then forgotten: removed
    (
        "JobStatus = 3\nGprocRetrieved = true\nCompletionDate = 0",
        JobState.REMOVED,
        False,
        None,
        None,
    ),
]


@pytest.mark.parametrize(("text", "state", "spooling", "code", "signal"), CASES)
def test_status_table(
    text: str, state: JobState, spooling: bool, code: int | None, signal: int | None
) -> None:
    ad = classad2.parseOne(text)
    status = classify(ad)
    assert (status.state, status.spooling, status.exit_code, status.exit_signal) == (
        state,
        spooling,
        code,
        signal,
    )
    # the same table applies to plain dicts (e.g. ads decoded from JSON)
    assert classify(dict(ad.items())) == status


def test_job_info_from_a_held_job_passes_the_hold_reason() -> None:
    ad = classad2.parseOne(
        f'GlobalJobId = "vm#7.0#1795241257"\nGprocTaskId = "{TASK}"\nGprocAttempt = 2\n'
        "JobStatus = 5\nHoldReasonCode = 12\nHoldReasonSubCode = 2\n"
        'HoldReason = "Transfer output files failure"\nQDate = 1795241257\n'
        "JobStartDate = 1795241262\nCompletionDate = 0"
    )
    info = job_info(ad)
    assert (info.job_id, info.task_id, info.attempt, info.state) == (
        "vm#7.0#1795241257",
        TASK,
        2,
        JobState.HELD,
    )
    assert (info.hold_code, info.hold_subcode) == (12, 2)
    assert info.hold_reason == "Transfer output files failure"
    assert info.raw_status == 5
    assert info.submitted_at == datetime.fromtimestamp(1795241257, tz=UTC)
    assert info.started_at == datetime.fromtimestamp(1795241262, tz=UTC)
    assert info.finished_at is None


def test_job_info_of_spooling_and_finished_jobs() -> None:
    spooling = job_info(
        {
            "GlobalJobId": "s#1.0#1",
            "JobStatus": 5,
            "HoldReasonCode": 16,
            "HoldReason": "Spooling input data files",
        }
    )
    assert spooling.state is JobState.IDLE and spooling.spooling
    assert spooling.hold_reason is None and spooling.hold_code is None
    done = job_info(
        {"GlobalJobId": "s#1.1#1", "JobStatus": 4, "ExitCode": 0, "CompletionDate": 1795241262}
    )
    assert done.finished_at == datetime.fromtimestamp(1795241262, tz=UTC)
    assert done.task_id is None and done.attempt is None
    removed = job_info(
        {
            "GlobalJobId": "s#1.2#1",
            "JobStatus": 3,
            "CompletionDate": 0,
            "EnteredCurrentStatus": 1795241300,
        }
    )
    assert removed.finished_at == datetime.fromtimestamp(1795241300, tz=UTC)
