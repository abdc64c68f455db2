"""Registered workflows (``workflow.<name>``) on WPS 2.0 and WPS 1.0.0.

The same processes as on OGC API - Processes (:mod:`gproc.services.ogc.workflows`):
a job is a gproc workflow, registered and submitted with the workflow service's
policy checks, seen and controlled from every front. A DAG takes minutes, so these
processes are asynchronous only (``jobControlOptions="async-execute dismiss"``;
WPS 1.0.0 answers every Execute with the status document and its
``statusLocation``). Start data are references only (gateway locations,
``dataset:<id>`` or ``gql:<query>``), one ``Input`` element per reference; the
final outputs are references to the owner's gateway area.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from gproc.domain import InvalidTaskRequest
from gproc.services.ogc.tables import FINISHED, WPS1_STATUS, WPS2_STATUS, JobStatus
from gproc.services.ogc.workflows import MAX_REFERENCES, PREFIX, NoSuchInput, Registered
from gproc.services.ogc.wps_common import (
    OWS11,
    OWS20,
    RASTER_MIME,
    WPS10,
    WPS20,
    XLINK,
    MissingParameter,
    NoSuchOutput,
    q,
    sub,
    text_of,
)

JOB_CONTROL = "async-execute dismiss"
NEXT_POLL_S = 2
OFFERED2 = {
    "jobControlOptions": JOB_CONTROL,
    "outputTransmission": "reference",
    "processVersion": "1.0.0",
}


def is_workflow(pid: str) -> bool:
    return pid.startswith(PREFIX)


def start_body(
    r: Registered, given: Iterable[tuple[str, etree._Element]], reference_tag: str
) -> dict[str, Any]:
    """The ``{"inputs": {port: [href, ...]}}`` of an Execute's ``(id, Input)`` pairs;
    each Input holds one reference. Unknown, missing and by-value inputs are refused
    here, with the WPS codes; the references themselves are checked by the workflow
    service as on the other fronts."""
    refs: dict[str, list[str]] = {}
    for name, el in given:
        if name not in r.inputs:
            raise NoSuchInput(f"{r.pid} has no input {name[:80]!r}", field=name[:80] or "id")
        ref = el.find(reference_tag)
        if ref is None:
            raise InvalidTaskRequest(name, "a workflow's start data are references")
        href = ref.get(q(XLINK, "href")) or ref.get("href")
        if not href:
            raise MissingParameter("the Reference needs xlink:href", field=name)
        refs.setdefault(name, []).append(href)
    for name in r.inputs:
        if name not in refs:
            raise MissingParameter(f"input {name!r} is required", field=name)
    return {"inputs": refs}


def check_outputs(r: Registered, asked: Iterable[tuple[str, bool]]) -> None:
    """Outputs named in an Execute: each a final output, each asked by reference."""
    for name, by_reference in asked:
        if name not in r.outputs:
            raise NoSuchOutput(f"{r.pid} has no output {name[:80]!r}", field=name[:80] or "id")
        if not by_reference:
            raise InvalidTaskRequest(name, "a workflow's outputs are given by reference")


def _hrefs(results: dict[str, Any]) -> list[tuple[str, str]]:
    """``(output, href)`` pairs of the workflow results document (lists flattened)."""
    out: list[tuple[str, str]] = []
    for key, item in results.items():
        for one in item if isinstance(item, list) else [item]:
            out.append((key, one["href"]))
    return out


def mime(r: Registered | None, key: str) -> str:
    """The WPS ``mimeType`` of a final output (media type without its parameters)."""
    media = r.media.get(key, RASTER_MIME) if r is not None else RASTER_MIME
    return media.split(";")[0].strip()


def now_text(after_s: float = 0) -> str:
    when = datetime.now(UTC) + timedelta(seconds=after_s)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- WPS 2.0 -------------------------------------------------------------------------
def summary2(contents: etree._Element, r: Registered) -> None:
    summary = sub(
        contents,
        q(WPS20, "ProcessSummary"),
        **OFFERED2,
    )
    _brief2(summary, r)


def _brief2(el: etree._Element, r: Registered) -> None:
    sub(el, q(OWS20, "Title"), r.name)
    sub(el, q(OWS20, "Abstract"), r.abstract)
    sub(el, q(OWS20, "Identifier"), r.pid)


def offering2(root: etree._Element, r: Registered) -> None:
    offering = sub(
        root,
        q(WPS20, "ProcessOffering"),
        **OFFERED2,
    )
    proc = sub(offering, q(WPS20, "Process"))
    _brief2(proc, r)
    for name in r.inputs:
        el = sub(proc, q(WPS20, "Input"), minOccurs="1", maxOccurs=str(MAX_REFERENCES))
        _titles2(el, name, "start data: gateway path, dataset:<id> or gql:<query>")
        sub(
            sub(el, q(WPS20, "ComplexData")),
            q(WPS20, "Format"),
            mimeType=RASTER_MIME,
            default="true",
        )
    for name in r.outputs:
        el = sub(proc, q(WPS20, "Output"))
        _titles2(el, name, "a final output, in the owner's gateway area")
        cd = sub(el, q(WPS20, "ComplexData"))
        sub(cd, q(WPS20, "Format"), mimeType=mime(r, name), default="true")


def _titles2(el: etree._Element, name: str, abstract: str) -> None:
    sub(el, q(OWS20, "Title"), name)
    sub(el, q(OWS20, "Abstract"), abstract)
    sub(el, q(OWS20, "Identifier"), name)


def status2(jid: str, status: JobStatus, nsmap: dict[str, str]) -> etree._Element:
    """``wps:StatusInfo``: JobID, Status, NextPoll while unfinished, PercentCompleted."""
    root = etree.Element(q(WPS20, "StatusInfo"), nsmap=nsmap)
    sub(root, q(WPS20, "JobID"), jid)
    sub(root, q(WPS20, "Status"), WPS2_STATUS[status])
    if status not in FINISHED:
        sub(root, q(WPS20, "NextPoll"), now_text(NEXT_POLL_S))
    sub(root, q(WPS20, "PercentCompleted"), "100" if status in FINISHED else "0")
    return root


def result2(
    jid: str, r: Registered | None, results: dict[str, Any], nsmap: dict[str, str]
) -> etree._Element:
    """``wps:Result`` of a finished workflow: one Output per reference."""
    root = etree.Element(q(WPS20, "Result"), nsmap=nsmap)
    sub(root, q(WPS20, "JobID"), jid)
    for key, href in _hrefs(results):
        out = sub(root, q(WPS20, "Output"), id=key)
        sub(out, q(WPS20, "Reference"), **{q(XLINK, "href"): href, "mimeType": mime(r, key)})
    return root


# ---- WPS 1.0.0 ---------------------------------------------------------------------------
def process1(offerings: etree._Element, r: Registered) -> None:
    proc = sub(offerings, q(WPS10, "Process"), **{q(WPS10, "processVersion"): "1.0.0"})
    _brief1(proc, r)


def _brief1(el: etree._Element, r: Registered) -> None:
    sub(el, q(OWS11, "Identifier"), r.pid)
    sub(el, q(OWS11, "Title"), r.name)
    sub(el, q(OWS11, "Abstract"), r.abstract)


def description1(root: etree._Element, r: Registered) -> None:
    """A ``ProcessDescription``: stored (asynchronous) executions only."""
    desc = sub(
        root,
        "ProcessDescription",  # unqualified, as the schema declares it
        storeSupported="true",
        statusSupported="true",
        **{q(WPS10, "processVersion"): "1.0.0"},
    )
    _brief1(desc, r)
    inputs = sub(desc, "DataInputs")
    for name in r.inputs:
        el = sub(inputs, "Input", minOccurs="1", maxOccurs=str(MAX_REFERENCES))
        _titles1(el, name, "start data: gateway path, dataset:<id> or gql:<query>")
        _formats1(sub(el, "ComplexData"), RASTER_MIME)
    outputs = sub(desc, "ProcessOutputs")
    for name in r.outputs:
        el = sub(outputs, "Output")
        _titles1(el, name, "a final output, in the owner's gateway area")
        _formats1(sub(el, "ComplexOutput"), mime(r, name))


def _titles1(el: etree._Element, name: str, abstract: str) -> None:
    sub(el, q(OWS11, "Identifier"), name)
    sub(el, q(OWS11, "Title"), name)
    sub(el, q(OWS11, "Abstract"), abstract)


def _formats1(el: etree._Element, mime: str) -> None:
    for wrapper in ("Default", "Supported"):
        sub(sub(sub(el, wrapper), "Format"), "MimeType", mime)


def outputs1(root: etree._Element, r: Registered | None, results: dict[str, Any]) -> None:
    """``wps:ProcessOutputs`` of a finished workflow: one Output per reference."""
    outputs = sub(root, q(WPS10, "ProcessOutputs"))
    for key, href in _hrefs(results):
        el = sub(outputs, q(WPS10, "Output"))
        sub(el, q(OWS11, "Identifier"), key)
        sub(el, q(OWS11, "Title"), key)
        sub(el, q(WPS10, "Reference"), href=href, mimeType=mime(r, key))


def status1(root: etree._Element, status: JobStatus, reason: str | None, state: str) -> None:
    """``wps:Status`` of an ExecuteResponse (a dismissed job is a failure saying so)."""
    st = sub(root, q(WPS10, "Status"), creationTime=now_text())
    tag = q(WPS10, WPS1_STATUS[status])
    if status in (JobStatus.FAILED, JobStatus.DISMISSED):
        report = sub(sub(st, tag), q(OWS11, "ExceptionReport"), version="1.0.0")
        one = sub(report, q(OWS11, "Exception"), exceptionCode="NoApplicableCode")
        why = "the job was dismissed" if status == JobStatus.DISMISSED else "the job failed"
        sub(one, q(OWS11, "ExceptionText"), reason or why)
    elif status == JobStatus.RUNNING:
        sub(st, tag, state, percentCompleted="0")
    else:
        sub(st, tag, reason or state)


def identifiers(els: Iterable[etree._Element]) -> list[str]:
    return [text_of(el.find(q(OWS11, "Identifier"))) for el in els]
