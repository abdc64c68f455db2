"""Registered workflows on OGC API - Processes without a pool: description and the
execute refusals (each a problem document naming what was wrong; nothing submitted)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.ogc import OgcServer

PID = "workflow.edges"


def test_registered_workflow_is_listed_and_described(ogc_workflows_offline: OgcServer) -> None:
    s, url = ogc_workflows_offline.session(), ogc_workflows_offline.url
    ids = [p["id"] for p in s.get(f"{url}/processes", timeout=30).json()["processes"]]
    assert PID in ids and "grayscale" in ids  # beside the connectors
    doc = s.get(f"{url}/processes/{PID}", timeout=30).json()
    assert list(doc["inputs"]) == ["S"] and list(doc["outputs"]) == ["B.output"]
    assert doc["jobControlOptions"] == ["async-execute", "dismiss"]
    resp = s.get(f"{url}/processes/workflow.nosuch", timeout=30)
    assert resp.status_code == 404 and resp.json()["type"].endswith("no-such-process")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": {"T": "gateway:///public/x.tif"}}, 400, "has no input 'T'"),
        ({"inputs": {}}, 400, "input S is required"),
        ({"inputs": {"S": "inline:abc"}}, 400, "not a reference"),
        ({"inputs": {"S": {"value": "abc"}}}, 400, "a reference"),
        ({"inputs": {"S": "/etc/passwd"}}, 400, "not allowed here"),  # no server files
        ([1], 400, "an object with inputs"),
    ],
)
def test_execute_refusals(
    ogc_workflows_offline: OgcServer, body: Any, status: int, words: str
) -> None:
    s, url = ogc_workflows_offline.session(), ogc_workflows_offline.url
    resp = s.post(f"{url}/processes/{PID}/execution", json=body, timeout=30)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert words in resp.json()["detail"]
    listed = s.get(f"{url}/jobs?processID={PID}", timeout=30).json()
    assert listed["numberMatched"] == 0  # nothing was registered


def test_unknown_workflow_job_is_not_found(ogc_workflows_offline: OgcServer) -> None:
    s, url = ogc_workflows_offline.session(), ogc_workflows_offline.url
    for method, path in (("GET", ""), ("GET", "/results"), ("DELETE", "")):
        resp = s.request(method, f"{url}/jobs/{'f' * 32}{path}", timeout=30)
        assert resp.status_code == 404, (method, path, resp.text)
