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
