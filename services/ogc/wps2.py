"""WPS 2.0 on ``/wps``: GetCapabilities, DescribeProcess, Execute (sync and async),
GetStatus, GetResult, Dismiss; KVP (GET) and XML (POST) for every operation but
Execute, which is POST XML only.

A job is a gproc task (:class:`~gproc.services.ogc.front.JobFront`): inputs by value
(``wps:Data``, base64 for rasters) or by reference (``wps:Reference xlink:href`` to a
gateway location, ``dataset:...`` catalogue dataset, or allowed ``file://`` URL);
outputs by value (base64, under ``max_inline_output_bytes``) or by reference to the
JSON front's ``/jobs/{id}/results/{output}``; ``response="raw"`` gives the single
output's bytes. ``mode="auto"`` runs as async. A synchronous Execute that has not
finished within ``sync_wait_s`` answers with its StatusInfo so the client can poll.
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
from gproc.services.ogc.describe import JOB_CONTROL
from gproc.services.ogc.front import JobFront, NoSuchJob, connector
from gproc.services.ogc.tables import JobStatus, job_status, workflow_status
from gproc.services.ogc.wps_common import (
    OWS20,
    RASTER_MIME,
    WPS20,
    XLINK,
    Kvp,
    MissingParameter,
    NoSuchInput,
    NoSuchMode,
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

VERSION = "2.0.0"
NSMAP = {"wps": WPS20, "ows": OWS20, "xlink": XLINK}
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")


def W(name: str) -> str:  # noqa: N802 - reads like the prefix it stands for
    return q(WPS20, name)


def O(name: str) -> str:  # noqa: N802,E743
    return q(OWS20, name)


class Wps2(JobFront):
    """The WPS 2.0 operations; ``get`` for KVP, ``post`` for XML requests."""

    def get(self, environ: dict[str, Any], kvp: Kvp, request: str) -> XmlReply:
        ident = self.caller(environ)
        if request == "GetCapabilities":
            return self.capabilities(environ)
        if request == "DescribeProcess":
            return self.describe(environ, kvp.require("identifier").split(","))
        if request in ("GetStatus", "GetResult", "Dismiss"):
            return self.job_operation(environ, ident, request, kvp.require("jobId"))
        if request == "Execute":
            raise OperationNotSupported(
                "WPS 2.0 Execute is an XML document sent with POST", field="request"
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
            raise InvalidTaskRequest("version", f"this endpoint's WPS 2.0 version is {VERSION}")
        if name == "DescribeProcess":
            ids = [text_of(el) for el in root.iter(O("Identifier"))]
            if not ids:
                raise MissingParameter("ows:Identifier is required", field="Identifier")
            return self.describe(environ, ids)
        if name == "Execute":
            return self.execute(environ, ident, root)
        job = root.find(W("JobID"))
        if job is None or not text_of(job):
            raise MissingParameter("wps:JobID is required", field="JobID")
        return self.job_operation(environ, ident, name, text_of(job))

    # ---- service and process descriptions ---------------------------------------------
    def capabilities(self, environ: dict[str, Any]) -> XmlReply:
        url = base_url(environ) + "/wps"
        root = etree.Element(W("Capabilities"), nsmap=NSMAP, service="WPS", version=VERSION)
        ident = sub(root, O("ServiceIdentification"))
        sub(ident, O("Title"), "gproc processing")
        sub(ident, O("Abstract"), "Earth-observation processing on the grid (WPS 2.0)")
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
        contents = sub(root, W("Contents"))
        for c in connectors.list_connectors():
            summary = sub(
                contents,
                W("ProcessSummary"),
                jobControlOptions=" ".join(JOB_CONTROL),
                outputTransmission="value reference",
                processVersion="1.0.0",
            )
            sub(summary, O("Title"), c.name)
            sub(summary, O("Abstract"), c.description)
            sub(summary, O("Identifier"), c.name)
        for r in self.workflows.registered.values() if self.workflows else ():
            flows.summary2(contents, r)
        return XmlReply(200, serialise(root))

    def describe(self, environ: dict[str, Any], ids: list[str]) -> XmlReply:
        everything = [i.lower() for i in ids] == ["all"]
        root = etree.Element(W("ProcessOfferings"), nsmap=NSMAP)
        for pid in [c.name for c in connectors.list_connectors()] if everything else ids:
            if flows.is_workflow(pid.strip()):
                r = self.workflow_processes().get(pid.strip())
                flows.offering2(root, r)
                continue
            c = connector(pid.strip())
            offering = sub(
                root,
                W("ProcessOffering"),
                jobControlOptions=" ".join(JOB_CONTROL),
                outputTransmission="value reference",
                processVersion="1.0.0",
            )
            _process(sub(offering, W("Process")), c)
        if everything and self.workflows is not None:
            for r in self.workflows.registered.values():
                flows.offering2(root, r)
        return XmlReply(200, serialise(root))

    # ---- execute -------------------------------------------------------------------------
    def execute(self, environ: dict[str, Any], ident: Identity, root: etree._Element) -> XmlReply:
        mode = root.get("mode", "auto")
        if mode not in ("sync", "async", "auto"):
            raise NoSuchMode(f"mode is sync, async or auto, not {mode[:40]!r}", field="mode")
        response = root.get("response", "document")
        if response not in ("document", "raw"):
            raise InvalidTaskRequest("response", "response is document or raw")
        ident_el = root.find(O("Identifier"))
        if ident_el is None or not text_of(ident_el):
            raise MissingParameter("ows:Identifier is required", field="Identifier")
        if flows.is_workflow(text_of(ident_el)):
            return self.execute_workflow(ident, text_of(ident_el), root, mode, response)
        c = connector(text_of(ident_el))
        spec, raw = parse_execute(c, root, response == "raw")
        view = self.start(ident, spec, {"modes": spec.modes, "raw": raw})
        base = base_url(environ)
        if mode != "sync":
            return XmlReply(200, serialise(status_info(view)))
        view = self.wait(view)
        if job_status(view.state) in (JobStatus.ACCEPTED, JobStatus.RUNNING):
            return XmlReply(200, serialise(status_info(view)))  # not done in time: poll it
        return self.result(self.finished(ident, view.id), base)

    def execute_workflow(
        self, ident: Identity, pid: str, root: etree._Element, mode: str, response: str
    ) -> XmlReply:
        """A registered workflow's job: asynchronous only, outputs by reference."""
        procs = self.workflow_processes()
        r = procs.get(pid)
        if mode == "sync":
            raise NoSuchMode(f"{pid} is executed asynchronously (mode async or auto)", field="mode")
        if response == "raw":
            raise InvalidTaskRequest("response", "a workflow's outputs are given by reference")
        given = [(el.get("id") or "", el) for el in root.findall(W("Input"))]
        body = flows.start_body(r, given, W("Reference"))
        asked = [
            (el.get("id") or "", el.get("transmission", "reference") == "reference")
            for el in root.findall(W("Output"))
        ]
        flows.check_outputs(r, asked)
        view = procs.start(ident, owner_of(ident, procs.wf.policy), pid, body)
        return XmlReply(200, serialise(_status(view.id, workflow_status(view.state))))

    # ---- job control -------------------------------------------------------------------
    def job_operation(
        self, environ: dict[str, Any], ident: Identity, name: str, jid: str
    ) -> XmlReply:
        try:
            return self._task_operation(environ, ident, name, jid)
        except NoSuchJob as err:
            operation = {"GetStatus": "status", "GetResult": "retrieve"}.get(name, "cancel")
            view = self.workflow_job(ident, operation, jid, err)
        procs = self.workflow_processes()
        if name == "GetStatus":
            return XmlReply(200, serialise(_status(view.id, workflow_status(view.state))))
        if name == "GetResult":
            r = procs.registered.get(view.name)
            return XmlReply(200, serialise(flows.result2(view.id, r, procs.results(view), NSMAP)))
        view = procs.dismiss(ident, view)
        return XmlReply(200, serialise(_status(view.id, workflow_status(view.state))))

    def _task_operation(
        self, environ: dict[str, Any], ident: Identity, name: str, jid: str
    ) -> XmlReply:
        if name == "GetStatus":
            return XmlReply(200, serialise(status_info(self.job_of(ident, "status", jid))))
        if name == "GetResult":
            return self.result(self.finished(ident, jid), base_url(environ))
        view = self.dismiss(ident, jid, "WPS 2.0")
        return XmlReply(200, serialise(status_info(view)))

    def result(self, view: TaskView, base: str) -> XmlReply:
        options = self.options.get(view.id)
        media = jobs.media_types(connector(view.tool))
        outs = self.outputs(view)
        raw = options.get("raw")
        if raw:
            found = [o for o in outs if o.port == raw]
            if not found:
                raise NoSuchOutput(f"job {view.id} has no output {raw!r}", field=raw)
            with open(found[0].path, "rb") as fh:
                return XmlReply(200, fh.read(), content_type=media.get(raw, RASTER_MIME))
        modes = options.get("modes") or {}
        doc = jobs.results(view.id, outs, media, self.ogc.max_inline_output_bytes, base, modes)
        root = etree.Element(W("Result"), nsmap=NSMAP)
        sub(root, W("JobID"), view.id)
        for port, item in doc.items():
            out_el = sub(root, W("Output"), id=port)
            if "value" in item:
                sub(out_el, W("Data"), item["value"], mimeType=item["mediaType"], encoding="base64")
            else:
                sub(
                    out_el,
                    W("Reference"),
                    **{q(XLINK, "href"): item["href"]},
                    mimeType=item["type"],
                )
        return XmlReply(200, serialise(root))


def status_info(view: TaskView) -> etree._Element:
    """``wps:StatusInfo`` of a task's job."""
    return _status(view.id, job_status(view.state))


def _status(jid: str, status: JobStatus) -> etree._Element:
    return flows.status2(jid, status, NSMAP)


def _process(proc: etree._Element, c: Connector) -> None:
    d = c.describe()
    sub(proc, O("Title"), c.name)
    sub(proc, O("Abstract"), c.description)
    sub(proc, O("Identifier"), c.name)
    for port in d["inputs"]:
        multiple = port.get("multiple", False)
        el = sub(
            proc,
            W("Input"),
            minOccurs=str(port.get("min_count", 1)),
            maxOccurs=str(port.get("max_count", 1) if multiple else 1),
        )
        _titles(el, port)
        cd = sub(el, W("ComplexData"))
        sub(cd, W("Format"), mimeType=RASTER_MIME, encoding="base64", default="true")
    for p in d["params"]:
        el = sub(proc, W("Input"), minOccurs="1" if p["required"] else "0", maxOccurs="1")
        _titles(el, p)
        if p["type"] == "bbox":
            bb = sub(el, W("BoundingBoxData"))
            sub(bb, W("Format"), mimeType="text/plain", default="true")
            sub(bb, W("SupportedCRS"), "EPSG:4326", default="true")
            continue
        lit = sub(el, W("LiteralData"))
        sub(lit, W("Format"), mimeType="text/plain", default="true")
        domain = sub(lit, "LiteralDataDomain", default="true")  # unqualified in the schema
        allowed_values(domain, OWS20, p)
        name, ref = data_type(p["type"])
        sub(domain, O("DataType"), name, **{O("reference"): ref})
        default = default_text(p)
        if default is not None:
            sub(domain, O("DefaultValue"), default)
    for o in d["outputs"]:
        el = sub(proc, W("Output"))
        _titles(el, o)
        cd = sub(el, W("ComplexData"))
        mime = o["media_type"]
        sub(cd, W("Format"), mimeType=mime, encoding="base64", default="true")


def _titles(el: etree._Element, item: dict[str, Any]) -> None:
    sub(el, O("Title"), item["name"])
    sub(el, O("Abstract"), item["description"])
    sub(el, O("Identifier"), item["name"])


# ---- execute documents ------------------------------------------------------------------
def parse_execute(c: Connector, root: etree._Element, raw: bool) -> tuple[jobs.Execute, str | None]:
    """The task spec of a WPS 2.0 Execute, and the output asked raw (if any)."""
    d = c.describe()
    ports = {p["name"] for p in d["inputs"]}
    params = {p["name"]: p for p in d["params"]}
    outputs = {o["name"] for o in d["outputs"]}
    spec = jobs.Execute(tool=c.name)
    for el in root.findall(W("Input")):
        name = el.get("id") or ""
        if name in ports:
            spec.inputs.append(_complex(name, el))
        elif name in params:
            spec.params.append(jobs.WireParam(name, _literal(name, el)))
        else:
            raise NoSuchInput(f"{c.name} has no input {name[:80]!r}", field=name[:80] or "id")
    for el in root.findall(W("Output")):
        name = el.get("id") or ""
        if name not in outputs:
            raise NoSuchOutput(f"{c.name} has no output {name[:80]!r}", field=name[:80] or "id")
        mode = el.get("transmission", "value")
        if mode not in jobs.MODES:
            raise InvalidTaskRequest(name, "transmission is value or reference")
        spec.modes[name] = mode
    _require(d, spec)
    if not raw:
        return spec, None
    wanted = list(spec.modes) or sorted(outputs)
    if len(wanted) != 1:
        raise InvalidTaskRequest("response", "a raw response is for exactly one output")
    return spec, wanted[0]


def _require(d: dict[str, Any], spec: jobs.Execute) -> None:
    given = {i.name for i in spec.inputs} | {p.name for p in spec.params}
    for port in d["inputs"]:
        if port.get("min_count", 1) > 0 and port["name"] not in given:
            raise MissingParameter(f"input {port['name']!r} is required", field=port["name"])
    for p in d["params"]:
        if p["required"] and p["name"] not in given:
            raise MissingParameter(f"input {p['name']!r} is required", field=p["name"])


def _complex(name: str, el: etree._Element) -> jobs.WireInput:
    ref = el.find(W("Reference"))
    if ref is not None:
        href = ref.get(q(XLINK, "href")) or ref.get("href")
        if not href:
            raise MissingParameter("wps:Reference needs xlink:href", field=name)
        return jobs.WireInput(name, location=href)
    data = el.find(W("Data"))
    if data is None:
        raise MissingParameter("give wps:Data or wps:Reference", field=name)
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
    box = bbox_text(data, OWS20)
    if box is not None:
        return box
    value = data.find(W("LiteralValue"))
    text = text_of(value if value is not None else data)
    if not text:
        raise MissingParameter(f"input {name!r} has no value", field=name)
    return text
