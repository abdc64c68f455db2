"""A registered workflow (grayscale -> canny) run on the real pool through OGC API -
Processes, asynchronously: results by reference in alice's gateway area, the same
workflow seen through the workflow SOAP service, dismissal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import requests
import zeep
from cryptography import x509
from lxml import etree
from zeep.transports import Transport

from gproc.storage_gateway.access import user_key
from tests.fixtures.ogc import OgcServer
from tests.fixtures.workflow import WorkflowSoap
from tests.service.wps_helpers import (
    NS,
    XLINK,
    assert_schema_valid,
    async_form1,
    execute1,
    execute2,
    input2_ref,
    job_request,
    post,
    xml,
)

TIMEOUT_S = 180
PID = "workflow.edges"
FINAL2 = {"Succeeded", "Failed", "Dismissed"}


def _scene(path: Path) -> bytes:
    """A dark RGB scene crossed by a light road: canny finds its edges."""
    rgb = np.full((3, 64, 64), 40, dtype=np.uint8)
    rgb[:, :, 30:34] = 200
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
    ) as ds:
        ds.write(rgb)
    return path.read_bytes()


def _poll(s: requests.Session, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        doc: dict[str, Any] = s.get(url, timeout=30).json()
        if doc["status"] in ("successful", "failed", "dismissed"):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(1.0)


def _workflow_client(soap: WorkflowSoap, who: str) -> zeep.Client:
    session = requests.Session()
    session.trust_env = False
    session.cert = str(soap.pki.proxies[who])
    session.verify = str(soap.ca_file)
    return zeep.Client(soap.wsdl, transport=Transport(session=session))


def test_registered_workflow_async_by_reference(
    ogc_workflows_on_pool: OgcServer, workflow_soap: WorkflowSoap, tmp_path: Path
) -> None:
    ogc, url = ogc_workflows_on_pool, ogc_workflows_on_pool.url
    alice, bob = ogc.session("alice-voms"), ogc.session("bob-voms")
    alice_id = workflow_soap.validator.validate(
        x509.load_pem_x509_certificates(workflow_soap.pki.proxies["alice-voms"].read_bytes())
    )
    home = f"/private/{user_key(alice_id)}"
    workflow_soap.gateway.write(alice_id, f"{home}/ogc-scene.tif", [_scene(tmp_path / "s.tif")])
    resp = alice.post(
        f"{url}/processes/{PID}/execution",
        json={"inputs": {"S": f"gateway://{home}/ogc-scene.tif"}},
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    jid = resp.json()["jobID"]
    assert resp.headers["Location"] == f"{url}/jobs/{jid}"
    assert resp.json()["processID"] == PID
    assert jid in [j["jobID"] for j in alice.get(f"{url}/jobs", timeout=30).json()["jobs"]]
    assert bob.get(f"{url}/jobs/{jid}", timeout=30).status_code == 404  # alice's job
    soap = _workflow_client(workflow_soap, "alice-voms")
    seen = soap.service.GetWorkflowStatus(jid)  # the same workflow on the SOAP front
    assert seen.name == "edges" and [n.tool for n in seen.nodes] == ["grayscale", "canny"]
    status = _poll(alice, f"{url}/jobs/{jid}")
    assert status["status"] == "successful", status
    assert soap.service.GetWorkflowStatus(jid).state == "completed"
    results = alice.get(f"{url}/jobs/{jid}/results", timeout=30).json()
    href = results["B.output"]["href"]
    assert href.startswith(f"gateway://{home}/workflows/{jid}/"), results
    data = b"".join(workflow_soap.gateway.open_read(alice_id, href[len("gateway://") :]))
    with rasterio.MemoryFile(data) as mem, mem.open() as ds:
        edges = ds.read(1)
    assert set(np.unique(edges)) <= {0, 255} and edges[:, 28:36].any() and not edges[:, :20].any()
    assert bob.delete(f"{url}/jobs/{jid}", timeout=30).status_code == 404
    gone = alice.delete(f"{url}/jobs/{jid}", timeout=30)
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
    assert soap.service.GetWorkflowStatus(jid).state == "purged"


def _wps2_status(s: requests.Session, url: str, jid: str) -> Any:
    resp = s.get(
        f"{url}/wps",
        params={"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": jid},
        timeout=30,
    )
    return xml(resp)


def _edges_of(soap: WorkflowSoap, who: Any, href: str) -> Any:
    assert href.startswith("gateway://"), href
    data = b"".join(soap.gateway.open_read(who, href[len("gateway://") :]))
    with rasterio.MemoryFile(data) as mem, mem.open() as ds:
        return ds.read(1)


def test_registered_workflow_on_wps2_and_wps1(
    ogc_workflows_on_pool: OgcServer, workflow_soap: WorkflowSoap, tmp_path: Path
) -> None:
    """The same workflow process through WPS 2.0 (Execute, GetStatus, GetResult,
    Dismiss) and WPS 1.0.0 (Execute stored, the status document at its location), both
    runs at once; edges checked; each job is the workflow the SOAP service sees."""
    ogc, url = ogc_workflows_on_pool, ogc_workflows_on_pool.url
    alice = ogc.session("alice-voms")
    alice_id = workflow_soap.validator.validate(
        x509.load_pem_x509_certificates(workflow_soap.pki.proxies["alice-voms"].read_bytes())
    )
    home = f"/private/{user_key(alice_id)}"
    workflow_soap.gateway.write(alice_id, f"{home}/wps-scene.tif", [_scene(tmp_path / "s.tif")])
    ref = f"gateway://{home}/wps-scene.tif"
    v2 = execute2(input2_ref("S", ref), process=PID, mode="async")
    jid2 = xml(post(ogc, v2)).findtext("wps:JobID", namespaces=NS)
    v1 = execute1(
        f'<wps:Input><ows:Identifier>S</ows:Identifier><wps:Reference xlink:href="{ref}"/>'
        "</wps:Input>",
        process=PID,
        form=async_form1("B.output"),
    )
    accepted1 = xml(post(ogc, v1))
    location = accepted1.get("statusLocation")
    jid1 = location.rsplit("/", 1)[1]
    soap = _workflow_client(workflow_soap, "alice-voms")
    assert {soap.service.GetWorkflowStatus(j).name for j in (jid1, jid2)} == {"edges"}
    deadline = time.monotonic() + TIMEOUT_S
    while _wps2_status(alice, url, jid2).findtext("wps:Status", namespaces=NS) not in FINAL2:
        assert time.monotonic() < deadline
        time.sleep(1.0)
    assert _wps2_status(alice, url, jid2).findtext("wps:Status", namespaces=NS) == "Succeeded"
    result = xml(post(ogc, job_request("GetResult", jid2)))
    href2 = result.find("wps:Output[@id='B.output']/wps:Reference", NS).get(f"{{{XLINK}}}href")
    while (doc := xml(alice.get(location, timeout=30))).find(
        "wps1:Status/wps1:ProcessSucceeded", NS
    ) is None:
        assert doc.find("wps1:Status/wps1:ProcessFailed", NS) is None, etree.tostring(doc)
        assert time.monotonic() < deadline
        time.sleep(1.0)
    href1 = doc.find("wps1:ProcessOutputs/wps1:Output/wps1:Reference", NS).get("href")
    assert_schema_valid({"result2": etree.tostring(result), "done1": etree.tostring(doc)}, tmp_path)
    for jid, href in ((jid2, href2), (jid1, href1)):
        assert href.startswith(f"gateway://{home}/workflows/{jid}/"), href
        edges = _edges_of(workflow_soap, alice_id, href)
        assert set(np.unique(edges)) <= {0, 255} and edges[:, 28:36].any()
        assert not edges[:, :20].any()
    gone = xml(post(ogc, job_request("Dismiss", jid2)))
    assert gone.findtext("wps:Status", namespaces=NS) == "Dismissed"
    assert soap.service.GetWorkflowStatus(jid2).state == "purged"
    assert soap.service.GetWorkflowStatus(jid1).state == "completed"
