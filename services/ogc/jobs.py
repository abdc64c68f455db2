"""OGC API - Processes execute requests and job documents <-> gproc tasks.

An execute request becomes the same wire-shaped task spec the SOAP service
converts (``services.soap.convert.task_request``), so inputs are checked by one
set of rules: raster inputs by value (``{"value": <base64>}``) or by reference
(``{"href": "gateway:///area/path"}``, the gateway's https URL, or a ``file://``
URL under a directory the service allows); literal inputs as JSON scalars (a
bounding box as four numbers).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gproc.connectors import Connector
from gproc.domain import InvalidTaskRequest, OutputFile, TaskView
from gproc.services.ogc.describe import RASTER
from gproc.services.ogc.tables import FINISHED, JobStatus, job_status

MODES = ("value", "reference")
REL_STATUS = "http://www.opengis.net/def/rel/ogc/1.0/job-status"
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"


@dataclass
class WireInput:
    """One input as ``convert.task_request`` reads it (content or location)."""

    name: str
    content: list[bytes] | None = None
    location: str | None = None


@dataclass
class WireParam:
    name: str
    value: str


@dataclass
class Execute:
    """A parsed execute request, in the shape of the SOAP ``TaskSpec``."""

    tool: str
    inputs: list[WireInput] = field(default_factory=list)
    params: list[WireParam] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)  # output port -> transmission
    processing: None = None
    argument_list: None = None
    outputs: tuple[()] = ()
    client_request_id: None = None
    delegation_id: None = None


def parse_execute(connector: Connector, body: Any) -> Execute:
    """The execute request for ``connector``, every problem naming its field."""
    if not isinstance(body, dict):
        raise InvalidTaskRequest("body", "an execute request is a JSON object")
    unknown = set(body) - {"inputs", "outputs", "response", "subscriber"}
    if unknown:
        raise InvalidTaskRequest(sorted(unknown)[0], "not a member of an execute request")
    if body.get("response", "document") != "document":
        raise InvalidTaskRequest("response", "only the 'document' response is offered")
    d = connector.describe()
    ports = {p["name"] for p in d["inputs"]}
    params = {p["name"] for p in d["params"]}
    spec = Execute(tool=connector.name)
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise InvalidTaskRequest("inputs", "an object of input id -> value")
    for name, value in inputs.items():
        if name in ports:
            spec.inputs.extend(_complex(name, value))
        elif name in params:
            spec.params.append(WireParam(name, _literal(name, value)))
        else:
            raise InvalidTaskRequest(f"inputs.{name}", f"{connector.name} has no such input")
    spec.modes = _modes(body.get("outputs") or {}, {o["name"] for o in d["outputs"]})
    return spec


def _complex(name: str, value: Any) -> list[WireInput]:
    items = value if isinstance(value, list) else [value]
    return [_one_complex(f"inputs.{name}", name, item) for item in items]


def _one_complex(where: str, name: str, item: Any) -> WireInput:
    if not isinstance(item, dict) or ("href" in item) == ("value" in item):
        raise InvalidTaskRequest(
            where, 'give {"href": location} or {"value": base64, "encoding": "base64"}'
        )
    if "href" in item:
        if not isinstance(item["href"], str):
            raise InvalidTaskRequest(where, "href is a string")
        return WireInput(name, location=item["href"])
    fmt = item.get("format")
    if not isinstance(fmt, dict):
        fmt = {}
    encoding = item.get("encoding", fmt.get("encoding", "base64"))
    if encoding != "base64" or not isinstance(item["value"], str):
        raise InvalidTaskRequest(where, "binary values are base64 strings (encoding base64)")
    try:
        data = base64.b64decode(item["value"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidTaskRequest(where, "value is not valid base64") from exc
    return WireInput(name, content=[data])


def _literal(name: str, value: Any) -> str:
    if isinstance(value, dict):
        if "bbox" in value:
            value = value["bbox"]
        elif "value" in value:
            value = value["value"]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        return ",".join(str(v) for v in value)
    raise InvalidTaskRequest(f"inputs.{name}", "a literal value (number, string, boolean, bbox)")


def _modes(outputs: Any, known: set[str]) -> dict[str, str]:
    if not isinstance(outputs, dict):
        raise InvalidTaskRequest("outputs", "an object of output id -> {transmissionMode}")
    modes: dict[str, str] = {}
    for name, want in outputs.items():
        if name not in known:
            raise InvalidTaskRequest(f"outputs.{name}", "no such output")
        mode = want.get("transmissionMode", "value") if isinstance(want, dict) else None
        if mode not in MODES:
            raise InvalidTaskRequest(f"outputs.{name}", "transmissionMode is value or reference")
        modes[name] = mode
    return modes


# ---- documents ----------------------------------------------------------------
def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def status_info(view: TaskView, base: str) -> dict[str, Any]:
    """The job's statusInfo document."""
    status = job_status(view.state)
    url = f"{base}/jobs/{view.id}"
    links = [
        {"href": url, "rel": "self", "type": "application/json", "title": "status"},
        {"href": url, "rel": REL_STATUS, "type": "application/json", "title": "status"},
    ]
    if status == JobStatus.SUCCESSFUL:
        links.append({"href": f"{url}/results", "rel": REL_RESULTS, "type": "application/json"})
    doc: dict[str, Any] = {
        "jobID": view.id,
        "processID": view.tool,
        "type": "process",
        "status": str(status),
        "message": view.state_reason or str(view.state),
        "created": _time(view.created_at),
        "started": _time(view.started_at),
        "finished": _time(view.finished_at),
        "updated": _time(view.updated_at),
        "progress": 100 if status in FINISHED else 0,
        "links": links,
    }
    return {k: v for k, v in doc.items() if v is not None}


def media_types(connector: Connector) -> dict[str, str]:
    return {
        o["name"]: RASTER if o["media_type"] == "image/tiff" else o["media_type"]
        for o in connector.describe()["outputs"]
    }


def results(
    task_id: str,
    outputs: Sequence[OutputFile],
    media: Mapping[str, str],
    cap: int,
    base: str,
    modes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Output id -> qualified value (base64, under ``cap``) or link (above it, or asked)."""
    doc: dict[str, Any] = {}
    for out in outputs:
        kind = media.get(out.port, "application/octet-stream")
        by_value = (modes or {}).get(out.port, "value") == "value" and out.size <= cap
        if by_value:
            doc[out.port] = {
                "value": base64.b64encode(Path(out.path).read_bytes()).decode(),
                "mediaType": kind,
                "encoding": "base64",
            }
        else:
            doc[out.port] = {
                "href": f"{base}/jobs/{task_id}/results/{out.port}",
                "type": kind,
                "rel": "enclosure",
                "title": out.name,
            }
    return doc
