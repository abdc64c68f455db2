"""OGC API - Processes over real HTTPS with the test PKI's proxies. The core is the
SOAP offline server's (its WMS is not there: executed jobs stay accepted); jobs run
in tests/integration/test_ogc_api_pool.py. No package ships the OGC JSON schemas
themselves: the documents are read by the models OpenAPI Generator made from the OGC
API definition (ogc-api-processes-client), ``/api`` is checked by
openapi-spec-validator, and the required members are also checked explicitly."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from gproc.services.ogc.api_processes import build_wsgi
from gproc.settings import OgcSettings
from gproc.states import TaskState
from tests.fixtures.ogc import OgcServer
from tests.service.soap_helpers import client

TIF = base64.b64encode(b"II*\x00fake raster bytes").decode()
NDVI = {"inputs": {"red": {"value": TIF}, "nir": {"value": TIF, "encoding": "base64"}}}
ASYNC = {"Prefer": "respond-async"}
STATUSES = {"accepted", "running", "successful", "failed", "dismissed"}


def get(srv: OgcServer, path: str, who: str = "alice-voms", **kw: Any) -> requests.Response:
    return srv.session(who).get(srv.url + path, timeout=30, **kw)


def execute(
    srv: OgcServer, body: Any, pid: str = "ndvi", who: str = "alice-voms", **headers: str
) -> requests.Response:
    return srv.session(who).post(
        f"{srv.url}/processes/{pid}/execution", json=body, headers=headers, timeout=30
    )


def problem(resp: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["Content-Type"] == "application/problem+json"
    doc: dict[str, Any] = resp.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(doc)
    assert doc["status"] == status and doc["request_id"] == resp.headers["X-Request-Id"]
    if code is not None:
        assert doc["code"] == code, doc
    return doc


def check_status_info(doc: dict[str, Any]) -> None:
    """OGC API - Processes statusInfo.yaml: jobID, status, type required; links."""
    assert {"jobID", "status", "type"} <= set(doc)
    assert doc["status"] in STATUSES and doc["type"] == "process"
    assert all({"href", "rel"} <= set(link) for link in doc["links"])


def started(srv: OgcServer, who: str = "alice-voms") -> str:
    resp = execute(srv, NDVI, who=who, **ASYNC)
    assert resp.status_code == 201, resp.text[:500]
    job_id: str = resp.json()["jobID"]
    return job_id


# ---- service documents --------------------------------------------------------------
def test_landing_page_and_conformance(ogc_offline: OgcServer) -> None:
    anon = ogc_offline.session()
    landing = anon.get(ogc_offline.url + "/", timeout=30).json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert {"self", "service-desc", "http://www.opengis.net/def/rel/ogc/1.0/conformance"} <= set(
        rels
    )
    assert (
        rels["http://www.opengis.net/def/rel/ogc/1.0/processes"] == ogc_offline.url + "/processes"
    )
    conf = anon.get(ogc_offline.url + "/conformance", timeout=30).json()
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conf["conformsTo"]
    api = anon.get(rels["service-desc"], timeout=30)
    assert api.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    paths = api.json()["paths"]
    assert {"/processes/{processID}/execution", "/jobs/{jobId}", "/jobs/{jobId}/results"} <= set(
        paths
    )
    assert set(paths["/jobs/{jobId}"]) == {"get", "delete"}


def test_process_list_and_description(ogc_offline: OgcServer) -> None:
    procs = get(ogc_offline, "/processes").json()["processes"]
    ids = {p["id"] for p in procs}
    assert {"ndvi", "canny", "mosaic", "clip"} <= ids
    for p in procs:  # processSummary.yaml: id, version required
        assert {"id", "version", "jobControlOptions", "links"} <= set(p)
    canny = get(ogc_offline, "/processes/canny").json()
    image = canny["inputs"]["image"]
    assert image["minOccurs"] == 1 and image["maxOccurs"] == 1
    assert image["schema"]["contentMediaType"].startswith("image/tiff")
    assert canny["inputs"]["aperture_size"]["schema"] == {
        "type": "integer",
        "enum": [3, 5, 7],
        "default": 3,
    }
    assert canny["inputs"]["canny1"]["schema"] == {
        "type": "number",
        "minimum": 0,
        "maximum": 10000,
        "default": 100.0,
    }
    assert canny["inputs"]["canny1"]["minOccurs"] == 0
    assert canny["outputs"]["output"]["schema"]["contentMediaType"].startswith("image/tiff")
    mosaic = get(ogc_offline, "/processes/mosaic").json()
    assert (mosaic["inputs"]["inputs"]["minOccurs"], mosaic["inputs"]["inputs"]["maxOccurs"]) == (
        2,
        64,
    )
    clip = get(ogc_offline, "/processes/clip").json()
    assert clip["inputs"]["bbox"]["minOccurs"] == 1
    assert clip["inputs"]["bbox"]["schema"]["minItems"] == 4


# ---- execution and jobs ---------------------------------------------------------------
def test_async_execute_makes_a_task_seen_through_soap(ogc_offline: OgcServer) -> None:
    body = {**NDVI, "inputs": {**NDVI["inputs"], "red_band": 1, "nir_band": {"value": 1}}}
    resp = execute(ogc_offline, body, **ASYNC)
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    check_status_info(doc)
    assert resp.headers["Location"] == f"{ogc_offline.url}/jobs/{doc['jobID']}"
    assert resp.headers["Preference-Applied"] == "respond-async"
    assert doc["status"] == "accepted" and doc["processID"] == "ndvi"
    (task,) = client(ogc_offline.soap).service.GetTaskStatus(task_ids=[doc["jobID"]])
    assert task.tool == "ndvi" and task.owner_dn == ogc_offline.soap.pki.users["alice"].dn
    status = get(ogc_offline, f"/jobs/{doc['jobID']}").json()
    check_status_info(status)
    assert status["jobID"] == doc["jobID"] and status["status"] == "accepted"
    listed = get(ogc_offline, "/jobs", params={"processID": "ndvi", "status": "accepted"}).json()
    assert doc["jobID"] in {j["jobID"] for j in listed["jobs"]}
    assert listed["numberMatched"] >= 1
    none = get(ogc_offline, "/jobs", params={"status": "successful"}).json()
    assert doc["jobID"] not in {j["jobID"] for j in none["jobs"]}


def test_sync_execute_not_done_in_time_answers_with_the_job(ogc_offline: OgcServer) -> None:
    resp = execute(ogc_offline, NDVI)  # the fixture waits 0.5 s; no job runs offline
    assert resp.status_code == 201, resp.text
    check_status_info(resp.json())
    assert resp.headers["Location"].endswith(resp.json()["jobID"])
    assert "Preference-Applied" not in resp.headers


def test_soap_registered_task_is_dismissed_here(ogc_offline: OgcServer) -> None:
    c = client(ogc_offline.soap)
    spec = {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": b"II*"}, {"name": "nir", "content": b"II*"}],
    }
    (reg,) = c.service.RegisterTask(tasks=[spec])
    assert get(ogc_offline, f"/jobs/{reg.task_id}").json()["status"] == "accepted"
    resp = ogc_offline.session().delete(f"{ogc_offline.url}/jobs/{reg.task_id}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "dismissed"
    (task,) = c.service.GetTaskStatus(task_ids=[reg.task_id])
    assert task.state == str(TaskState.PURGED)
    problem(get(ogc_offline, f"/jobs/{reg.task_id}/results"), 404, "Client.NoSuchJob")


# ---- errors ----------------------------------------------------------------------------
def test_another_users_job_is_not_found(ogc_offline: OgcServer) -> None:
    job = started(ogc_offline, who="bob-voms")  # bob administers the VO; alice does not
    for path in (f"/jobs/{job}", f"/jobs/{job}/results", f"/jobs/{job}/results/output"):
        problem(get(ogc_offline, path), 404, "Client.NoSuchJob")
    gone = ogc_offline.session().delete(f"{ogc_offline.url}/jobs/{job}", timeout=30)
    problem(gone, 404, "Client.NoSuchJob")
    assert job not in {j["jobID"] for j in get(ogc_offline, "/jobs").json()["jobs"]}
    assert get(ogc_offline, f"/jobs/{job}", who="bob-voms").json()["jobID"] == job


def test_results_of_an_unfinished_job_are_not_ready(ogc_offline: OgcServer) -> None:
    job = started(ogc_offline)
    doc = problem(get(ogc_offline, f"/jobs/{job}/results"), 404, "Client.NotReady")
    assert doc["type"].endswith("/result-not-ready")


def test_dismissing_a_job_being_submitted_is_a_conflict(ogc_offline: OgcServer) -> None:
    job = started(ogc_offline)  # offline: the task stays submitting
    resp = ogc_offline.session().delete(f"{ogc_offline.url}/jobs/{job}", timeout=30)
    problem(resp, 409, "Client.StateConflict")


def test_unknown_things_are_404(ogc_offline: OgcServer) -> None:
    doc = problem(get(ogc_offline, "/processes/nope"), 404, "Client.NoSuchProcess")
    assert doc["field"] == "processID" and doc["type"].endswith("/no-such-process")
    problem(execute(ogc_offline, NDVI, pid="nope"), 404, "Client.NoSuchProcess")
    doc = problem(get(ogc_offline, "/jobs/" + "0" * 32), 404, "Client.NoSuchJob")
    assert doc["type"].endswith("/no-such-job")
    problem(get(ogc_offline, "/nothing/here"), 404, "Client.NotFound")
    problem(get(ogc_offline, "/jobs", params={"processID": "nope"}), 404, "Client.NoSuchProcess")


def test_wrong_method_is_405(ogc_offline: OgcServer) -> None:
    resp = ogc_offline.session().put(f"{ogc_offline.url}/processes", timeout=30)
    problem(resp, 405, "Client.MethodNotAllowed")
    problem(get(ogc_offline, "/processes/ndvi/execution"), 405, "Client.MethodNotAllowed")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"inputs": {"red": {"value": TIF}, "nir": {"value": "not base64!"}}}, "inputs.nir"),
        ({"inputs": {"red": TIF, "nir": {"value": TIF}}}, "inputs.red"),
        (
            {"inputs": {"red": {"value": TIF}, "nir": {"value": TIF, "encoding": "utf-8"}}},
            "inputs.nir",
        ),
        ({"inputs": {"red": {"value": TIF}, "nir": {"href": "/etc/passwd"}}}, "inputs.nir"),
        ({"inputs": {"red": {"value": TIF}, "nir": {"value": TIF}, "nope": 1}}, "inputs.nope"),
        (
            {"inputs": {"red": {"value": TIF}, "nir": {"value": TIF}, "red_band": 0}},
            "params.red_band",
        ),
        (
            {"inputs": {"red": {"value": TIF}, "nir": {"value": TIF}, "red_band": {"x": 1}}},
            "inputs.red_band",
        ),
        ({"inputs": {"red": {"value": TIF}}}, "inputs.nir"),
        ({**NDVI, "outputs": {"output": {"transmissionMode": "carrier-pigeon"}}}, "outputs.output"),
        ({**NDVI, "outputs": {"elsewhere": {}}}, "outputs.elsewhere"),
        ({**NDVI, "response": "raw"}, "response"),
        ({**NDVI, "mode": "async"}, "mode"),
    ],
)
def test_bad_execute_requests_are_400(ogc_offline: OgcServer, body: Any, field: str) -> None:
    doc = problem(execute(ogc_offline, body, **ASYNC), 400)
    assert doc["field"].startswith(field), doc
    assert doc["type"].endswith("/invalid-parameter-value")


def test_body_framing_errors(ogc_offline: OgcServer) -> None:
    url = f"{ogc_offline.url}/processes/ndvi/execution"
    s = ogc_offline.session()
    doc = problem(
        s.post(url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=30),
        400,
    )
    assert doc["field"] == "body"
    problem(s.post(url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=30), 400)
    deep = b"[" * 100_000 + b"]" * 100_000
    problem(s.post(url, data=deep, headers={"Content-Type": "application/json"}, timeout=30), 413)
    nested = b"[" * 20_000 + b"]" * 20_000
    problem(s.post(url, data=nested, headers={"Content-Type": "application/json"}, timeout=30), 400)
    huge = {"inputs": {"red": {"value": "A" * 70_000}, "nir": {"value": TIF}}}
    problem(execute(ogc_offline, huge, **ASYNC), 413, "Client.LimitExceeded")
    assert get(ogc_offline, "/processes").status_code == 200  # and the service carries on


def _call(app: Any, method: str, path: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    seen: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.update(status=status, headers=dict(headers))

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "front.example",
        "SERVER_NAME": "front.example",
        "SERVER_PORT": "443",
        "gproc.auth_error": "no client certificate (trusted front sent none)",
    }
    body = b"".join(app(environ, start))
    return seen["status"], seen["headers"], json.loads(body)


def test_no_credential_is_401(ogc_offline: OgcServer) -> None:
    """Behind a trusted front that forwards no chain the app sees no identity (over
    direct TLS the handshake itself demands a certificate)."""
    app = build_wsgi(ogc_offline.soap.gp, OgcSettings())
    for method, path in (
        ("GET", "/processes"),
        ("GET", "/jobs"),
        ("POST", "/processes/ndvi/execution"),
    ):
        status, headers, doc = _call(app, method, path)
        assert status.startswith("401") and headers["Content-Type"] == "application/problem+json"
        assert doc["code"] == "Client.NotAuthenticated" and "trusted front" in doc["detail"]
        assert "WWW-Authenticate" in headers
    status, _, doc = _call(app, "GET", "/conformance")  # public documents need no identity
    assert status.startswith("200") and doc["conformsTo"]


def test_no_right_is_403(ogc_offline: OgcServer) -> None:
    # a limited proxy may not register; a user in no VO matches no rule
    problem(execute(ogc_offline, NDVI, who="alice-limited", **ASYNC), 403, "Client.NotAuthorised")
    problem(execute(ogc_offline, NDVI, who="alice", **ASYNC), 403, "Client.NotAuthorised")


def test_openapi_document_is_valid_openapi_3(ogc_offline: OgcServer) -> None:
    """``/api`` checked by openapi-spec-validator against the OpenAPI 3.0 schema."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    doc = ogc_offline.session().get(ogc_offline.url + "/api", timeout=30).json()
    validate(doc)
    broken = {**doc, "paths": {"/jobs": {"get": {"responses": "none"}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_documents_match_the_ogc_api_definition(ogc_offline: OgcServer) -> None:
    """Every kind of response read by the models that OpenAPI Generator made from the
    OGC API - Processes API definition (PyPI ogc-api-processes-client: required
    members, types, enumerations such as statusCode)."""
    import pydantic
    from ogc_api_processes_client import models as m

    s = ogc_offline.session()
    docs: list[tuple[Any, Any]] = [
        (m.LandingPage, s.get(ogc_offline.url + "/", timeout=30).json()),
        (m.ConfClasses, get(ogc_offline, "/conformance").json()),
        (m.ProcessList, get(ogc_offline, "/processes").json()),
        (m.JobList, get(ogc_offline, "/jobs").json()),
        (m.StatusInfo, execute(ogc_offline, NDVI, **ASYNC).json()),
        (m.Exception, get(ogc_offline, "/processes/nope").json()),
        (m.Exception, get(ogc_offline, "/jobs/" + "0" * 32).json()),
    ]
    for p in get(ogc_offline, "/processes").json()["processes"]:
        docs.append((m.Process, get(ogc_offline, f"/processes/{p['id']}").json()))
    for model, doc in docs:
        assert model.from_dict(doc) is not None, (model, doc)
    status = docs[4][1]
    with pytest.raises(pydantic.ValidationError):  # and the models do refuse
        m.StatusInfo.from_dict({**status, "status": "queued"})
    with pytest.raises(pydantic.ValidationError):
        m.StatusInfo.from_dict({k: v for k, v in status.items() if k != "jobID"})
