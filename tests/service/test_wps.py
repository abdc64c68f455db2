"""WPS 2.0 and 1.0.0 on ``/wps`` of the OGC server, over real HTTPS with the test
PKI's proxies. The core is the SOAP offline server's (no WMS: executed jobs stay
accepted); jobs run in tests/integration/test_wps_pool.py. Every exception code
path of both versions is driven here."""

from __future__ import annotations

from typing import Any

import pytest

from gproc.services.ogc.api_processes import build_wsgi
from gproc.settings import OgcSettings
from gproc.states import TaskState
from tests.fixtures.ogc import OgcServer
from tests.service.soap_helpers import client
from tests.service.wps_helpers import (
    NS,
    OWS1,
    WPS1,
    WPS2,
    async_form1,
    execute1,
    execute2,
    input1_value,
    input2_literal,
    input2_ref,
    input2_value,
    job_request,
    kvp,
    ndvi2,
    post,
    report,
    xml,
)

TIF = b"II*\x00fake raster bytes"
CAPS = {"service": "WPS", "request": "GetCapabilities"}


def started2(srv: OgcServer, who: str = "alice-voms") -> str:
    root = xml(post(srv, ndvi2(TIF, TIF), who=who))
    assert root.tag == f"{{{WPS2}}}StatusInfo"
    job: str = root.findtext("wps:JobID", namespaces=NS)
    return job


# ---- capabilities and descriptions ---------------------------------------------------
def test_capabilities_negotiate_the_version(ogc_offline: OgcServer) -> None:
    v2 = xml(kvp(ogc_offline, **CAPS))
    assert v2.tag == f"{{{WPS2}}}Capabilities" and v2.get("version") == "2.0.0"
    ids = v2.xpath("wps:Contents/wps:ProcessSummary/ows:Identifier/text()", namespaces=NS)
    assert {"ndvi", "canny", "mosaic"} <= set(ids)
    ops = v2.xpath("ows:OperationsMetadata/ows:Operation/@name", namespaces=NS)
    assert {"Execute", "GetStatus", "GetResult", "Dismiss"} <= set(ops)
    v1 = xml(kvp(ogc_offline, **CAPS, version="1.0.0"))
    assert v1.tag == f"{{{WPS1}}}Capabilities" and v1.get("version") == "1.0.0"
    assert "ndvi" in v1.xpath(
        "wps1:ProcessOfferings/wps1:Process/ows1:Identifier/text()", namespaces=NS
    )
    pick = xml(kvp(ogc_offline, **CAPS, AcceptVersions="3.0.0,1.0.0"))
    assert pick.tag == f"{{{WPS1}}}Capabilities"
    landing = ogc_offline.session().get(ogc_offline.url + "/", timeout=30).json()
    (wps,) = [x["href"] for x in landing["links"] if x["rel"] == "service"]
    assert xml(ogc_offline.session().get(wps, timeout=30)).tag == f"{{{WPS2}}}Capabilities"
    none = kvp(ogc_offline, **CAPS, AcceptVersions="3.0.0")
    report(none, 400, "VersionNegotiationFailed", locator="AcceptVersions")


def test_describe_process_v2(ogc_offline: OgcServer) -> None:
    root = xml(
        kvp(
            ogc_offline,
            service="WPS",
            version="2.0.0",
            request="DescribeProcess",
            identifier="canny",
        )
    )
    (proc,) = root.xpath("wps:ProcessOffering/wps:Process", namespaces=NS)
    assert proc.findtext("ows:Identifier", namespaces=NS) == "canny"
    (ap,) = proc.xpath("wps:Input[ows:Identifier='aperture_size']", namespaces=NS)
    assert ap.get("minOccurs") == "0"
    dom = ap.find("wps:LiteralData/LiteralDataDomain", namespaces=NS)
    assert dom.xpath("ows:AllowedValues/ows:Value/text()", namespaces=NS) == ["3", "5", "7"]
    assert dom.findtext("ows:DefaultValue", namespaces=NS) == "3"
    assert dom.find("ows:DataType", namespaces=NS).text == "integer"
    (c1,) = proc.xpath("wps:Input[ows:Identifier='canny1']", namespaces=NS)
    rng = c1.find("wps:LiteralData/LiteralDataDomain/ows:AllowedValues/ows:Range", namespaces=NS)
    assert rng.findtext("ows:MaximumValue", namespaces=NS) == "10000"
    (image,) = proc.xpath("wps:Input[ows:Identifier='image']", namespaces=NS)
    assert image.find("wps:ComplexData/wps:Format", namespaces=NS).get("mimeType") == "image/tiff"
    everything = xml(
        kvp(
            ogc_offline, service="WPS", version="2.0.0", request="DescribeProcess", identifier="ALL"
        )
    )
    assert len(everything) >= 10


def test_describe_process_v1(ogc_offline: OgcServer) -> None:
    root = xml(
        kvp(
            ogc_offline,
            service="WPS",
            version="1.0.0",
            request="DescribeProcess",
            identifier="mosaic,clip",
        )
    )
    assert root.tag == f"{{{WPS1}}}ProcessDescriptions"
    mosaic, clip = root.findall("ProcessDescription")
    (inputs,) = mosaic.xpath("DataInputs/Input[ows1:Identifier='inputs']", namespaces=NS)
    assert (inputs.get("minOccurs"), inputs.get("maxOccurs")) == ("2", "64")
    assert inputs.findtext("ComplexData/Default/Format/MimeType") == "image/tiff"
    (bbox,) = clip.xpath("DataInputs/Input[ows1:Identifier='bbox']", namespaces=NS)
    assert bbox.get("minOccurs") == "1" and bbox.find("BoundingBoxData") is not None
    assert clip.get("storeSupported") == "true" and clip.get("statusSupported") == "true"


# ---- WPS 2.0 jobs ------------------------------------------------------------------------
def test_wps2_async_job_is_a_task_seen_through_soap(ogc_offline: OgcServer) -> None:
    body = execute2(
        input2_value("red", TIF) + input2_value("nir", TIF) + input2_literal("red_band", "1"),
        outputs='<wps:Output id="output" transmission="reference"/>',
    )
    info = xml(post(ogc_offline, body))
    job = info.findtext("wps:JobID", namespaces=NS)
    assert info.findtext("wps:Status", namespaces=NS) == "Accepted"
    assert info.find("wps:NextPoll", namespaces=NS) is not None
    (task,) = client(ogc_offline.soap).service.GetTaskStatus(task_ids=[job])
    assert task.tool == "ndvi" and task.owner_dn == ogc_offline.soap.pki.users["alice"].dn
    by_kvp = xml(kvp(ogc_offline, service="WPS", version="2.0.0", request="GetStatus", jobId=job))
    assert by_kvp.findtext("wps:Status", namespaces=NS) == "Accepted"
    by_xml = xml(post(ogc_offline, job_request("GetStatus", job)))
    assert by_xml.findtext("wps:JobID", namespaces=NS) == job
    report(post(ogc_offline, job_request("GetResult", job)), 400, "ResultNotReady")
    # the same job on the JSON front
    doc = ogc_offline.session().get(f"{ogc_offline.url}/jobs/{job}", timeout=30).json()
    assert doc["status"] == "accepted"


def test_wps2_dismiss_of_a_soap_task(ogc_offline: OgcServer) -> None:
    c = client(ogc_offline.soap)
    spec = {"tool": "ndvi", "inputs": [{"name": p, "content": TIF} for p in ("red", "nir")]}
    (reg,) = c.service.RegisterTask(tasks=[spec])
    info = xml(
        kvp(ogc_offline, service="WPS", version="2.0.0", request="GetStatus", jobId=reg.task_id)
    )
    assert info.findtext("wps:Status", namespaces=NS) == "Accepted"
    gone = xml(post(ogc_offline, job_request("Dismiss", reg.task_id)))
    assert gone.findtext("wps:Status", namespaces=NS) == "Dismissed"
    (task,) = c.service.GetTaskStatus(task_ids=[reg.task_id])
    assert task.state == str(TaskState.PURGED)
    again = kvp(ogc_offline, service="WPS", version="2.0.0", request="GetResult", jobId=reg.task_id)
    report(again, 400, "NoSuchJob")


def test_wps2_another_users_job_is_no_such_job(ogc_offline: OgcServer) -> None:
    job = started2(ogc_offline, who="bob-voms")  # bob administers the VO; alice does not
    for op in ("GetStatus", "GetResult", "Dismiss"):
        report(post(ogc_offline, job_request(op, job)), 400, "NoSuchJob", locator=job)
    report(
        kvp(ogc_offline, service="WPS", version="2.0.0", request="GetStatus", jobId="x" * 40),
        400,
        "NoSuchJob",
    )
    report(
        kvp(ogc_offline, service="WPS", version="2.0.0", request="GetStatus", jobId="../etc"),
        400,
        "NoSuchJob",
    )
    mine = xml(post(ogc_offline, job_request("GetStatus", job), who="bob-voms"))
    assert mine.findtext("wps:JobID", namespaces=NS) == job


def test_wps2_dismissing_a_job_being_submitted_is_a_conflict(ogc_offline: OgcServer) -> None:
    job = started2(ogc_offline)  # offline: the task stays submitting
    report(post(ogc_offline, job_request("Dismiss", job)), 409, "NoApplicableCode")


def test_wps2_sync_not_done_in_time_answers_with_the_status(ogc_offline: OgcServer) -> None:
    info = xml(post(ogc_offline, ndvi2(TIF, TIF, mode="sync")))  # the fixture waits 0.5 s
    assert info.tag == f"{{{WPS2}}}StatusInfo"
    assert info.findtext("wps:Status", namespaces=NS) == "Accepted"


def test_wps2_reference_inputs_follow_the_soap_rules(ogc_offline: OgcServer) -> None:
    bad = execute2(input2_ref("red", "http://elsewhere/x.tif") + input2_value("nir", TIF))
    report(post(ogc_offline, bad), 400, "InvalidParameterValue", locator="inputs.red")


# ---- WPS 2.0 exceptions -----------------------------------------------------------------
V2 = {"service": "WPS", "version": "2.0.0"}

KVP_CASES: list[tuple[dict[str, str], int, str, str | None]] = [
    ({"request": "GetCapabilities"}, 400, "MissingParameterValue", "service"),
    ({"service": "WMS", "request": "GetCapabilities"}, 400, "InvalidParameterValue", "service"),
    ({"service": "WPS"}, 400, "MissingParameterValue", "request"),
    (
        {"service": "WPS", "request": "DescribeProcess", "identifier": "ndvi"},
        400,
        "MissingParameterValue",
        "version",
    ),
    (
        {**V2, "version": "9.9", "request": "DescribeProcess"},
        400,
        "InvalidParameterValue",
        "version",
    ),
    ({**V2, "request": "Frobnicate"}, 501, "OperationNotSupported", "request"),
    ({**V2, "request": "Execute"}, 501, "OperationNotSupported", "request"),
    ({**V2, "request": "DescribeProcess"}, 400, "MissingParameterValue", "identifier"),
    ({**V2, "request": "DescribeProcess", "identifier": "nope"}, 400, "NoSuchProcess", "processID"),
    ({**V2, "request": "GetStatus"}, 400, "MissingParameterValue", "jobId"),
    ({**V2, "request": "GetResult", "jobId": "0" * 32}, 400, "NoSuchJob", "0" * 32),
]


@pytest.mark.parametrize(("params", "status", "code", "locator"), KVP_CASES)
def test_wps2_kvp_exceptions(
    ogc_offline: OgcServer, params: dict[str, str], status: int, code: str, locator: str | None
) -> None:
    report(kvp(ogc_offline, **params), status, code, locator=locator)


_RED, _NIR = input2_value("red", TIF), input2_value("nir", TIF)
XML_CASES: list[tuple[str, int, str, str | None]] = [
    (ndvi2(TIF, TIF, process="nope"), 400, "NoSuchProcess", "processID"),
    (
        execute2(_RED + _NIR).replace("<ows:Identifier>ndvi</ows:Identifier>", ""),
        400,
        "MissingParameterValue",
        "Identifier",
    ),
    (ndvi2(TIF, TIF, mode="later"), 400, "NoSuchMode", "mode"),
    (ndvi2(TIF, TIF, response="sideways"), 400, "InvalidParameterValue", "response"),
    (execute2(_RED), 400, "MissingParameterValue", "nir"),
    (execute2(_RED + _NIR + input2_literal("blue", "1")), 400, "NoSuchInput", "blue"),
    (execute2(_RED + _NIR, outputs='<wps:Output id="other"/>'), 400, "NoSuchOutput", "other"),
    (
        execute2(_RED + _NIR, outputs='<wps:Output id="output" transmission="pigeon"/>'),
        400,
        "InvalidParameterValue",
        "output",
    ),
    (execute2(_RED + _NIR + input2_literal("red_band", "0")), 400, "InvalidParameterValue", None),
    (
        execute2(_RED + _NIR + input2_literal("red_band", "many")),
        400,
        "InvalidParameterValue",
        None,
    ),
    (
        execute2(
            _RED + '<wps:Input id="nir"><wps:Data encoding="base64">@@@</wps:Data></wps:Input>'
        ),
        400,
        "InvalidParameterValue",
        "nir",
    ),
    (
        execute2(_RED + '<wps:Input id="nir"><wps:Data>plain</wps:Data></wps:Input>'),
        400,
        "InvalidParameterValue",
        "nir",
    ),
    (
        execute2(_RED + '<wps:Input id="nir"><wps:Reference/></wps:Input>'),
        400,
        "MissingParameterValue",
        "nir",
    ),
    (
        ndvi2(TIF, TIF).replace('version="2.0.0"', 'version="2.1.0"'),
        400,
        "InvalidParameterValue",
        "version",
    ),
    (
        f'<wps:Frobnicate xmlns:wps="{WPS2}" service="WPS" version="2.0.0"/>',
        501,
        "OperationNotSupported",
        "request",
    ),
    (
        f'<wps:GetStatus xmlns:wps="{WPS2}" service="WPS" version="2.0.0"/>',
        400,
        "MissingParameterValue",
        "JobID",
    ),
    ('<x:Execute xmlns:x="urn:other"/>', 501, "OperationNotSupported", "request"),
    ("<not xml", 400, "NoApplicableCode", "body"),
    (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
        400,
        "NoApplicableCode",
        "body",
    ),
    ("<a>" * 40 + "</a>" * 40, 400, "SizeExceeded", "depth"),
]


@pytest.mark.parametrize(("body", "status", "code", "locator"), XML_CASES)
def test_wps2_xml_exceptions(
    ogc_offline: OgcServer, body: str, status: int, code: str, locator: str | None
) -> None:
    report(post(ogc_offline, body), status, code, locator=locator)


def test_wps2_body_over_the_cap(ogc_offline: OgcServer) -> None:
    big = ndvi2(TIF * 4000, TIF)  # the offline fixture caps bodies at 64 KiB
    report(post(ogc_offline, big), 400, "SizeExceeded", locator="body")
    assert xml(kvp(ogc_offline, **CAPS)).tag.endswith("Capabilities")  # and carries on


def test_wps_authorisation(ogc_offline: OgcServer) -> None:
    report(post(ogc_offline, ndvi2(TIF, TIF), who="alice-limited"), 403, "NoApplicableCode")
    report(post(ogc_offline, ndvi2(TIF, TIF), who="alice"), 403, "NoApplicableCode")
    v1 = post(
        ogc_offline, execute1(input1_value("red", TIF) + input1_value("nir", TIF)), who="alice"
    )
    report(v1, 403, "NoApplicableCode", version=1)


def _call(app: Any, query: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.update(status=status, headers=dict(headers))

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/wps",
        "QUERY_STRING": query,
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "front.example",
        "SERVER_NAME": "front.example",
        "SERVER_PORT": "443",
        "gproc.auth_error": "no client certificate (trusted front sent none)",
    }
    body = b"".join(app(environ, start))
    return seen["status"], seen["headers"], body


def test_wps_no_credential_is_401(ogc_offline: OgcServer) -> None:
    app = build_wsgi(ogc_offline.soap.gp, OgcSettings())
    for query, ows in (
        ("service=WPS&request=GetCapabilities", "ows/2.0"),
        ("service=WPS&request=GetCapabilities&version=1.0.0", "ows/1.1"),
    ):
        status, headers, body = _call(app, query)
        assert status.startswith("401") and "WWW-Authenticate" in headers
        assert f"http://www.opengis.net/{ows}".encode() in body
        assert b"trusted front" in body and b"NoApplicableCode" in body


# ---- WPS 1.0.0 ------------------------------------------------------------------------------
def test_wps1_async_execute_and_status_location(ogc_offline: OgcServer) -> None:
    body = execute1(input1_value("red", TIF) + input1_value("nir", TIF), form=async_form1())
    resp = xml(post(ogc_offline, body))
    assert resp.tag == f"{{{WPS1}}}ExecuteResponse"
    location = resp.get("statusLocation")
    assert location.startswith(ogc_offline.url + "/wps/status/")
    assert resp.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessAccepted") is not None
    job = location.rsplit("/", 1)[1]
    (task,) = client(ogc_offline.soap).service.GetTaskStatus(task_ids=[job])
    assert task.tool == "ndvi"
    again = xml(ogc_offline.session().get(location, timeout=30))
    assert again.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessAccepted") is not None
    assert again.findtext(f"{{{WPS1}}}Process/{{{OWS1}}}Identifier") == "ndvi"
    bobs = xml(post(ogc_offline, body, who="bob-voms")).get("statusLocation")
    other = ogc_offline.session().get(bobs, timeout=30)  # bob administers the VO; alice not
    report(other, 404, "InvalidParameterValue", version=1, locator=bobs.rsplit("/", 1)[1])


def test_wps1_sync_not_done_in_time_gives_a_status_location(ogc_offline: OgcServer) -> None:
    resp = xml(post(ogc_offline, execute1(input1_value("red", TIF) + input1_value("nir", TIF))))
    assert (
        resp.get("statusLocation")
        and resp.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessAccepted") is not None
    )


_IN1 = input1_value("red", TIF) + input1_value("nir", TIF)
V1_CASES: list[tuple[str, int, str, str | None]] = [
    (execute1(_IN1, process="nope"), 400, "InvalidParameterValue", "processID"),
    (execute1(input1_value("red", TIF)), 400, "MissingParameterValue", "nir"),
    (execute1(_IN1 + input1_value("blue", TIF)), 400, "InvalidParameterValue", "blue"),
    (execute1(_IN1, form=async_form1("other")), 400, "InvalidParameterValue", "other"),
    (
        execute1(
            _IN1,
            form=async_form1().replace(
                'storeExecuteResponse="true"', 'storeExecuteResponse="false"'
            ),
        ),
        400,
        "InvalidParameterValue",
        "status",
    ),
    (
        execute1(_IN1, form=async_form1().replace('status="true"', 'status="true" lineage="true"')),
        400,
        "InvalidParameterValue",
        "lineage",
    ),
    (
        execute1(_IN1).replace('version="1.0.0"', 'version="0.4.0"'),
        400,
        "InvalidParameterValue",
        "version",
    ),
    (
        f'<wps:GetStatus xmlns:wps="{WPS1}" service="WPS" version="1.0.0"/>',
        501,
        "OperationNotSupported",
        "request",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "locator"), V1_CASES)
def test_wps1_exceptions(
    ogc_offline: OgcServer, body: str, status: int, code: str, locator: str | None
) -> None:
    report(post(ogc_offline, body), status, code, version=1, locator=locator)


def test_wps1_kvp_exceptions(ogc_offline: OgcServer) -> None:
    v1 = {"service": "WPS", "version": "1.0.0"}
    report(
        kvp(ogc_offline, **v1, request="DescribeProcess"),
        400,
        "MissingParameterValue",
        1,
        "identifier",
    )
    report(
        kvp(ogc_offline, **v1, request="DescribeProcess", identifier="nope"),
        400,
        "InvalidParameterValue",
        1,
    )
    report(kvp(ogc_offline, **v1, request="Execute"), 501, "OperationNotSupported", 1)
    report(kvp(ogc_offline, **CAPS, version="0.1"), 400, "VersionNegotiationFailed", 2, "version")
    missing = ogc_offline.session().get(ogc_offline.url + "/wps/status/" + "0" * 32, timeout=30)
    report(missing, 404, "InvalidParameterValue", 1, "0" * 32)


def test_inputs_by_reference(ogc_offline: OgcServer) -> None:
    """Locations follow the SOAP service's rules (here ``file://`` under an allowed
    directory; ``gateway://`` and ``dataset:`` go through the same task data)."""
    allowed = ogc_offline.soap.gp.settings.service.allowed_input_dirs[0]
    refs = {}
    for port in ("red", "nir"):
        (allowed / f"{port}.tif").write_bytes(TIF + port.encode())
        refs[port] = (allowed / f"{port}.tif").as_uri()
    v2 = execute2(input2_ref("red", refs["red"]) + input2_ref("nir", refs["nir"]))
    job = xml(post(ogc_offline, v2)).findtext("wps:JobID", namespaces=NS)
    (task,) = client(ogc_offline.soap).service.GetTaskStatus(task_ids=[job])
    assert task.tool == "ndvi" and task.state in {"submitting", "registered"}
    ref1 = "".join(
        f"<wps:Input><ows:Identifier>{p}</ows:Identifier>"
        f'<wps:Reference xlink:href="{u}"/></wps:Input>'
        for p, u in refs.items()
    )
    resp = xml(post(ogc_offline, execute1(ref1, form=async_form1())))
    assert resp.get("statusLocation")
    outside = execute2(input2_ref("red", "file:///etc/passwd") + input2_ref("nir", refs["nir"]))
    report(post(ogc_offline, outside), 400, "InvalidParameterValue")
    dataset = execute2(input2_ref("red", "dataset:srtm/dem") + input2_ref("nir", refs["nir"]))
    report(post(ogc_offline, dataset), 400, "InvalidParameterValue")
