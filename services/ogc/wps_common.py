"""What WPS 2.0 and WPS 1.0.0 share: namespaces, KVP, guarded XML bodies, OWS
ExceptionReports, literal and bounding-box values, the WSGI handler shell.

Every XML body is read with a size and time bound and parsed by the chassis guard
(:func:`gproc.services.chassis.guard.parse_untrusted`: no DTD, no entities, no
network, bounded depth). Every error becomes an OWS ExceptionReport (OWS 2.0 for
WPS 2.0, OWS 1.1 for WPS 1.0.0) whose ``exceptionCode`` and HTTP status come from
the pure table :data:`gproc.services.ogc.tables.OWS_EXCEPTION`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.util import application_uri

from lxml import etree

from gproc import errors
from gproc.domain import InvalidTaskRequest
from gproc.services.chassis import as_error
from gproc.services.chassis.guard import (
    ENV_FAULT,
    ENV_OPERATION,
    ENV_READ_DEADLINE,
    ENV_REQUEST_ID,
    UntrustedXml,
    parse_untrusted,
)
from gproc.services.ogc.tables import ows_exception

log = logging.getLogger("gproc.ogc")

OWS11 = "http://www.opengis.net/ows/1.1"
OWS20 = "http://www.opengis.net/ows/2.0"
WPS10 = "http://www.opengis.net/wps/1.0.0"
WPS20 = "http://www.opengis.net/wps/2.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XS = "http://www.w3.org/2001/XMLSchema#"
XML_TYPE = "application/xml; charset=utf-8"
BODY_READ_S = 30.0
RASTER_MIME = "image/tiff"
DATA_TYPES = {"int": "integer", "float": "double", "bool": "boolean"}


class MissingParameter(errors.InvalidRequest):
    code = "Client.MissingParameterValue"


class OperationNotSupported(errors.InvalidRequest):
    code = "Client.OperationNotSupported"


class VersionNegotiationFailed(errors.InvalidRequest):
    code = "Client.VersionNegotiationFailed"


class NoSuchMode(errors.InvalidRequest):
    code = "Client.NoSuchMode"


class NoSuchInput(errors.InvalidRequest):
    code = "Client.NoSuchInput"


class NoSuchOutput(errors.InvalidRequest):
    code = "Client.NoSuchOutput"


class MalformedRequest(errors.InvalidRequest):
    code = "Client.MalformedRequest"


def q(ns: str, name: str) -> str:
    """Clark notation ``{ns}name``."""
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> Any:
    el = etree.SubElement(parent, tag, {k: v for k, v in attrib.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass
class XmlReply:
    status: int
    body: bytes
    content_type: str = XML_TYPE
    headers: tuple[tuple[str, str], ...] = ()


# ---- requests ------------------------------------------------------------------
class Kvp:
    """KVP parameters: names without case (OWS), values as given; each once."""

    def __init__(self, query: str) -> None:
        self.values: dict[str, str] = {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=32)
        except ValueError as exc:
            raise errors.LimitExceeded(f"too many query parameters: {exc}") from None
        for key, value in pairs:
            name = key.lower()
            if name in self.values:
                raise errors.InvalidRequest(f"parameter {key} given twice", field=key)
            self.values[name] = value

    def get(self, name: str) -> str | None:
        return self.values.get(name.lower())

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise MissingParameter(f"the {name} parameter is required", field=name)
        return value


def read_xml(environ: dict[str, Any], cap: int, max_depth: int) -> etree._Element:
    """The request body's root element, read and parsed under the guard's bounds."""
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.isdigit():
        raise errors.InvalidRequest("an XML body with a Content-Length is required", field="body")
    length = int(raw)
    stream = environ["wsgi.input"]
    bound = environ.get(ENV_READ_DEADLINE)
    if bound is not None:
        bound(time.monotonic() + BODY_READ_S)
    if length > cap:
        _read(stream, min(length, 2 * cap), keep=False)  # so the client reads the answer
        raise errors.LimitExceeded(f"the body exceeds {cap} bytes", field="body")
    body = _read(stream, length)
    if len(body) != length:
        raise errors.InvalidRequest("the body ended early", field="body")
    try:
        return parse_untrusted(body, max_depth)
    except UntrustedXml as exc:
        if exc.limit:
            raise errors.LimitExceeded(str(exc), field=exc.field or "body") from None
        raise MalformedRequest(str(exc), field="body") from None


def _read(stream: Any, length: int, *, keep: bool = True) -> bytes:
    chunks: list[bytes] = []
    deadline = time.monotonic() + BODY_READ_S
    while length > 0 and time.monotonic() < deadline:
        try:
            chunk = stream.read(min(length, 1 << 20))
        except OSError:
            break
        if not chunk:
            break
        if keep:
            chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def text_of(el: etree._Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def bbox_text(data: etree._Element, ows: str) -> str | None:
    """``minx,miny,maxx,maxy`` of an ``ows:BoundingBox`` (or ``wps:BoundingBoxData``)
    child of ``data``; None when it has none."""
    for box in data:
        if not isinstance(box.tag, str) or etree.QName(box).localname not in (
            "BoundingBox",
            "BoundingBoxData",
        ):
            continue
        lower = box.find(q(ows, "LowerCorner"))
        upper = box.find(q(ows, "UpperCorner"))
        if lower is None or upper is None:
            raise InvalidTaskRequest("BoundingBox", "LowerCorner and UpperCorner are required")
        return ",".join(text_of(lower).split() + text_of(upper).split())
    return None


def data_type(kind: str) -> tuple[str, str]:
    """(name, XML Schema reference) of a connector parameter type."""
    name = DATA_TYPES.get(kind, "string")
    return name, XS + name


def allowed_values(parent: etree._Element, ows: str, p: dict[str, Any]) -> None:
    """``ows:AllowedValues`` (choices, or the min/max range) or ``ows:AnyValue``."""
    choices = p.get("choices")
    if choices:
        allowed = sub(parent, q(ows, "AllowedValues"))
        for c in choices:
            sub(allowed, q(ows, "Value"), str(c).lower() if isinstance(c, bool) else str(c))
    elif p.get("min") is not None or p.get("max") is not None:
        allowed = sub(parent, q(ows, "AllowedValues"))
        rng = sub(allowed, q(ows, "Range"))
        if p.get("min") is not None:
            sub(rng, q(ows, "MinimumValue"), str(p["min"]))
        if p.get("max") is not None:
            sub(rng, q(ows, "MaximumValue"), str(p["max"]))
    else:
        sub(parent, q(ows, "AnyValue"))


def default_text(p: dict[str, Any]) -> str | None:
    default = p.get("default")
    if default is None:
        return None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list | tuple):
        return ",".join(str(v) for v in default)
    return str(default)


def base_url(environ: dict[str, Any]) -> str:
    return application_uri(environ).rstrip("/")


# ---- exception reports --------------------------------------------------------------
def exception_report(
    exc: BaseException, version: int, request_id: str
) -> tuple[XmlReply, errors.GprocError]:
    """The OWS ExceptionReport of any exception (unexpected ones logged, told as internal)."""
    seen = as_error(exc)
    if seen is None:
        log.error("internal error", exc_info=exc)
        err: errors.GprocError = errors.Internal("internal error; the service log has the details")
    else:
        err = seen[0]
    code, status = ows_exception(err, version)
    ows = OWS20 if version == 2 else OWS11
    root = etree.Element(q(ows, "ExceptionReport"), nsmap={"ows": ows})
    root.set("version", "2.0.0" if version == 2 else "1.1.0")
    root.set(q(XML_NS, "lang"), "en")
    one = sub(root, q(ows, "Exception"), exceptionCode=str(code))
    locator = err.field or err.task_id
    if locator:
        one.set("locator", str(locator)[:200])
    sub(one, q(ows, "ExceptionText"), str(err))
    sub(one, q(ows, "ExceptionText"), f"{err.code} (request {request_id})")
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        headers = (("WWW-Authenticate", 'X509 realm="gproc"'),)
    return XmlReply(status, serialise(root), headers=headers), err


Handler = Callable[[dict[str, Any]], XmlReply]


def respond(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    handle: Handler,
    version_of: Callable[[dict[str, Any]], int],
) -> Iterable[bytes]:
    """Run ``handle``; any error becomes the ExceptionReport of the request's version."""
    try:
        reply = handle(environ)
    except Exception as exc:  # noqa: BLE001 - every error becomes an ExceptionReport
        reply, err = exception_report(exc, version_of(environ), environ.get(ENV_REQUEST_ID, ""))
        environ[ENV_FAULT] = err.code
    environ.setdefault(ENV_OPERATION, "wps")
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
        *reply.headers,
    ]
    start_response(f"{reply.status} {REASONS.get(reply.status, 'Status')}", headers)
    return [reply.body]


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
