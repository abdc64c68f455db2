"""The workflow SOAP service with zeep over HTTPS (alice's and bob's VOMS proxies):
Figure 7 end to end (its Hough lines checked against OpenCV on the same image),
ownership, and refusals as declared faults."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from zeep.exceptions import Fault
from zeep.transports import Transport

from tests.fixtures.workflow import WorkflowSoap
from tests.integration.test_workflow_dagman import FIGURE7, _opencv_reference, _roads

NS = "urn:gproc:workflow:1"


def _client(soap: WorkflowSoap, who: str) -> zeep.Client:
    session = requests.Session()
    session.trust_env = False
    session.cert = str(soap.pki.proxies[who])
    session.verify = str(soap.ca_file)
    return zeep.Client(soap.wsdl, transport=Transport(session=session))


def _fault(call: Any, *args: Any) -> tuple[str, dict[str, str]]:
    with pytest.raises(Fault) as info:
        call(*args)
    detail = info.value.detail
    assert detail is not None and len(detail) == 1
    (element,) = list(detail)
    assert element.tag.startswith("{" + NS + "}")  # this service's own declared fault
    fields = {child.tag.split("}")[1]: child.text for child in element}
    return str(info.value.code).split(":")[-1], fields


def test_figure7_through_soap(workflow_soap: WorkflowSoap, pool: Any, tmp_path: Path) -> None:
    alice, bob = _client(workflow_soap, "alice-voms"), _client(workflow_soap, "bob-voms")
    rgb = _roads(tmp_path / "scene.tif")
    spec = {
        "document": FIGURE7.read_text(),
        "name": "figure7",
        "sources": [{"name": "A0", "content": (tmp_path / "scene.tif").read_bytes()}],
        "submit": True,
        "client_request_id": "fig7-soap-1",
    }
    wf = alice.service.RegisterWorkflow(spec=spec)
    assert wf.state == "submitted" and [n.tool for n in wf.nodes] == ["grayscale", "canny", "hough"]
    assert wf.owner_dn == workflow_soap.pki.users["alice"].dn
    # the same request id gives the same workflow, not a second one
    assert alice.service.RegisterWorkflow(spec=spec).workflow_id == wf.workflow_id
    code, detail = _fault(bob.service.GetWorkflowStatus, wf.workflow_id)
    assert code == "Client.NotAuthorised" and detail.get("rule")
    assert _fault(bob.service.CancelWorkflow, wf.workflow_id)[0] == "Client.NotAuthorised"
    assert bob.service.ListWorkflows().total == 0
    deadline = time.monotonic() + 300
    while (status := alice.service.GetWorkflowStatus(wf.workflow_id)).state not in (
        "completed",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.state == "completed", status.state_reason
    assert all(n.state == "done" and n.runs == 1 and n.job_id for n in status.nodes)
    outputs = {o.name: o for o in alice.service.RetrieveWorkflowOutput(wf.workflow_id)}
    assert set(outputs) == {"n2_output.tif", "n2_lines.json"}
    lines = json.loads(outputs["n2_lines.json"].content)["lines"]
    reference = _opencv_reference(pool, rgb)
    assert len(reference) >= 2
    assert sorted([s["x1"], s["y1"], s["x2"], s["y2"]] for s in lines) == sorted(reference)
    log = alice.service.GetWorkflowLog(wf.workflow_id)
    assert log.events[0].kind == "REGISTERED" and log.events[-1].state == "completed"
    assert any(f.name == "dagman" and "EXITING WITH STATUS 0" in f.text for f in log.logs)
    page = alice.service.ListWorkflows(states=["completed"])
    assert wf.workflow_id in [w.workflow_id for w in page.workflows]
    assert _fault(bob.service.PurgeWorkflow, wf.workflow_id)[0] == "Client.NotAuthorised"
    assert alice.service.PurgeWorkflow(wf.workflow_id).state == "purged"


REFUSALS = [
    ("A:= [i1:input o1:output];", "Client.InvalidWorkflow", "line 1, column 15"),
    (
        'S:= [o1:output="/x"];\nA:= [i1:input, o1:output, "processing"="outIMG_1 nosuch(inIMG_1)"];'
        "\nS[s=o1] -> A[i1=s];",
        "Client.InvalidWorkflow",
        "unknown tool",
    ),
    (
        json.dumps(
            {
                "inputs": {"i": "/x"},
                "nodes": [
                    {"id": "a", "tool": "grayscale"},
                    {"id": "b", "tool": "equalize"},
                    {"id": "m", "tool": "mosaic"},
                ],
                "edges": [
                    {"input": "i", "to": "m.inputs"},
                    {"from": "b.output", "to": "m.inputs"},
                    {"from": "m.output", "to": "a.image"},
                    {"from": "a.output", "to": "b.image"},
                ],
            }
        ),
        "Client.InvalidWorkflow",
        "cycle: m -> a -> b -> m",
    ),
    (FIGURE7.read_text(), "Client.InvalidWorkflow", "not allowed here"),  # a server file
]


@pytest.mark.parametrize(("document", "code", "words"), REFUSALS)
def test_refusals_are_declared_faults(
    workflow_soap: WorkflowSoap, document: str, code: str, words: str
) -> None:
    alice = _client(workflow_soap, "alice-voms")
    spec = {"document": document, "sources": []}
    if "A0" in document:
        spec["sources"] = [{"name": "A0", "location": "/etc/passwd"}]
    got, detail = _fault(alice.service.RegisterWorkflow, spec)
    assert got == code and words in detail["message"], detail
    assert detail["request_id"]


def test_unknown_workflow(workflow_soap: WorkflowSoap) -> None:
    alice = _client(workflow_soap, "alice-voms")
    code, _ = _fault(alice.service.GetWorkflowStatus, "0" * 32)
    assert code == "Client.UnknownWorkflow"
    assert _fault(alice.service.RetryWorkflow, "f" * 32)[0] == "Client.UnknownWorkflow"
