"""The WSGI guard in front of spyne: bounded bodies, a hardened XML parse, no DTDs.

Everything a hostile client can send is checked here before spyne parses it: the
body size (from Content-Length, read with a bound on size and time), the XML
itself with an lxml parser that never resolves entities, never loads a DTD and
never touches the network, any DOCTYPE at all (so entity bombs and XXE are refused
outright, not merely left unexpanded), the element depth, the SOAP 1.1 envelope
shape and the operation name. Refusals are the service's own declared faults (or
HTTP 400/411/413 for framing problems) and the server carries on.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from gproc.services.chassis.faults import SOAP11_ENV, FaultSet, ServiceFault, fault_envelope

ENV_REQUEST_ID = "gproc.request_id"
ENV_OPERATION = "gproc.operation"
ENV_FAULT = "gproc.fault"
ENV_READ_DEADLINE = "gproc.read_deadline"  # set by gproc.security.tls (TLS connections)
ENV_CLOSE = "gproc.close_connection"  # read by gproc.security.tls
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BODY_READ_S = 30.0  # a whole body must arrive within this (the TLS server's gate waits first)


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


class UntrustedXml(ValueError):
    """Why an untrusted XML body was refused; ``limit`` for depth and size bounds."""

    def __init__(self, message: str, *, limit: bool = False, field: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.field = field


def parse_untrusted(body: bytes, max_depth: int) -> etree._Element:
    """The root of ``body`` parsed with :func:`hardened_parser`; raises
    :class:`UntrustedXml` for malformed XML, any DTD, or a depth above ``max_depth``.
    Every XML front (SOAP, WPS) parses request bodies through this."""
    try:
        root = etree.fromstring(body, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "depth" in text.lower():  # libxml2 stops at 256 levels whatever we allow
            raise UntrustedXml(
                f"XML nested deeper than {max_depth} elements", limit=True, field="depth"
            ) from None
        if "huge" in text.lower():  # a text node beyond libxml2's 10 MB bound
            raise UntrustedXml(f"a value is too large to parse: {exc}", limit=True) from None
        raise UntrustedXml(f"malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UntrustedXml("DTDs are not accepted (DOCTYPE found)")
    if _depth(root, max_depth) > max_depth:
        raise UntrustedXml(
            f"XML nested deeper than {max_depth} elements", limit=True, field="depth"
        )
    return root


def check_document(
    body: bytes, max_depth: int, operations: frozenset[str], namespace: str, faults: FaultSet
) -> str:
    """Raise one of ``faults`` unless ``body`` is a plain SOAP 1.1 envelope for a known
    operation, no deeper than ``max_depth``; returns the operation name."""
    try:
        root = parse_untrusted(body, max_depth)
    except UntrustedXml as exc:
        if exc.limit:
            if exc.field:
                raise faults.LimitExceededFault(str(exc), field=exc.field) from None
            raise faults.LimitExceededFault(str(exc)) from None
        raise faults.MalformedRequestFault(str(exc)) from None
    return _check_envelope(root, operations, namespace, faults)


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


def _check_envelope(
    root: etree._Element, operations: frozenset[str], namespace: str, faults: FaultSet
) -> str:
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise faults.MalformedRequestFault("not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    if body is None:
        raise faults.MalformedRequestFault("SOAP envelope without a Body")
    payload = [c for c in body if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise faults.MalformedRequestFault("the SOAP Body must hold exactly one operation element")
    qname = etree.QName(payload[0])
    if qname.namespace != namespace or qname.localname not in operations:
        raise faults.UnknownOperationFault(f"unknown operation {qname.text[:200]!r}")
    return str(qname.localname)


class XmlGuard:
    """Bounds and checks every POST before the SOAP stack sees it."""

    def __init__(
        self,
        app: WSGIApp,
        faults: FaultSet,
        *,
        max_bytes: int,
        max_depth: int,
        operations: Iterable[str],
        read_s: float = BODY_READ_S,
    ) -> None:
        self.app = app
        self.faults = faults
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.operations = frozenset(operations)
        self.read_s = read_s

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)  # ?wsdl and friends
        length = _content_length(environ)
        bound = environ.get(ENV_READ_DEADLINE)
        if bound is not None:
            bound(time.monotonic() + self.read_s)
        if length is None:
            return _http(start_response, "411 Length Required", "a Content-Length is required")
        if length > self.max_bytes:
            if length <= 2 * self.max_bytes:  # read and drop it, so the client sees the 413
                _read(environ["wsgi.input"], length, self.read_s, keep=False)
            return _http(
                start_response, "413 Payload Too Large", f"the body exceeds {self.max_bytes} bytes"
            )
        body = _read(environ["wsgi.input"], length, self.read_s)
        if len(body) != length:
            environ[ENV_CLOSE] = True  # the rest is not coming: do not wait for it
            return _http(
                start_response,
                "400 Bad Request",
                f"the body ended early or did not arrive within {self.read_s:g} s "
                f"({len(body)} of {length} bytes)",
            )
        try:
            environ[ENV_OPERATION] = check_document(
                body, self.max_depth, self.operations, self.faults.ns, self.faults
            )
        except ServiceFault as fault:
            fault.set_request_id(environ.get(ENV_REQUEST_ID, ""))
            environ[ENV_FAULT] = fault.CODE
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


def _read(stream: Any, length: int, within_s: float, *, keep: bool = True) -> bytes:
    """Up to ``length`` bytes; short if the client stops, hangs up or is too slow."""
    chunks: list[bytes] = []
    left = length
    deadline = time.monotonic() + within_s
    while left > 0 and time.monotonic() < deadline:
        try:
            chunk = stream.read(min(left, 1 << 20))
        except OSError:  # TimeoutError included: the client stopped sending
            break
        if not chunk:
            break
        if keep:
            chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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


def _soap_fault(start_response: Callable[..., Any], fault: ServiceFault) -> list[bytes]:
    body = fault_envelope(fault)
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
