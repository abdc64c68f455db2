"""A WSGI guard in front of spyne: bounded bodies, a hardened XML parse, no DTDs.

Everything a hostile client can send is checked here before spyne parses it:
the body size (from Content-Length, read with a bound), the XML itself with an
lxml parser that never resolves entities, never loads a DTD and never touches
the network, any DOCTYPE at all (so entity bombs and XXE are refused outright,
not merely left unexpanded), the element depth, the SOAP 1.1 envelope shape and
the operation name. Refusals are SOAP faults (or HTTP 411/413 for framing
problems) and the server carries on with the next request.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from gproc.services.soap.faults import (
    GprocFault,
    LimitExceededFault,
    MalformedRequestFault,
    UnknownOperationFault,
    fault_envelope,
)

log = logging.getLogger("gproc.soap")
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENV_REQUEST_ID = "gproc.request_id"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def hardened_parser() -> etree.XMLParser:
    """lxml parser for untrusted XML (lxml >= 6.1.3, after CVE-2026-41066)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
        collect_ids=False,
    )


def check_document(body: bytes, max_depth: int, operations: frozenset[str], namespace: str) -> str:
    """Raise a GprocFault unless ``body`` is a plain SOAP 1.1 envelope for a known
    operation, no deeper than ``max_depth``; returns the operation name."""
    try:
        root = etree.fromstring(body, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        if "huge" in str(exc).lower():  # a text node beyond libxml2's 10 MB bound
            raise LimitExceededFault(f"a value is too large to parse: {exc}") from None
        raise MalformedRequestFault(f"malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedRequestFault("DTDs are not accepted (DOCTYPE found)")
    depth = _depth(root, max_depth)
    if depth > max_depth:
        raise LimitExceededFault(f"XML nested deeper than {max_depth} elements", field="depth")
    return _check_envelope(root, operations, namespace)


def _depth(root: etree._Element, limit: int) -> int:
    """Maximum element depth, stopping as soon as ``limit`` is exceeded."""
    deepest = 0
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        el, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((child, d + 1) for child in el if isinstance(child.tag, str))
    return deepest


def _check_envelope(root: etree._Element, operations: frozenset[str], namespace: str) -> str:
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise MalformedRequestFault("not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    if body is None:
        raise MalformedRequestFault("SOAP envelope without a Body")
    payload = [c for c in body if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise MalformedRequestFault("the SOAP Body must hold exactly one operation element")
    qname = etree.QName(payload[0])
    if qname.namespace != namespace or qname.localname not in operations:
        raise UnknownOperationFault(f"unknown operation {qname.text[:200]!r}")
    return str(qname.localname)


class HardeningMiddleware:
    """Bounds and checks every POST before the SOAP stack sees it."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_bytes: int,
        max_depth: int,
        operations: Iterable[str],
        namespace: str,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.operations = frozenset(operations)
        self.namespace = namespace

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)  # ?wsdl and friends
        length = _content_length(environ)
        if length is None:
            return _http(start_response, "411 Length Required", "a Content-Length is required")
        if length > self.max_bytes:
            if length <= 2 * self.max_bytes:  # read and drop it, so the client sees the 413
                _drain(environ["wsgi.input"], length)
            return _http(
                start_response, "413 Payload Too Large", f"the body exceeds {self.max_bytes} bytes"
            )
        body = _read(environ["wsgi.input"], length)
        if len(body) != length:
            return _http(start_response, "400 Bad Request", "the body ended early")
        try:
            environ["gproc.operation"] = check_document(
                body, self.max_depth, self.operations, self.namespace
            )
        except GprocFault as fault:
            fault.set_request_id(environ.get(ENV_REQUEST_ID, ""))
            environ["gproc.fault"] = fault.CODE
            return _soap_fault(start_response, fault)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(length)
        return self.app(environ, start_response)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _read(stream: Any, length: int) -> bytes:
    chunks: list[bytes] = []
    left = length
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _drain(stream: Any, length: int) -> None:
    left = length
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)


def _http(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = f"{status}: {text}\n".encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]


def _soap_fault(start_response: Callable[..., Any], fault: GprocFault) -> list[bytes]:
    body = fault_envelope(fault)
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
