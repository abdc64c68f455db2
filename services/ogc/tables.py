"""Pure tables of the OGC fronts: task state -> job status, error code -> HTTP status.

A job *is* a gproc task, so its status is a function of the task state alone.
A held task waits for its owner, so it is ``accepted`` (queued), not ``running``;
a task cancelled through any front, or purged, is ``dismissed``.
"""

from __future__ import annotations

from enum import StrEnum

from gproc import errors
from gproc.services.chassis.errors import codes_of
from gproc.states import TaskState

S = TaskState


class JobStatus(StrEnum):
    """OGC API - Processes ``statusCode`` values (also WPS 2.0's, capitalised)."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"


JOB_STATUS: dict[TaskState, JobStatus] = {
    S.REGISTERED: JobStatus.ACCEPTED,
    S.SUBMITTING: JobStatus.ACCEPTED,
    S.SUBMITTED: JobStatus.ACCEPTED,
    S.IDLE: JobStatus.ACCEPTED,
    S.HELD: JobStatus.ACCEPTED,
    S.RUNNING: JobStatus.RUNNING,
    S.COMPLETED: JobStatus.SUCCESSFUL,
    S.FAILED: JobStatus.FAILED,
    S.CANCELLED: JobStatus.DISMISSED,
    S.PURGED: JobStatus.DISMISSED,
}

FINISHED = frozenset({JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED})

HTTP_STATUS: dict[str, int] = {
    "Client.NotReady": 404,  # OGC: results of an unfinished job are result-not-ready
    errors.InvalidRequest.code: 400,
    errors.NotFound.code: 404,
    errors.Conflict.code: 409,
    errors.LimitExceeded.code: 413,
    errors.NotAuthenticated.code: 401,
    errors.NotAuthorised.code: 403,
    errors.CredentialRefused.code: 403,
    errors.Unavailable.code: 503,
    errors.Internal.code: 500,
}
"""Error root code -> HTTP status; a code not named falls back to its category's."""

_OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
PROBLEM_TYPE: dict[str, str] = {
    "Client.NotReady": _OGC + "result-not-ready",
    errors.InvalidRequest.code: _OGC + "invalid-parameter-value",
    errors.NotFound.code: _OGC + "no-such-job",
}
"""Error code -> problem ``type`` URI (OGC's where it defines one, else the code)."""


def job_status(state: TaskState) -> JobStatus:
    return JOB_STATUS[state]


def http_status(err: errors.GprocError) -> int:
    """The HTTP status of an error, by its code or, failing that, its category's."""
    for code in codes_of(err):
        if code in HTTP_STATUS:
            return HTTP_STATUS[code]
    return 500


def problem_type(err: errors.GprocError) -> str:
    for code in codes_of(err):
        if code in PROBLEM_TYPE:
            return PROBLEM_TYPE[code]
    return f"urn:gproc:error:{err.code}"
