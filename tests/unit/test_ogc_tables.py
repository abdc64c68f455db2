"""The OGC fronts' pure tables: task state -> job status, error -> HTTP status."""

from __future__ import annotations

import pytest

from gproc import errors
from gproc.domain import InvalidTaskRequest, NotReady, TaskStateConflict
from gproc.services.ogc.describe import literal_schema
from gproc.services.ogc.tables import JOB_STATUS, JobStatus, http_status, job_status, problem_type
from gproc.states import TaskState

S, J = TaskState, JobStatus

STATUS_CASES = [
    (S.REGISTERED, J.ACCEPTED),
    (S.SUBMITTING, J.ACCEPTED),
    (S.SUBMITTED, J.ACCEPTED),
    (S.IDLE, J.ACCEPTED),
    (S.HELD, J.ACCEPTED),
    (S.RUNNING, J.RUNNING),
    (S.COMPLETED, J.SUCCESSFUL),
    (S.FAILED, J.FAILED),
    (S.CANCELLED, J.DISMISSED),
    (S.PURGED, J.DISMISSED),
]


@pytest.mark.parametrize(("state", "status"), STATUS_CASES)
def test_job_status_of_each_task_state(state: TaskState, status: JobStatus) -> None:
    assert job_status(state) is status


def test_every_task_state_has_a_job_status() -> None:
    assert set(JOB_STATUS) == set(TaskState) == {s for s, _ in STATUS_CASES}


class _NewInvalid(errors.InvalidRequest):
    code = "Client.SomethingNew"


HTTP_CASES = [
    (errors.InvalidRequest("x"), 400),
    (InvalidTaskRequest("f", "bad"), 400),
    (_NewInvalid("x"), 400),  # a new subclass falls back to its category
    (errors.NotFound("x"), 404),
    (errors.Conflict("x"), 409),
    (TaskStateConflict("x"), 409),
    (NotReady("x"), 404),  # OGC: result-not-ready
    (errors.LimitExceeded("x"), 413),
    (errors.NotAuthenticated("x"), 401),
    (errors.NotAuthorised("x"), 403),
    (errors.CredentialRefused("x"), 403),
    (errors.Unavailable("x"), 503),
    (errors.WmsUnavailable("x"), 503),
    (errors.StorageUnavailable("x"), 503),
    (errors.Internal("x"), 500),
    (errors.GprocError("x"), 500),
]


@pytest.mark.parametrize(("err", "status"), HTTP_CASES)
def test_http_status_of_each_error(err: errors.GprocError, status: int) -> None:
    assert http_status(err) == status


def test_problem_types() -> None:
    ogc = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
    assert problem_type(NotReady("x")) == ogc + "result-not-ready"
    assert problem_type(errors.NotFound("x")) == ogc + "no-such-job"
    assert problem_type(InvalidTaskRequest("f", "x")) == ogc + "invalid-parameter-value"
    assert problem_type(errors.NotAuthorised("x")) == "urn:gproc:error:Client.NotAuthorised"


LITERAL_CASES = [
    (
        {"type": "int", "min": 1, "max": 9, "default": 3},
        {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
    ),
    ({"type": "float", "min": None, "max": None}, {"type": "number"}),
    ({"type": "bool", "default": False}, {"type": "boolean", "default": False}),
    (
        {"type": "choice", "choices": ["a", "b"], "default": "a"},
        {"type": "string", "enum": ["a", "b"], "default": "a"},
    ),
    (
        {"type": "int", "choices": [3, 5, 7], "default": 3},
        {"type": "integer", "enum": [3, 5, 7], "default": 3},
    ),
    (
        {"type": "bbox", "default": None},
        {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
    ),
]


@pytest.mark.parametrize(("param", "schema"), LITERAL_CASES)
def test_literal_schema_of_each_parameter_type(
    param: dict[str, object], schema: dict[str, object]
) -> None:
    assert literal_schema(param) == schema


def test_wps_status_tables_cover_every_job_status() -> None:
    from gproc.services.ogc.tables import WPS1_STATUS, WPS2_STATUS

    assert WPS2_STATUS == {
        J.ACCEPTED: "Accepted",
        J.RUNNING: "Running",
        J.SUCCESSFUL: "Succeeded",
        J.FAILED: "Failed",
        J.DISMISSED: "Dismissed",
    }
    assert set(WPS1_STATUS) == set(JobStatus)
    assert WPS1_STATUS[J.SUCCESSFUL] == "ProcessSucceeded"
    assert WPS1_STATUS[J.DISMISSED] == WPS1_STATUS[J.FAILED] == "ProcessFailed"


class _NoSuchJob(errors.NotFound):
    code = "Client.NoSuchJob"


class _Missing(errors.InvalidRequest):
    code = "Client.MissingParameterValue"


OWS_CASES = [
    # error, (WPS 2.0 code, status), (WPS 1.0.0 code, status)
    (_NoSuchJob("x"), ("NoSuchJob", 400), ("InvalidParameterValue", 404)),
    (NotReady("x"), ("ResultNotReady", 400), ("InvalidParameterValue", 400)),
    (_Missing("x"), ("MissingParameterValue", 400), ("MissingParameterValue", 400)),
    (InvalidTaskRequest("f", "x"), ("InvalidParameterValue", 400), ("InvalidParameterValue", 400)),
    (_NewInvalid("x"), ("InvalidParameterValue", 400), ("InvalidParameterValue", 400)),
    (errors.NotFound("x"), ("DataNotAccessible", 400), ("InvalidParameterValue", 400)),
    (TaskStateConflict("x"), ("NoApplicableCode", 409), ("NoApplicableCode", 409)),
    (errors.LimitExceeded("x"), ("SizeExceeded", 400), ("FileSizeExceeded", 400)),
    (errors.NotAuthenticated("x"), ("NoApplicableCode", 401), ("NoApplicableCode", 401)),
    (errors.NotAuthorised("x"), ("NoApplicableCode", 403), ("NoApplicableCode", 403)),
    (errors.WmsUnavailable("x"), ("NoApplicableCode", 503), ("ServerBusy", 503)),
    (errors.StorageUnavailable("x"), ("NoApplicableCode", 503), ("NotEnoughStorage", 503)),
    (errors.Internal("x"), ("InternalServerError", 500), ("NoApplicableCode", 500)),
    (errors.GprocError("x"), ("InternalServerError", 500), ("NoApplicableCode", 500)),
]


@pytest.mark.parametrize(("err", "v2", "v1"), OWS_CASES)
def test_ows_exception_of_each_error(
    err: errors.GprocError, v2: tuple[str, int], v1: tuple[str, int]
) -> None:
    from gproc.services.ogc.tables import ows_exception

    assert ows_exception(err, 2) == v2
    assert ows_exception(err, 1) == v1
