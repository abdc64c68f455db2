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
    RASTER_MIME,
    XLINK,
    MissingParameter,
    NoSuchOutput,
    q,
    sub,
    text_of,
)

JOB_CONTROL = "async-execute dismiss"
NEXT_POLL_S = 2


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
def summary2(contents: etree._Element, r: Registered, wps: str, ows: str) -> None:
    summary = sub(
        contents,
        q(wps, "ProcessSummary"),
        jobControlOptions=JOB_CONTROL,
        outputTransmission="reference",
        processVersion="1.0.0",
    )
    _brief2(summary, r, ows)


def _brief2(el: etree._Element, r: Registered, ows: str) -> None:
    sub(el, q(ows, "Title"), r.name)
    sub(el, q(ows, "Abstract"), f"registered workflow {r.name} ({', '.join(sorted(r.tools))})")
    sub(el, q(ows, "Identifier"), r.pid)


def offering2(root: etree._Element, r: Registered, wps: str, ows: str) -> None:
    offering = sub(
        root,
        q(wps, "ProcessOffering"),
        jobControlOptions=JOB_CONTROL,
        outputTransmission="reference",
        processVersion="1.0.0",
    )
    proc = sub(offering, q(wps, "Process"))
    _brief2(proc, r, ows)
    for name in r.inputs:
        el = sub(proc, q(wps, "Input"), minOccurs="1", maxOccurs=str(MAX_REFERENCES))
        _titles2(el, name, "start data: gateway path, dataset:<id> or gql:<query>", ows)
        sub(sub(el, q(wps, "ComplexData")), q(wps, "Format"), mimeType=RASTER_MIME, default="true")
    for name in r.outputs:
        el = sub(proc, q(wps, "Output"))
        _titles2(el, name, "a final output, in the owner's gateway area", ows)
        cd = sub(el, q(wps, "ComplexData"))
        sub(cd, q(wps, "Format"), mimeType=mime(r, name), default="true")


def _titles2(el: etree._Element, name: str, abstract: str, ows: str) -> None:
    sub(el, q(ows, "Title"), name)
    sub(el, q(ows, "Abstract"), abstract)
    sub(el, q(ows, "Identifier"), name)


def status2(jid: str, status: JobStatus, wps: str, nsmap: dict[str, str]) -> etree._Element:
    """``wps:StatusInfo``: JobID, Status, NextPoll while unfinished, PercentCompleted."""
    root = etree.Element(q(wps, "StatusInfo"), nsmap=nsmap)
    sub(root, q(wps, "JobID"), jid)
    sub(root, q(wps, "Status"), WPS2_STATUS[status])
    if status not in FINISHED:
        sub(root, q(wps, "NextPoll"), now_text(NEXT_POLL_S))
    sub(root, q(wps, "PercentCompleted"), "100" if status in FINISHED else "0")
    return root


def result2(
    jid: str, r: Registered | None, results: dict[str, Any], wps: str, nsmap: dict[str, str]
) -> etree._Element:
    """``wps:Result`` of a finished workflow: one Output per reference."""
    root = etree.Element(q(wps, "Result"), nsmap=nsmap)
    sub(root, q(wps, "JobID"), jid)
    for key, href in _hrefs(results):
        out = sub(root, q(wps, "Output"), id=key)
        sub(out, q(wps, "Reference"), **{q(XLINK, "href"): href, "mimeType": mime(r, key)})
    return root


# ---- WPS 1.0.0 ---------------------------------------------------------------------------
def process1(offerings: etree._Element, r: Registered, wps: str, ows: str) -> None:
    proc = sub(offerings, q(wps, "Process"), **{q(wps, "processVersion"): "1.0.0"})
    _brief1(proc, r, ows)


def _brief1(el: etree._Element, r: Registered, ows: str) -> None:
    sub(el, q(ows, "Identifier"), r.pid)
    sub(el, q(ows, "Title"), r.name)
    sub(el, q(ows, "Abstract"), f"registered workflow {r.name} ({', '.join(sorted(r.tools))})")


def description1(root: etree._Element, r: Registered, wps: str, ows: str) -> None:
    """A ``ProcessDescription``: stored (asynchronous) executions only."""
    desc = sub(
        root,
        "ProcessDescription",  # unqualified, as the schema declares it
        storeSupported="true",
        statusSupported="true",
        **{q(wps, "processVersion"): "1.0.0"},
    )
    _brief1(desc, r, ows)
    inputs = sub(desc, "DataInputs")
    for name in r.inputs:
        el = sub(inputs, "Input", minOccurs="1", maxOccurs=str(MAX_REFERENCES))
        _titles1(el, name, "start data: gateway path, dataset:<id> or gql:<query>", ows)
        _formats1(sub(el, "ComplexData"), RASTER_MIME)
    outputs = sub(desc, "ProcessOutputs")
    for name in r.outputs:
        el = sub(outputs, "Output")
        _titles1(el, name, "a final output, in the owner's gateway area", ows)
        _formats1(sub(el, "ComplexOutput"), mime(r, name))


def _titles1(el: etree._Element, name: str, abstract: str, ows: str) -> None:
    sub(el, q(ows, "Identifier"), name)
    sub(el, q(ows, "Title"), name)
    sub(el, q(ows, "Abstract"), abstract)


def _formats1(el: etree._Element, mime: str) -> None:
    for wrapper in ("Default", "Supported"):
        sub(sub(sub(el, wrapper), "Format"), "MimeType", mime)


def outputs1(
    root: etree._Element, r: Registered | None, results: dict[str, Any], wps: str, ows: str
) -> None:
    """``wps:ProcessOutputs`` of a finished workflow: one Output per reference."""
    outputs = sub(root, q(wps, "ProcessOutputs"))
    for key, href in _hrefs(results):
        el = sub(outputs, q(wps, "Output"))
        sub(el, q(ows, "Identifier"), key)
        sub(el, q(ows, "Title"), key)
        sub(el, q(wps, "Reference"), href=href, mimeType=mime(r, key))


def status1(
    root: etree._Element, status: JobStatus, reason: str | None, state: str, wps: str, ows: str
) -> None:
    """``wps:Status`` of an ExecuteResponse (a dismissed job is a failure saying so)."""
    st = sub(root, q(wps, "Status"), creationTime=now_text())
    tag = q(wps, WPS1_STATUS[status])
    if status in (JobStatus.FAILED, JobStatus.DISMISSED):
        report = sub(sub(st, tag), q(ows, "ExceptionReport"), version="1.0.0")
        one = sub(report, q(ows, "Exception"), exceptionCode="NoApplicableCode")
        why = "the job was dismissed" if status == JobStatus.DISMISSED else "the job failed"
        sub(one, q(ows, "ExceptionText"), reason or why)
    elif status == JobStatus.RUNNING:
        sub(st, tag, state, percentCompleted="0")
    else:
        sub(st, tag, reason or state)


def identifiers(els: Iterable[etree._Element], ows: str) -> list[str]:
    return [text_of(el.find(q(ows, "Identifier"))) for el in els]
