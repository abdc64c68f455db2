"""Registered workflows on WPS 2.0 and WPS 1.0.0 without a pool: offered and described
beside the connectors (schema-valid), and every execute refusal an ExceptionReport
with the WPS code naming what was wrong, with nothing registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.ogc import OgcServer
from tests.service.wps_helpers import (
    NS,
    assert_schema_valid,
    execute1,
    execute2,
    input2_ref,
    input2_value,
    job_request,
    kvp,
    post,
    report,
    xml,
)

pytestmark = pytest.mark.service

PID = "workflow.edges"
REF = "gateway:///public/scene.tif"


def _listed(srv: OgcServer) -> int:
    resp = srv.session().get(f"{srv.url}/jobs?processID={PID}", timeout=30)
    return int(resp.json()["numberMatched"])


def test_wps2_offers_and_describes_the_workflow(
    ogc_workflows_offline: OgcServer, tmp_path: Path
) -> None:
    srv = ogc_workflows_offline
    caps = kvp(srv, service="WPS", request="GetCapabilities", AcceptVersions="2.0.0")
    summaries = xml(caps).findall("wps:Contents/wps:ProcessSummary", NS)
    by_id = {s.findtext("ows:Identifier", namespaces=NS): s for s in summaries}
    assert "grayscale" in by_id and PID in by_id
    assert by_id[PID].get("jobControlOptions") == "async-execute dismiss"
    assert by_id[PID].get("outputTransmission") == "reference"
    desc = kvp(srv, service="WPS", request="DescribeProcess", version="2.0.0", identifier=PID)
    (proc,) = xml(desc).findall("wps:ProcessOffering/wps:Process", NS)
    ins = proc.findall("wps:Input", NS)
    assert [i.findtext("ows:Identifier", namespaces=NS) for i in ins] == ["S"]
    assert ins[0].get("maxOccurs") == "1000"
    outs = proc.findall("wps:Output", NS)
    assert [o.findtext("ows:Identifier", namespaces=NS) for o in outs] == ["B.output"]
    fmt = outs[0].find("wps:ComplexData/wps:Format", NS)
    assert fmt.get("mimeType") == "image/tiff"
    every = kvp(srv, service="WPS", request="DescribeProcess", version="2.0.0", identifier="ALL")
    ids = xml(every).findall("wps:ProcessOffering/wps:Process/ows:Identifier", NS)
    assert PID in [i.text for i in ids]
    assert_schema_valid({"caps": caps.content, "desc": desc.content}, tmp_path)


def test_wps1_offers_and_describes_the_workflow(
    ogc_workflows_offline: OgcServer, tmp_path: Path
) -> None:
    srv = ogc_workflows_offline
    caps = kvp(srv, service="WPS", request="GetCapabilities", AcceptVersions="1.0.0")
    ids = xml(caps).findall("wps1:ProcessOfferings/wps1:Process/ows1:Identifier", NS)
    assert PID in [i.text for i in ids]
    desc = kvp(srv, service="WPS", request="DescribeProcess", version="1.0.0", identifier=PID)
    (d,) = xml(desc).findall("ProcessDescription")
    assert d.get("storeSupported") == "true" and d.get("statusSupported") == "true"
    ins = d.findall("DataInputs/Input")
    assert [i.findtext("ows1:Identifier", namespaces=NS) for i in ins] == ["S"]
    assert ins[0].get("maxOccurs") == "1000"
    outs = d.findall("ProcessOutputs/Output")
    assert [o.findtext("ows1:Identifier", namespaces=NS) for o in outs] == ["B.output"]
    assert outs[0].findtext("ComplexOutput/Default/Format/MimeType") == "image/tiff"
    assert_schema_valid({"caps": caps.content, "desc": desc.content}, tmp_path)


@pytest.mark.parametrize(
    ("inputs", "outputs", "mode", "response", "code", "locator"),
    [
        (input2_ref("S", REF), "", "sync", "document", "NoSuchMode", "mode"),
        (input2_ref("S", REF), "", "async", "raw", "InvalidParameterValue", "response"),
        (input2_ref("T", REF), "", "async", "document", "NoSuchInput", "T"),
        ("", "", "async", "document", "MissingParameterValue", "S"),
        (input2_value("S", b"II*\x00"), "", "async", "document", "InvalidParameterValue", "S"),
        ('<wps:Input id="S"><wps:Reference/></wps:Input>', "", "async", "document",
         "MissingParameterValue", "S"),
        (input2_ref("S", REF), '<wps:Output id="A.output"/>', "auto", "document",
         "NoSuchOutput", "A.output"),
        (input2_ref("S", REF), '<wps:Output id="B.output" transmission="value"/>', "async",
         "document", "InvalidParameterValue", "B.output"),
        (input2_ref("S", "/etc/passwd"), "", "async", "document", "InvalidParameterValue", None),
    ],
)  # fmt: skip
def test_wps2_execute_refusals(
    ogc_workflows_offline: OgcServer,
    inputs: str,
    outputs: str,
    mode: str,
    response: str,
    code: str,
    locator: str | None,
) -> None:
    body = execute2(inputs, process=PID, mode=mode, outputs=outputs, response=response)
    resp = post(ogc_workflows_offline, body)
    report(resp, 400, code, version=2, locator=locator)
    assert _listed(ogc_workflows_offline) == 0  # nothing was registered


def _input1(name: str, inner: str) -> str:
    return f"<wps:Input><ows:Identifier>{name}</ows:Identifier>{inner}</wps:Input>"


REF1 = f'<wps:Reference xlink:href="{REF}"/>'


@pytest.mark.parametrize(
    ("inputs", "form", "code", "locator"),
    [
        (_input1("T", REF1), "", "InvalidParameterValue", "T"),
        ("", "", "MissingParameterValue", "S"),
        (
            _input1("S", REF1),
            "<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>B.output</ows:Identifier>"
            "</wps:RawDataOutput></wps:ResponseForm>",
            "InvalidParameterValue",
            "RawDataOutput",
        ),
        (
            _input1("S", REF1),
            '<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true">'
            '<wps:Output asReference="false"><ows:Identifier>B.output</ows:Identifier>'
            "</wps:Output></wps:ResponseDocument></wps:ResponseForm>",
            "InvalidParameterValue",
            "B.output",
        ),
        (
            _input1("S", "<wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data>"),
            "",
            "InvalidParameterValue",
            "S",
        ),
    ],
)
def test_wps1_execute_refusals(
    ogc_workflows_offline: OgcServer, inputs: str, form: str, code: str, locator: str
) -> None:
    resp = post(ogc_workflows_offline, execute1(inputs, process=PID, form=form))
    report(resp, 400, code, version=1, locator=locator)
    assert _listed(ogc_workflows_offline) == 0


def test_unknown_workflow_process_and_job(ogc_workflows_offline: OgcServer) -> None:
    srv = ogc_workflows_offline
    report(
        post(srv, execute2(input2_ref("S", REF), process="workflow.nosuch")),
        400,
        "NoSuchProcess",
        version=2,
    )
    resp = kvp(srv, service="WPS", request="DescribeProcess", version="1.0.0",
               identifier="workflow.nosuch")  # fmt: skip
    report(resp, 400, "InvalidParameterValue", version=1)
    for op in ("GetStatus", "GetResult", "Dismiss"):
        report(post(srv, job_request(op, "f" * 32)), 400, "NoSuchJob", version=2)
    resp = srv.session().get(f"{srv.url}/wps/status/{'f' * 32}", timeout=30)
    report(resp, 404, "InvalidParameterValue", version=1)
