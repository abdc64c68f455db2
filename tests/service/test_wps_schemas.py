"""WPS 2.0 and 1.0.0 documents checked against the official OGC schemas.

No package ships the WPS XSDs themselves; npm's ogc-schemas ships Jsonix mappings
and JSON schemas generated from them, and tests/integration/node/wps_schema_check.js
checks each document with those (names, namespaces, places and value types of every
element and attribute; required attributes), independently of gproc's Python code.
The checker is first shown to accept the OGC's sample documents and refuse broken
ones. Documents of finished jobs are checked in tests/integration/test_wps_pool.py."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.ogc import OgcServer
from tests.service.soap_helpers import client
from tests.service.wps_helpers import (
    NODE_DIR,
    NS,
    WPS2,
    assert_schema_valid,
    async_form1,
    execute1,
    execute2,
    input1_value,
    input2_literal,
    input2_value,
    job_request,
    kvp,
    ndvi2,
    post,
    schema_check,
    xml,
)

TIF = b"II*\x00fake raster bytes"
SAMPLES = NODE_DIR / "node_modules" / "ogc-schemas" / "tests"


def test_the_checker_accepts_ogc_samples_and_refuses_broken_documents(tmp_path: Path) -> None:
    samples = {
        f"{p.parent.name}-{p.stem}": p.read_bytes()
        for p in sorted((SAMPLES / "WPS").glob("*/*.xml"))
        + [SAMPLES / "OWS/2.0/owsExceptionReport.xml"]
    }
    assert len(samples) > 15
    assert_schema_valid(samples, tmp_path)
    status = (
        f'<wps:StatusInfo xmlns:wps="{WPS2}">'
        "<wps:JobID>j</wps:JobID><wps:Status>Accepted</wps:Status>"
    )
    broken = {
        "unknown": (status + "<wps:Bogus/></wps:StatusInfo>").encode(),
        "type": (
            status + "<wps:PercentCompleted>lots</wps:PercentCompleted></wps:StatusInfo>"
        ).encode(),
        "attribute": (
            f'<wps:ProcessOfferings xmlns:wps="{WPS2}" xmlns:ows="http://www.opengis.net/ows/2.0">'
            "<wps:ProcessOffering><wps:Process><ows:Title>t</ows:Title><ows:Identifier>x"
            "</ows:Identifier></wps:Process></wps:ProcessOffering></wps:ProcessOfferings>"
        ).encode(),
    }
    results = schema_check(broken, tmp_path)
    assert not any(r["ok"] for r in results.values()), results
    assert "Bogus" in results["unknown"]["errors"][0]
    assert "jobControlOptions" in results["attribute"]["errors"][0]


def test_service_documents_are_schema_valid(ogc_offline: OgcServer, tmp_path: Path) -> None:
    v2 = {"service": "WPS", "version": "2.0.0"}
    v1 = {"service": "WPS", "version": "1.0.0"}
    docs = {
        "caps2": kvp(ogc_offline, service="WPS", request="GetCapabilities").content,
        "caps1": kvp(ogc_offline, **v1, request="GetCapabilities").content,
        "describe2": kvp(ogc_offline, **v2, request="DescribeProcess", identifier="ALL").content,
        "describe1": kvp(ogc_offline, **v1, request="DescribeProcess", identifier="ALL").content,
    }
    assert_schema_valid(docs, tmp_path)


def test_job_documents_are_schema_valid(ogc_offline: OgcServer, tmp_path: Path) -> None:
    requests_sent = {
        "execute2": ndvi2(TIF, TIF, outputs='<wps:Output id="output" transmission="reference"/>'),
        "execute2-literal": execute2(
            input2_value("red", TIF) + input2_value("nir", TIF) + input2_literal("red_band", "1")
        ),
        "execute1": execute1(
            input1_value("red", TIF) + input1_value("nir", TIF), form=async_form1()
        ),
    }
    docs = {name: body.encode() for name, body in requests_sent.items()}
    accepted = post(ogc_offline, requests_sent["execute2"])
    job = xml(accepted).findtext("wps:JobID", namespaces=NS)
    docs |= {
        "statusinfo-execute": accepted.content,
        "statusinfo-get": post(ogc_offline, job_request("GetStatus", job)).content,
        "getstatus-request": job_request("GetStatus", job).encode(),
        "executeresponse1": post(ogc_offline, requests_sent["execute1"]).content,
    }
    c = client(ogc_offline.soap)
    spec = {"tool": "ndvi", "inputs": [{"name": p, "content": TIF} for p in ("red", "nir")]}
    (reg,) = c.service.RegisterTask(tasks=[spec])
    docs["statusinfo-dismissed"] = post(ogc_offline, job_request("Dismiss", reg.task_id)).content
    docs["exception2"] = post(ogc_offline, job_request("GetResult", job)).content
    docs["exception1"] = post(ogc_offline, execute1(input1_value("red", TIF))).content
    location = xml(post(ogc_offline, requests_sent["execute1"], who="bob-voms")).get(
        "statusLocation"
    )
    docs["exception1-status"] = ogc_offline.session().get(location, timeout=30).content
    assert b"ExceptionReport" in docs["exception2"] and b"ExceptionReport" in docs["exception1"]
    assert_schema_valid(docs, tmp_path)
