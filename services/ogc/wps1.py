"""WPS 1.0.0 on ``/wps``: GetCapabilities, DescribeProcess (KVP or XML), Execute (POST
XML) with ``ResponseDocument`` or ``RawDataOutput``, and the status document of a
stored execution at its ``statusLocation`` (``/wps/status/{job id}``).

``storeExecuteResponse="true"`` (with ``status="true"`` for updates) runs the job
asynchronously: the answer is the ExecuteResponse with ``statusLocation`` and
``ProcessAccepted``; the status document then follows the task (ProcessAccepted,
ProcessStarted, ProcessSucceeded with the outputs, ProcessFailed with the reason; a
dismissed job is a failure saying so). Otherwise the request waits up to
``sync_wait_s`` and answers with the outputs (or the raw output); a job that has not
finished by then is answered with its status document and ``statusLocation`` so the
client can poll. Outputs are given by value (base64) unless ``asReference="true"``
or above ``max_inline_output_bytes``; references point at the JSON front's
``/jobs/{id}/results/{output}``, behind the same TLS client authentication.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from lxml import etree

from gproc import connectors
from gproc.connectors import Connector
from gproc.domain import InvalidTaskRequest, TaskView
from gproc.security.identity import Identity
from gproc.services.ogc import jobs
from gproc.services.ogc import wps_flows as flows
from gproc.services.ogc.front import JobFront, NoSuchJob, connector
from gproc.services.ogc.tables import JobStatus, job_status, workflow_status
from gproc.services.ogc.workflows import PREFIX
from gproc.services.ogc.wps_common import (
    OWS11,
    RASTER_MIME,
    WPS10,
    XLINK,
    XML_NS,
    Kvp,
    MissingParameter,
    NoSuchInput,
    NoSuchOutput,
    OperationNotSupported,
    XmlReply,
    allowed_values,
    base_url,
    bbox_text,
    data_type,
    default_text,
    q,
    serialise,
    sub,
    text_of,
)
from gproc.services.soap.service import owner_of
from gproc.workflows.views import WorkflowView

VERSION = "1.0.0"
NSMAP = {"wps": WPS10, "ows": OWS11, "xlink": XLINK}
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute")
STATUS_PATH = "/wps/status/"


def W(name: str) -> str:  # noqa: N802 - reads like the prefix it stands for
    return q(WPS10, name)


def O(name: str) -> str:  # noqa: N802,E743
    return q(OWS11, name)


def _root(tag: str) -> etree._Element:
    root = etree.Element(W(tag), nsmap=NSMAP, service="WPS", version=VERSION)
    root.set(q(XML_NS, "lang"), "en-US")
    return root


def _flag(el: etree._Element, name: str) -> bool:
    value = el.get(name, "false")
    if value not in ("true", "false", "1", "0"):
        raise InvalidTaskRequest(name, "a boolean (true or false)")
    return value in ("true", "1")


def _by_reference(el: etree._Element) -> bool:
    """A workflow output: by reference unless ``asReference="false"``."""
    return el.get("asReference") is None or _flag(el, "asReference")


class Wps1(JobFront):
    """The WPS 1.0.0 operations; ``get`` for KVP, ``post`` for XML requests."""

    def get(self, environ: dict[str, Any], kvp: Kvp, request: str) -> XmlReply:
        self.caller(environ)
        if request == "GetCapabilities":
            return self.capabilities(environ)
        if request == "DescribeProcess":
            return self.describe(kvp.require("identifier").split(","))
        if request == "Execute":
            raise OperationNotSupported(
                "WPS 1.0.0 Execute is offered as an XML document sent with POST", field="request"
            )
        raise OperationNotSupported(f"no operation {request[:80]!r}", field="request")

    def post(self, environ: dict[str, Any], root: etree._Element) -> XmlReply:
        ident = self.caller(environ)
        name = etree.QName(root).localname
        if name not in OPERATIONS:
            raise OperationNotSupported(f"no operation {name[:80]!r}", field="request")
        if name == "GetCapabilities":
            return self.capabilities(environ)
        if root.get("version") != VERSION:
            raise InvalidTaskRequest("version", f"this endpoint's WPS 1.0.0 version is {VERSION}")
        if name == "DescribeProcess":
            ids = [text_of(el) for el in root.findall(O("Identifier"))]
            if not ids:
                raise MissingParameter("ows:Identifier is required", field="Identifier")
            return self.describe(ids)
        return self.execute(environ, ident, root)

    # ---- service and process descriptions ---------------------------------------------
    def capabilities(self, environ: dict[str, Any]) -> XmlReply:
        url = base_url(environ) + "/wps"
        root = _root("Capabilities")
        ident = sub(root, O("ServiceIdentification"))
        sub(ident, O("Title"), "gproc processing")
        sub(ident, O("Abstract"), "Earth-observation processing on the grid (WPS 1.0.0)")
        sub(ident, O("ServiceType"), "WPS")
        sub(ident, O("ServiceTypeVersion"), VERSION)
        provider = sub(root, O("ServiceProvider"))
        sub(provider, O("ProviderName"), "gproc")
        sub(provider, O("ServiceContact"))
        meta = sub(root, O("OperationsMetadata"))
        for op in OPERATIONS:
            http = sub(sub(sub(meta, O("Operation"), name=op), O("DCP")), O("HTTP"))
            if op != "Execute":
                sub(http, O("Get"), **{q(XLINK, "href"): url + "?"})
            sub(http, O("Post"), **{q(XLINK, "href"): url})
        offerings = sub(root, W("ProcessOfferings"))
        for c in connectors.list_connectors():
            proc = sub(offerings, W("Process"), **{W("processVersion"): "1.0.0"})
            sub(proc, O("Identifier"), c.name)
            sub(proc, O("Title"), c.name)
            sub(proc, O("Abstract"), c.description)
        for r in self.workflows.registered.values() if self.workflows else ():
            flows.process1(offerings, r)
        langs = sub(root, W("Languages"))
        sub(sub(langs, W("Default")), O("Language"), "en-US")
        sub(sub(langs, W("Supported")), O("Language"), "en-US")
        return XmlReply(200, serialise(root))

    def describe(self, ids: list[str]) -> XmlReply:
        everything = [i.lower() for i in ids] == ["all"]
        root = _root("ProcessDescriptions")
        for pid in [c.name for c in connectors.list_connectors()] if everything else ids:
            if flows.is_workflow(pid.strip()):
                r = self.workflow_processes().get(pid.strip())
                flows.description1(root, r)
            else:
                _description(root, connector(pid.strip()))
        if everything and self.workflows is not None:
            for r in self.workflows.registered.values():
                flows.description1(root, r)
        return XmlReply(200, serialise(root))

    # ---- execute and the status document -------------------------------------------------
    def execute(self, environ: dict[str, Any], ident: Identity, root: etree._Element) -> XmlReply:
        ident_el = root.find(O("Identifier"))
        if ident_el is None or not text_of(ident_el):
            raise MissingParameter("ows:Identifier is required", field="Identifier")
        if flows.is_workflow(text_of(ident_el)):
            return self.execute_workflow(environ, ident, text_of(ident_el), root)
        c = connector(text_of(ident_el))
        spec = parse_inputs(c, root)
        form = parse_form(c, root, spec)
        view = self.start(ident, spec, {"modes": spec.modes, **form})
        if not form["store"]:
            view = self.wait(view)
        raw = form.get("raw")
        if raw and job_status(view.state) == JobStatus.SUCCESSFUL:
            data, media = self.output(ident, view.id, raw)
            return XmlReply(200, data, content_type=media)
        return XmlReply(200, serialise(self.response(environ, view)))

    def execute_workflow(
        self, environ: dict[str, Any], ident: Identity, pid: str, root: etree._Element
    ) -> XmlReply:
        """A registered workflow's job: always stored (asynchronous), whatever the
        ResponseForm says, so the answer is the status document with its location."""
        procs = self.workflow_processes()
        r = procs.get(pid)
        inputs = root.findall(f"{W('DataInputs')}/{W('Input')}")
        given = zip(flows.identifiers(inputs), inputs, strict=True)
        body = flows.start_body(r, given, W("Reference"))
        rf = root.find(W("ResponseForm"))
        if rf is not None and rf.find(W("RawDataOutput")) is not None:
            raise InvalidTaskRequest("RawDataOutput", "a workflow's outputs are given by reference")
        doc = rf.find(W("ResponseDocument")) if rf is not None else None
        if doc is not None and _flag(doc, "lineage"):
            raise InvalidTaskRequest("lineage", "lineage is not offered")
        outs = doc.findall(W("Output")) if doc is not None else []
        asked = zip(flows.identifiers(outs), outs, strict=True)
        flows.check_outputs(
            r, [(n, _flag(el, "asReference") or el.get("asReference") is None) for n, el in asked]
        )
        view = procs.start(ident, owner_of(ident, procs.wf.policy), pid, body)
        return XmlReply(200, serialise(self.workflow_response(environ, view)))

    def status(self, environ: dict[str, Any], jid: str) -> XmlReply:
        ident = self.caller(environ)
        try:
            view = self.job_of(ident, "status", jid)
        except NoSuchJob as err:
            wview = self.workflow_job(ident, "status", jid, err)
            return XmlReply(200, serialise(self.workflow_response(environ, wview)))
        return XmlReply(200, serialise(self.response(environ, view)))

    def workflow_response(self, environ: dict[str, Any], view: WorkflowView) -> etree._Element:
        """The ExecuteResponse of a workflow job as it is now."""
        procs = self.workflow_processes()
        r = procs.registered.get(view.name)
        root = self._head(environ, view.id, PREFIX + view.name, view.name)
        status = workflow_status(view.state)
        flows.status1(root, status, view.state_reason, str(view.state))
        if status == JobStatus.SUCCESSFUL:
            flows.outputs1(root, r, procs.results(view))
        return root

    def _head(self, environ: dict[str, Any], jid: str, pid: str, title: str) -> etree._Element:
        base = base_url(environ)
        root = _root("ExecuteResponse")
        root.set("serviceInstance", f"{base}/wps?service=WPS&request=GetCapabilities")
        root.set("statusLocation", f"{base}{STATUS_PATH}{jid}")
        proc = sub(root, W("Process"), **{W("processVersion"): "1.0.0"})
        sub(proc, O("Identifier"), pid)
        sub(proc, O("Title"), title)
        return root

    def response(self, environ: dict[str, Any], view: TaskView) -> etree._Element:
        """The ExecuteResponse of a job as it is now."""
        base = base_url(environ)
        c = connector(view.tool)
        root = self._head(environ, view.id, c.name, c.name)
        status = job_status(view.state)
        flows.status1(root, status, view.state_reason, str(view.state))
        if status == JobStatus.SUCCESSFUL:
            self._outputs(root, view, c, self.options.get(view.id), base)
        return root

    def _outputs(
        self, root: etree._Element, view: TaskView, c: Connector, options: dict[str, Any], base: str
    ) -> None:
        media = jobs.media_types(c)
        modes: dict[str, str] = options.get("modes") or {}
        wanted = set(options.get("outputs") or [])
        outs = [o for o in self.outputs(view) if not wanted or o.port in wanted]
        doc = jobs.results(view.id, outs, media, self.ogc.max_inline_output_bytes, base, modes)
        outputs = sub(root, W("ProcessOutputs"))
        for port, item in doc.items():
            el = sub(outputs, W("Output"))
            sub(el, O("Identifier"), port)
            sub(el, O("Title"), port)
            if "value" in item:
                data = sub(el, W("Data"))
                sub(
                    data,
                    W("ComplexData"),
                    item["value"],
                    mimeType=item["mediaType"],
                    encoding="base64",
                )
            else:
                sub(el, W("Reference"), href=item["href"], mimeType=item["type"])


def _description(root: etree._Element, c: Connector) -> None:
    d = c.describe()
    desc = sub(
        root,
        "ProcessDescription",  # unqualified, as the schema declares it
        storeSupported="true",
        statusSupported="true",
        **{W("processVersion"): "1.0.0"},
    )
    sub(desc, O("Identifier"), c.name)
    sub(desc, O("Title"), c.name)
    sub(desc, O("Abstract"), c.description)
    inputs = sub(desc, "DataInputs")
    for port in d["inputs"]:
        multiple = port.get("multiple", False)
        el = sub(
            inputs,
            "Input",
            minOccurs=str(port.get("min_count", 1)),
            maxOccurs=str(port.get("max_count", 1) if multiple else 1),
        )
        _titles(el, port)
        _formats(sub(el, "ComplexData"), RASTER_MIME)
    for p in d["params"]:
        el = sub(inputs, "Input", minOccurs="1" if p["required"] else "0", maxOccurs="1")
        _titles(el, p)
        if p["type"] == "bbox":
            bb = sub(el, "BoundingBoxData")
            sub(sub(bb, "Default"), "CRS", "EPSG:4326")
            sub(sub(bb, "Supported"), "CRS", "EPSG:4326")
            continue
        lit = sub(el, "LiteralData")
        name, ref = data_type(p["type"])
        sub(lit, O("DataType"), name, **{O("reference"): ref})
        allowed_values(lit, OWS11, p)
        default = default_text(p)
        if default is not None:
            sub(lit, "DefaultValue", default)
    outputs = sub(desc, "ProcessOutputs")
    for o in d["outputs"]:
        el = sub(outputs, "Output")
        _titles(el, o)
        _formats(sub(el, "ComplexOutput"), o["media_type"])


def _titles(el: etree._Element, item: dict[str, Any]) -> None:
    sub(el, O("Identifier"), item["name"])
    sub(el, O("Title"), item["name"])
    sub(el, O("Abstract"), item["description"])


def _formats(el: etree._Element, mime: str) -> None:
    for wrapper in ("Default", "Supported"):
        fmt = sub(sub(el, wrapper), "Format")
        sub(fmt, "MimeType", mime)
        sub(fmt, "Encoding", "base64")


# ---- execute documents ------------------------------------------------------------------
def parse_inputs(c: Connector, root: etree._Element) -> jobs.Execute:
    """The task spec of a WPS 1.0.0 Execute's ``DataInputs``."""
    d = c.describe()
    ports = {p["name"] for p in d["inputs"]}
    params = {p["name"] for p in d["params"]}
    spec = jobs.Execute(tool=c.name)
    for el in root.findall(f"{W('DataInputs')}/{W('Input')}"):
        name = text_of(el.find(O("Identifier")))
        if name in ports:
            spec.inputs.append(_complex(name, el))
        elif name in params:
            spec.params.append(jobs.WireParam(name, _literal(name, el)))
        else:
            raise NoSuchInput(f"{c.name} has no input {name[:80]!r}", field=name[:80] or "Input")
    given = {i.name for i in spec.inputs} | {p.name for p in spec.params}
    for port in d["inputs"]:
        if port.get("min_count", 1) > 0 and port["name"] not in given:
            raise MissingParameter(f"input {port['name']!r} is required", field=port["name"])
    for p in d["params"]:
        if p["required"] and p["name"] not in given:
            raise MissingParameter(f"input {p['name']!r} is required", field=p["name"])
    return spec


def parse_form(c: Connector, root: etree._Element, spec: jobs.Execute) -> dict[str, Any]:
    """The ``ResponseForm``: whether to store (async), which outputs, how, or raw."""
    outputs = {o["name"] for o in c.describe()["outputs"]}
    form: dict[str, Any] = {"store": False, "outputs": [], "raw": None}
    rf = root.find(W("ResponseForm"))
    if rf is None:
        return form
    raw = rf.find(W("RawDataOutput"))
    doc = rf.find(W("ResponseDocument"))
    if raw is not None:
        name = text_of(raw.find(O("Identifier")))
        if name not in outputs:
            raise NoSuchOutput(f"{c.name} has no output {name[:80]!r}", field=name[:80] or "Output")
        form["raw"] = name
        return form
    if doc is None:
        return form
    store, status = _flag(doc, "storeExecuteResponse"), _flag(doc, "status")
    if status and not store:
        raise InvalidTaskRequest("status", 'status="true" needs storeExecuteResponse="true"')
    if _flag(doc, "lineage"):
        raise InvalidTaskRequest("lineage", "lineage is not offered")
    form["store"] = store
    for el in doc.findall(W("Output")):
        name = text_of(el.find(O("Identifier")))
        if name not in outputs:
            raise NoSuchOutput(f"{c.name} has no output {name[:80]!r}", field=name[:80] or "Output")
        form["outputs"].append(name)
        if el.get("asReference") is not None:
            spec.modes[name] = "reference" if _flag(el, "asReference") else "value"
    return form


def _complex(name: str, el: etree._Element) -> jobs.WireInput:
    ref = el.find(W("Reference"))
    if ref is not None:
        href = ref.get(q(XLINK, "href")) or ref.get("href")
        if not href:
            raise MissingParameter("wps:Reference needs xlink:href", field=name)
        return jobs.WireInput(name, location=href)
    data = el.find(f"{W('Data')}/{W('ComplexData')}")
    if data is None:
        raise MissingParameter("give wps:Data/wps:ComplexData or wps:Reference", field=name)
    if data.get("encoding") != "base64":
        raise InvalidTaskRequest(name, 'raster data by value is base64 (encoding="base64")')
    try:
        content = base64.b64decode(text_of(data), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidTaskRequest(name, "the data is not valid base64") from None
    return jobs.WireInput(name, content=[content])


def _literal(name: str, el: etree._Element) -> str:
    data = el.find(W("Data"))
    if data is None:
        raise InvalidTaskRequest(name, "a literal input is given by value (wps:Data)")
    box = bbox_text(data, OWS11)
    if box is not None:
        return box
    text = text_of(data.find(W("LiteralData")))
    if not text:
        raise MissingParameter(f"input {name!r} has no value", field=name)
    return text
