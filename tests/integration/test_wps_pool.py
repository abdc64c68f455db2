"""WPS 1.0.0 and 2.0 on the real pool: OWSLib's ``WebProcessingService`` runs an NDVI
job asynchronously and reads the result by reference; a raw WPS 2.0 Execute /
GetStatus / GetResult / Dismiss conversation; one job model across WPS and SOAP;
``transmissionMode`` kept for an async OGC API job. Results checked against NumPy."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import requests
from lxml import etree
from ogc_api_processes_client import models as m
from owslib.util import Authentication
from owslib.wps import ASYNC, ComplexDataInput, WebProcessingService

from tests.fixtures.ogc import OgcServer
from tests.integration.test_ogc_api_pool import _sample
from tests.service.soap_helpers import client
from tests.service.wps_helpers import (
    NS,
    XLINK,
    assert_schema_valid,
    async_form1,
    execute1,
    input1_value,
    job_request,
    kvp,
    ndvi2,
    post,
    xml,
)

TIMEOUT_S = 300
FINAL2 = {"Succeeded", "Failed", "Dismissed"}


def _inputs(tmp: Path) -> tuple[bytes, bytes]:
    _sample().make(tmp)
    red, nir = ((tmp / f"{p}.tif").read_bytes() for p in ("red", "nir"))
    return red, nir


def _status2(srv: OgcServer, job: str) -> Any:
    return xml(kvp(srv, service="WPS", version="2.0.0", request="GetStatus", jobId=job))


def _poll2(srv: OgcServer, job: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        status: str = _status2(srv, job).findtext("wps:Status", namespaces=NS)
        if status in FINAL2 or time.monotonic() > deadline:
            return status
        time.sleep(1.0)


def test_owslib_wps1_async_ndvi_by_reference(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    red, nir = _inputs(tmp_path)
    pki = ogc_on_pool.soap.pki
    auth = Authentication(cert=str(pki.proxies["alice-voms"]), verify=str(ogc_on_pool.soap.ca_file))
    wps = WebProcessingService(ogc_on_pool.url + "/wps", version="1.0.0", auth=auth)
    assert "ndvi" in {p.identifier for p in wps.processes}
    described = wps.describeprocess("ndvi")
    assert {i.identifier for i in described.dataInputs} >= {"red", "nir", "red_band"}
    inputs = [
        (p, ComplexDataInput(base64.b64encode(data).decode(), "image/tiff", "base64"))
        for p, data in (("red", red), ("nir", nir))
    ]
    execution = wps.execute(
        "ndvi", [*inputs, ("red_band", "1")], output=[("output", True)], mode=ASYNC
    )
    assert execution.statusLocation and execution.status == "ProcessAccepted", execution.errors
    job = execution.statusLocation.rsplit("/", 1)[1]
    deadline = time.monotonic() + TIMEOUT_S
    while not execution.isComplete() and time.monotonic() < deadline:
        execution.checkStatus(sleepSecs=1)
    assert execution.isSucceeded(), (execution.status, [e.text for e in execution.errors])
    assert_schema_valid({"succeeded1": execution.response}, tmp_path)
    (out,) = execution.processOutputs
    assert out.reference == f"{ogc_on_pool.url}/jobs/{job}/results/output"
    target = tmp_path / "ndvi.tif"
    execution.getOutput(str(target), identifier="output")
    assert _sample().check(tmp_path, target) == 0  # NDVI matches NumPy
    (task,) = client(ogc_on_pool.soap).service.GetTaskStatus(task_ids=[job])
    assert task.state == "completed" and task.exit_code == 0


def test_wps2_conversation(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    red, nir = _inputs(tmp_path)
    body = ndvi2(red, nir, outputs='<wps:Output id="output" transmission="reference"/>')
    accepted = xml(post(ogc_on_pool, body))
    assert accepted.tag == "{http://www.opengis.net/wps/2.0}StatusInfo"
    job = accepted.findtext("wps:JobID", namespaces=NS)
    assert accepted.findtext("wps:Status", namespaces=NS) in {"Accepted", "Running"}
    assert _poll2(ogc_on_pool, job) == "Succeeded"
    done = _status2(ogc_on_pool, job)
    assert done.findtext("wps:PercentCompleted", namespaces=NS) == "100"
    got = post(ogc_on_pool, job_request("GetResult", job))
    assert_schema_valid({"result2": got.content, "status2": etree.tostring(done)}, tmp_path)
    result = xml(got)
    assert result.findtext("wps:JobID", namespaces=NS) == job
    ref = result.find("wps:Output[@id='output']/wps:Reference", namespaces=NS)
    href = ref.get(f"{{{XLINK}}}href")
    data = ogc_on_pool.session().get(href, timeout=30)
    assert data.status_code == 200 and data.headers["Content-Type"].startswith("image/tiff")
    (tmp_path / "ndvi.tif").write_bytes(data.content)
    assert _sample().check(tmp_path, tmp_path / "ndvi.tif") == 0
    # raw: the same output's bytes for a synchronous execute
    raw = post(ogc_on_pool, ndvi2(red, nir, mode="sync", response="raw"))
    assert raw.status_code == 200 and raw.headers["Content-Type"].startswith("image/tiff")
    (tmp_path / "raw.tif").write_bytes(raw.content)
    assert _sample().check(tmp_path, tmp_path / "raw.tif") == 0
    gone = xml(post(ogc_on_pool, job_request("Dismiss", job)))
    assert gone.findtext("wps:Status", namespaces=NS) == "Dismissed"
    (task,) = client(ogc_on_pool.soap).service.GetTaskStatus(task_ids=[job])
    assert task.state == "purged"
    again = post(ogc_on_pool, job_request("GetResult", job))
    assert again.status_code == 400 and b"NoSuchJob" in again.content


def test_one_job_model_across_wps_and_soap(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    red, nir = _inputs(tmp_path)
    soap = client(ogc_on_pool.soap)
    # started on WPS 2.0, cancelled through SOAP
    job = xml(post(ogc_on_pool, ndvi2(red, nir))).findtext("wps:JobID", namespaces=NS)
    (cancelled,) = soap.service.CancelTask(task_ids=[job], reason="stop")
    assert cancelled.state == "cancelled"
    assert _status2(ogc_on_pool, job).findtext("wps:Status", namespaces=NS) == "Dismissed"
    # started on WPS 1.0.0, cancelled through SOAP: the status document says so
    v1 = execute1(input1_value("red", red) + input1_value("nir", nir), form=async_form1())
    location = xml(post(ogc_on_pool, v1)).get("statusLocation")
    soap.service.CancelTask(task_ids=[location.rsplit("/", 1)[1]], reason="stop")
    doc = xml(ogc_on_pool.session().get(location, timeout=30))
    failed = doc.find(
        "{http://www.opengis.net/wps/1.0.0}Status/{http://www.opengis.net/wps/1.0.0}ProcessFailed"
    )
    assert failed is not None and "stop" in etree.tostring(failed).decode()
    # started through SOAP, seen and dismissed on WPS 2.0
    spec = {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": red}, {"name": "nir", "content": nir}],
    }
    (reg,) = soap.service.RegisterTask(tasks=[spec])
    soap.service.SubmitTask(task_ids=[reg.task_id])
    status = _status2(ogc_on_pool, reg.task_id).findtext("wps:Status", namespaces=NS)
    assert status in {"Accepted", "Running", "Succeeded"}
    gone = xml(post(ogc_on_pool, job_request("Dismiss", reg.task_id)))
    assert gone.findtext("wps:Status", namespaces=NS) == "Dismissed"
    (task,) = soap.service.GetTaskStatus(task_ids=[reg.task_id])
    assert task.state == "purged"


def test_async_transmission_mode_is_kept(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    """Hough's ``lines`` (a small JSON) asked by reference stays a reference when the
    job ran asynchronously, on the JSON front and on WPS 2.0 (the same job)."""
    red, _ = _inputs(tmp_path)
    s: requests.Session = ogc_on_pool.session()
    body = {
        "inputs": {"image": {"value": base64.b64encode(red).decode()}, "max_lines": 1},
        "outputs": {"lines": {"transmissionMode": "reference"}},
    }
    resp = s.post(
        f"{ogc_on_pool.url}/processes/hough/execution",
        json=body,
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text[:500]
    job = resp.json()["jobID"]
    assert _poll2(ogc_on_pool, job) == "Succeeded"
    results = s.get(f"{resp.headers['Location']}/results", timeout=30).json()
    ref = m.InlineOrRefData.from_dict(results["lines"])  # as the OGC API definition reads it
    assert isinstance(ref.actual_instance, m.Link)
    assert set(results["lines"]) >= {"href", "type"} and "value" not in results["lines"]
    lines = s.get(results["lines"]["href"], timeout=30)
    assert lines.status_code == 200 and isinstance(lines.json(), list | dict)
    assert len(lines.content) < 1024  # under the fixture's cap: by value unless kept
    wps = xml(post(ogc_on_pool, job_request("GetResult", job)))
    assert wps.find("wps:Output[@id='lines']/wps:Reference", namespaces=NS) is not None
