"""The chassis instrumentation without a server: AccessLog counts each answer once
(when its body is closed) under bounded labels, routes /metrics and prefixes, and
the endpoint refuses callers it does not know."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from gproc.services.chassis import AccessLog
from gproc.services.chassis.guard import ENV_FAULT, ENV_OPERATION
from gproc.services.chassis.metrics import REGISTRY, MetricsEndpoint, Operators, label


def _app(operation: str | None, status: str = "200 OK", fault: str | None = None) -> Any:
    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if operation is not None:
            environ[ENV_OPERATION] = operation
        if fault is not None:
            environ[ENV_FAULT] = fault
        start(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def _call(app: Any, path: str = "/", method: str = "GET") -> tuple[list[str], bytes]:
    status: list[str] = []
    body = app({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda s, h, e=None: status.append(s))
    data = b"".join(body)
    body.close()
    return status, data


def _count(**labels: str) -> float:
    return REGISTRY.get_sample_value("gproc_requests_total", labels) or 0.0


@pytest.mark.parametrize(
    ("raw", "out"),
    [("GetTaskStatus", "GetTaskStatus"), (None, "-"), ("", "-"), (404, "404"),
     ("a b", "other"), ("x" * 65, "other"), ("Client.NotFound", "Client.NotFound")],
)  # fmt: skip
def test_label_values_are_bounded(raw: object, out: str) -> None:
    assert label(raw) == out


def test_access_log_counts_each_answer_once_with_its_labels() -> None:
    log = AccessLog(_app("Op1", "500 Internal", "Client.Boom"), "gproc.unittest.access")
    labels = {"service": "unittest", "operation": "Op1", "status": "500", "fault": "Client.Boom"}
    before = _count(**labels)
    hist = {"service": "unittest", "operation": "Op1"}
    h0 = REGISTRY.get_sample_value("gproc_request_duration_seconds_count", hist) or 0.0
    _call(log)
    _call(log)
    assert _count(**labels) == before + 2
    assert REGISTRY.get_sample_value("gproc_request_duration_seconds_count", hist) == h0 + 2


def test_hostile_operation_names_do_not_make_labels() -> None:
    log = AccessLog(_app("<script>"), "gproc.unittest2.access", service="u2")
    before = _count(service="u2", operation="other", status="200", fault="")
    _call(log)
    assert _count(service="u2", operation="other", status="200", fault="") == before + 1


def test_metrics_and_routes_are_dispatched_before_the_app() -> None:
    ops = _app("ops.page")
    log = AccessLog(
        _app("Main"), "gproc.unittest3.access",
        metrics=MetricsEndpoint(Operators.of("VO-Admin")), routes={"/ops/": ops},
    )  # fmt: skip
    status, body = _call(log, "/metrics")  # no identity in the environ
    assert status == ["401 Unauthorized"] and "certificate" in json.loads(body)["error"]
    assert _call(log, "/metrics", "POST")[0] == ["405 Method Not Allowed"]
    before = _count(service="unittest3", operation="ops.page", status="200", fault="")
    assert _call(log, "/ops/summary")[0] == ["200 OK"]
    assert _count(service="unittest3", operation="ops.page", status="200", fault="") == before + 1
    plain = AccessLog(_app("Main"), "gproc.unittest4.access")  # no metrics: the app answers
    before = _count(service="unittest4", operation="Main", status="200", fault="")
    _call(plain, "/metrics")
    assert _count(service="unittest4", operation="Main", status="200", fault="") == before + 1
