"""OGC API - Processes on the real pool with plain ``requests``: an NDVI job run
asynchronously, polled and read by reference, checked against NumPy; a sync
execute; one job model across the OGC and SOAP fronts."""

from __future__ import annotations

import base64
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

from tests.fixtures.ogc import OgcServer
from tests.fixtures.soap import REPO
from tests.service.soap_helpers import client

TIMEOUT_S = 300


def _sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ndvi_sample", REPO / "examples" / "ndvi_sample.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ndvi_sample"] = module
    spec.loader.exec_module(module)
    return module


def _ndvi_body(tmp: Path) -> dict[str, Any]:
    _sample().make(tmp)
    value = {
        p: {"value": base64.b64encode((tmp / f"{p}.tif").read_bytes()).decode()}
        for p in ("red", "nir")
    }
    return {
        "inputs": {**value, "red_band": 1},
        "outputs": {"output": {"transmissionMode": "reference"}},
    }


def _poll(s: requests.Session, url: str, until: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        doc: dict[str, Any] = s.get(url, timeout=30).json()
        if doc["status"] in until or time.monotonic() > deadline:
            return doc
        time.sleep(1.0)


def test_async_ndvi_by_reference(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    s = ogc_on_pool.session()
    resp = s.post(
        f"{ogc_on_pool.url}/processes/ndvi/execution",
        json=_ndvi_body(tmp_path),
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text[:500]
    status = _poll(s, resp.headers["Location"], {"successful", "failed", "dismissed"})
    assert status["status"] == "successful", status
    assert status["finished"] and status["progress"] == 100
    (results_link,) = [x["href"] for x in status["links"] if x["rel"].endswith("/results")]
    results = s.get(results_link, timeout=30).json()
    out = results["output"]
    assert out["type"].startswith("image/tiff") and "value" not in out  # above the 1 KiB cap
    data = s.get(out["href"], timeout=30)
    assert data.status_code == 200 and data.headers["Content-Type"].startswith("image/tiff")
    (tmp_path / "ndvi.tif").write_bytes(data.content)
    assert _sample().check(tmp_path, tmp_path / "ndvi.tif") == 0  # NDVI matches NumPy
    (task,) = client(ogc_on_pool.soap).service.GetTaskStatus(task_ids=[status["jobID"]])
    assert task.state == "completed" and task.exit_code == 0
    dismissed = s.delete(resp.headers["Location"], timeout=30).json()
    assert dismissed["status"] == "dismissed"
    (task,) = client(ogc_on_pool.soap).service.GetTaskStatus(task_ids=[status["jobID"]])
    assert task.state == "purged"


def test_sync_execute_answers_with_the_results(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    body = _ndvi_body(tmp_path)
    resp = ogc_on_pool.session().post(
        f"{ogc_on_pool.url}/processes/ndvi/execution", json=body, timeout=180
    )
    assert resp.status_code == 200, resp.text[:500]
    href = resp.json()["output"]["href"]
    (tmp_path / "ndvi.tif").write_bytes(ogc_on_pool.session().get(href, timeout=30).content)
    assert _sample().check(tmp_path, tmp_path / "ndvi.tif") == 0


def test_one_job_model_across_fronts(ogc_on_pool: OgcServer, tmp_path: Path) -> None:
    s, soap = ogc_on_pool.session(), client(ogc_on_pool.soap)
    body = _ndvi_body(tmp_path)
    # started here, cancelled through SOAP
    resp = s.post(
        f"{ogc_on_pool.url}/processes/ndvi/execution",
        json=body,
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    job = resp.json()["jobID"]
    (cancelled,) = soap.service.CancelTask(task_ids=[job], reason="stop")
    assert cancelled.state == "cancelled"
    assert s.get(resp.headers["Location"], timeout=30).json()["status"] == "dismissed"
    # started through SOAP, seen and dismissed here
    red, nir = ((tmp_path / f"{p}.tif").read_bytes() for p in ("red", "nir"))
    spec = {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": red}, {"name": "nir", "content": nir}],
    }
    (reg,) = soap.service.RegisterTask(tasks=[spec])
    soap.service.SubmitTask(task_ids=[reg.task_id])
    url = f"{ogc_on_pool.url}/jobs/{reg.task_id}"
    assert s.get(url, timeout=30).json()["status"] in {"accepted", "running", "successful"}
    gone = s.delete(url, timeout=30)
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed", gone.text
    (task,) = soap.service.GetTaskStatus(task_ids=[reg.task_id])
    assert task.state == "purged"


def test_failed_job_results_are_a_conflict(ogc_on_pool: OgcServer) -> None:
    s = ogc_on_pool.session()
    junk = base64.b64encode(b"II*\x00 not a raster").decode()
    body = {"inputs": {"red": {"value": junk}, "nir": {"value": junk}}}
    resp = s.post(
        f"{ogc_on_pool.url}/processes/ndvi/execution",
        json=body,
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    status = _poll(s, resp.headers["Location"], {"successful", "failed", "dismissed"})
    assert status["status"] == "failed", status
    results = s.get(f"{resp.headers['Location']}/results", timeout=30)
    assert results.status_code == 409
    assert results.headers["Content-Type"] == "application/problem+json"
    assert results.json()["code"] == "Client.JobFailed"
