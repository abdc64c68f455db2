"""The workflow SOAP service with zeep over HTTPS (alice's and bob's VOMS proxies):
Figure 7 end to end (its Hough lines checked against OpenCV on the same image),
ownership, and refusals as declared faults."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import numpy as np
import pytest
import rasterio
import requests
import zeep
from cryptography import x509
from zeep.exceptions import Fault
from zeep.transports import Transport

from gproc.catalogue.model import Fields
from gproc.security.delegation import sign_request
from gproc.storage_gateway.access import user_key
from tests.fixtures.workflow import WorkflowSoap
from tests.integration.test_workflow_dagman import FIGURE7, _opencv_reference, _roads, _tif

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


def _wait(client: zeep.Client, wid: str, timeout: float = 600) -> Any:
    """Poll GetWorkflowStatus until the workflow ended (bounded: the pool is shared)."""
    deadline = time.monotonic() + timeout
    while (status := client.service.GetWorkflowStatus(wid)).state not in (
        "completed",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    return status


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
    status = _wait(alice, wf.workflow_id)
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


def test_catalogue_query_fan_out_runs_with_the_owners_proxy(
    workflow_soap: WorkflowSoap, tmp_path: Path
) -> None:
    """A start task's data is a catalogue query (one branch per dataset alice may see);
    every node job is given alice's delegated proxy; the final outputs are stored in
    alice's gateway area."""
    soap = workflow_soap
    alice_id = soap.validator.validate(
        x509.load_pem_x509_certificates(soap.pki.proxies["alice-voms"].read_bytes())
    )
    home = f"/private/{user_key(alice_id)}"
    scenes = {}
    roads = _roads(tmp_path / "roads.tif")
    for name, rgb in (("q2", roads), ("q1", np.ascontiguousarray(roads[:, :, ::-1]))):
        data = _tif(tmp_path / f"{name}.tif", rgb).read_bytes()  # registered out of name order
        soap.gateway.write(alice_id, f"{home}/{name}.tif", [data])
        soap.catalogue.register(alice_id, f"{home}/{name}.tif", Fields("wfq", name, "RASTER"))
        scenes[name] = rgb
    delegations = soap.gp.delegations
    assert delegations is not None
    csr = delegations.get_request(alice_id, "wf-proxy")
    chain = sign_request(csr, soap.pki.proxies["alice-voms"].read_bytes())
    delegations.put_proxy(alice_id, "wf-proxy", chain)
    document = {
        "inputs": {"scenes": "gql:datagroup:wfq"},
        "nodes": [{"id": "grey", "tool": "grayscale", "last": True}],
        "edges": [{"input": "scenes", "to": "grey.image"}],
    }
    alice = _client(soap, "alice-voms")
    spec = {"document": json.dumps(document), "delegation_id": "wf-proxy", "submit": True}
    wf = alice.service.RegisterWorkflow(spec=spec)
    assert [(n.node, n.branch) for n in wf.nodes] == [("grey", 0), ("grey", 1)]
    bob = _client(soap, "bob-voms")  # bob's query finds none of alice's datasets
    code, detail = _fault(bob.service.RegisterWorkflow, {"document": json.dumps(document)})
    assert code == "Client.InvalidWorkflow" and "finds no dataset" in detail["message"]
    status = _wait(alice, wf.workflow_id)
    assert status.state == "completed", status.state_reason
    jobs = _node_ads(soap.instance, wf.workflow_id)
    assert len(jobs) == 2 and all(ad.get("ExitCode") == 0 for ad in jobs), jobs
    for ad in jobs:  # each node job was given alice's proxy in its sandbox
        assert "x509up.pem" in str(ad.get("TransferInput")).split(","), ad
        assert "X509_USER_PROXY=x509up.pem" in str(ad.get("Environment")), ad
    outputs = alice.service.RetrieveWorkflowOutput(wf.workflow_id)
    assert len(outputs) == 2
    for out in outputs:
        assert out.location.startswith(f"gateway://{home}/workflows/{wf.workflow_id}/")
        stored = b"".join(soap.gateway.open_read(alice_id, out.location[len("gateway://") :]))
        assert stored == out.content
    # the branches follow the datasets' name order: q1 then q2
    by_node = {o.node: o for o in outputs}
    for branch, name in enumerate(("q1", "q2")):
        content = by_node[f"n{branch}_grey_{branch}"].content
        with rasterio.MemoryFile(content) as mem, mem.open() as ds:
            grey = ds.read(1)
        rgb = scenes[name].astype(float)
        assert np.abs(grey - (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])).max() <= 1
    # once completed, the service keeps no copy of the proxy (the tracker tidies the run)
    run_dir = soap.gp.core.dirs.run(wf.workflow_id, 1)
    deadline = time.monotonic() + 10
    while (run_dir / "x509up.pem").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run_dir / "wf.dag").is_file() and not (run_dir / "x509up.pem").exists()


def _node_ads(instance: str, wid: str) -> list[dict[str, Any]]:
    constraint = (
        f"GprocInstance == {classad2.quote(instance)} && GprocWorkflowId == {classad2.quote(wid)}"
        " && DAGManJobId =!= undefined"
    )
    attrs = ["GlobalJobId", "DAGNodeName", "ExitCode", "TransferInput", "Environment"]
    schedd = htcondor2.Schedd()
    ads = {a["GlobalJobId"]: dict(a) for a in schedd.query(constraint, attrs)}
    for ad in schedd.history(constraint, attrs, match=50):
        ads.setdefault(ad["GlobalJobId"], dict(ad))
    return list(ads.values())
