"""HTCondor job status -> gproc :class:`JobState`: one pure table.

Input is a job ClassAd (or a plain mapping of the same attributes, as
``condor_q -long`` prints them); nothing here talks to a schedd, so the table
can be tested exhaustively.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gproc.wrappers.base import JobInfo, JobState

# JobStatus codes (condor_q's I R X C H > S).
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = range(1, 8)

# HoldReasonCode of a spooled job whose input sandbox is still being uploaded:
# the job is not in trouble, it simply cannot start yet.
HOLD_SPOOLING_INPUT = 16

STATUS_TABLE: dict[int, JobState] = {
    IDLE: JobState.IDLE,
    RUNNING: JobState.RUNNING,
    REMOVED: JobState.REMOVED,
    COMPLETED: JobState.COMPLETED,  # refined by the exit status below
    HELD: JobState.HELD,  # refined by the hold reason code below
    TRANSFERRING_OUTPUT: JobState.RUNNING,  # still on the execute side
    SUSPENDED: JobState.RUNNING,  # keeps its claim, resumes on the same slot
}

# Attributes a state decision needs; queries project onto these.
STATE_ATTRS = (
    "JobStatus",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "QDate",
    "JobStartDate",
    "CompletionDate",
    "EnteredCurrentStatus",
    "GprocRetrieved",
)


@dataclass(frozen=True)
class Status:
    """What a status table lookup yields."""

    state: JobState
    spooling: bool = False
    exit_code: int | None = None
    exit_signal: int | None = None


def _int(ad: Mapping[str, Any], key: str) -> int | None:
    value = ad.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _completed(ad: Mapping[str, Any]) -> Status:
    """A job that left the execute side: success only on a clean exit 0."""
    if ad.get("ExitBySignal") is True:
        return Status(JobState.FAILED, exit_signal=_int(ad, "ExitSignal"))
    code = _int(ad, "ExitCode")
    state = JobState.COMPLETED if code == 0 else JobState.FAILED
    return Status(state, exit_code=code)


def _retired(ad: Mapping[str, Any]) -> bool:
    """A completed job that gproc removed after retrieving its output (``forget``)."""
    finished = _int(ad, "CompletionDate")
    return ad.get("GprocRetrieved") is True and finished is not None and finished > 0


def classify(ad: Mapping[str, Any]) -> Status:
    """The gproc state of the job described by ``ad``."""
    status = _int(ad, "JobStatus")
    if status is None or status not in STATUS_TABLE:
        return Status(JobState.UNKNOWN)
    if status == COMPLETED or (status == REMOVED and _retired(ad)):
        return _completed(ad)
    if status == HELD and _int(ad, "HoldReasonCode") == HOLD_SPOOLING_INPUT:
        return Status(JobState.IDLE, spooling=True)
    return Status(STATUS_TABLE[status])


def _time(ad: Mapping[str, Any], key: str) -> datetime | None:
    stamp = _int(ad, key)
    if not stamp or stamp <= 0:
        return None
    return datetime.fromtimestamp(stamp, tz=UTC)


def _str(ad: Mapping[str, Any], key: str) -> str | None:
    value = ad.get(key)
    return value if isinstance(value, str) else None


def job_info(ad: Mapping[str, Any]) -> JobInfo:
    """A :class:`JobInfo` from a job ad carrying ``GlobalJobId`` and ``STATE_ATTRS``."""
    status = classify(ad)
    held = status.state is JobState.HELD
    finished = _time(ad, "CompletionDate")
    if finished is None and status.state is JobState.REMOVED:
        finished = _time(ad, "EnteredCurrentStatus")
    return JobInfo(
        job_id=str(ad.get("GlobalJobId", "")),
        task_id=_str(ad, "GprocTaskId"),
        state=status.state,
        attempt=_int(ad, "GprocAttempt"),
        raw_status=_int(ad, "JobStatus"),
        hold_reason=_str(ad, "HoldReason") if held else None,
        hold_code=_int(ad, "HoldReasonCode") if held else None,
        hold_subcode=_int(ad, "HoldReasonSubCode") if held else None,
        exit_code=status.exit_code,
        exit_signal=status.exit_signal,
        submitted_at=_time(ad, "QDate"),
        started_at=_time(ad, "JobStartDate"),
        finished_at=finished,
        spooling=status.spooling,
    )
