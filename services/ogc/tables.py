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
    "Client.NoSuchProcess": _OGC + "no-such-process",
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


# ---- WPS 2.0 and 1.0.0 ----------------------------------------------------------
WPS2_STATUS: dict[JobStatus, str] = {
    JobStatus.ACCEPTED: "Accepted",
    JobStatus.RUNNING: "Running",
    JobStatus.SUCCESSFUL: "Succeeded",
    JobStatus.FAILED: "Failed",
    JobStatus.DISMISSED: "Dismissed",
}
"""Job status -> WPS 2.0 ``wps:Status``."""

WPS1_STATUS: dict[JobStatus, str] = {
    JobStatus.ACCEPTED: "ProcessAccepted",
    JobStatus.RUNNING: "ProcessStarted",
    JobStatus.SUCCESSFUL: "ProcessSucceeded",
    JobStatus.FAILED: "ProcessFailed",
    JobStatus.DISMISSED: "ProcessFailed",  # WPS 1.0.0 has no dismissal: a failure saying so
}
"""Job status -> the element inside a WPS 1.0.0 ``wps:Status``."""


class Ows(StrEnum):
    """OWS / WPS exception codes (OWS 1.1 and 2.0 common codes, WPS 1.0.0 and 2.0)."""

    MISSING = "MissingParameterValue"
    INVALID = "InvalidParameterValue"
    NOT_SUPPORTED = "OperationNotSupported"
    VERSION = "VersionNegotiationFailed"
    NO_CODE = "NoApplicableCode"
    NO_SUCH_PROCESS = "NoSuchProcess"
    NO_SUCH_MODE = "NoSuchMode"
    NO_SUCH_INPUT = "NoSuchInput"
    NO_SUCH_OUTPUT = "NoSuchOutput"
    DATA_NOT_ACCESSIBLE = "DataNotAccessible"
    SIZE_EXCEEDED = "SizeExceeded"
    FILE_SIZE_EXCEEDED = "FileSizeExceeded"
    NO_SUCH_JOB = "NoSuchJob"
    RESULT_NOT_READY = "ResultNotReady"
    SERVER_BUSY = "ServerBusy"
    NOT_ENOUGH_STORAGE = "NotEnoughStorage"
    INTERNAL = "InternalServerError"


C = Ows
OWS_EXCEPTION: dict[str, tuple[tuple[Ows, int], tuple[Ows, int]]] = {
    # gproc code: ((WPS 2.0 code, HTTP status), (WPS 1.0.0 code, HTTP status))
    "Client.NoSuchProcess": ((C.NO_SUCH_PROCESS, 400), (C.INVALID, 400)),
    "Client.NoSuchJob": ((C.NO_SUCH_JOB, 400), (C.INVALID, 404)),
    "Client.NotReady": ((C.RESULT_NOT_READY, 400), (C.INVALID, 400)),
    "Client.MissingParameterValue": ((C.MISSING, 400), (C.MISSING, 400)),
    "Client.OperationNotSupported": ((C.NOT_SUPPORTED, 501), (C.NOT_SUPPORTED, 501)),
    "Client.VersionNegotiationFailed": ((C.VERSION, 400), (C.VERSION, 400)),
    "Client.NoSuchMode": ((C.NO_SUCH_MODE, 400), (C.INVALID, 400)),
    "Client.NoSuchInput": ((C.NO_SUCH_INPUT, 400), (C.INVALID, 400)),
    "Client.NoSuchOutput": ((C.NO_SUCH_OUTPUT, 400), (C.INVALID, 400)),
    "Client.MalformedRequest": ((C.NO_CODE, 400), (C.NO_CODE, 400)),
    "Client.JobFailed": ((C.NO_CODE, 409), (C.NO_CODE, 409)),
    "Server.StorageUnavailable": ((C.NO_CODE, 503), (C.NOT_ENOUGH_STORAGE, 503)),
    errors.InvalidRequest.code: ((C.INVALID, 400), (C.INVALID, 400)),
    errors.NotFound.code: ((C.DATA_NOT_ACCESSIBLE, 400), (C.INVALID, 400)),
    errors.Conflict.code: ((C.NO_CODE, 409), (C.NO_CODE, 409)),
    errors.LimitExceeded.code: ((C.SIZE_EXCEEDED, 400), (C.FILE_SIZE_EXCEEDED, 400)),
    errors.NotAuthenticated.code: ((C.NO_CODE, 401), (C.NO_CODE, 401)),
    errors.NotAuthorised.code: ((C.NO_CODE, 403), (C.NO_CODE, 403)),
    errors.CredentialRefused.code: ((C.NO_CODE, 403), (C.NO_CODE, 403)),
    errors.Unavailable.code: ((C.NO_CODE, 503), (C.SERVER_BUSY, 503)),
    errors.Internal.code: ((C.INTERNAL, 500), (C.NO_CODE, 500)),
}
"""gproc error code -> OWS exceptionCode and HTTP status, per WPS version; a code not
named falls back to its category's (OWS 2.0 / WPS 2.0: client errors 400,
OperationNotSupported 501; authentication 401 and authorisation 403 as on the other
fronts)."""


def ows_exception(err: errors.GprocError, version: int) -> tuple[Ows, int]:
    """The exception code and HTTP status of ``err`` for WPS ``version`` (2 or 1)."""
    for code in codes_of(err):
        if code in OWS_EXCEPTION:
            return OWS_EXCEPTION[code][0 if version == 2 else 1]
    return (C.INTERNAL, 500) if version == 2 else (C.NO_CODE, 500)
