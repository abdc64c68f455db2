"""The VOMS protocol front of the attribute authority: what ``voms-proxy-init`` speaks.

Measured against the real client (Debian ``voms-clients`` 2.1, C++): it opens TLS
with the user's certificate (the end-entity certificate plus chain, or a proxy),
sends one byte ``0`` (the GSI "no delegation" flag) and then tries, on one
connection each:

1. REST: ``GET /generate-ac?fqans=/vo/Role=r[,...]&lifetime=SECONDS[&order=..]
   [&targets=..] HTTP/1.0`` with bare ``\\n`` line ends; it looks for ``<?xml`` in
   the answer and accepts only ``HTTP/1.1 200``. Success is
   ``<voms><ac>BASE64</ac>[<warning>..</warning>]</voms>``; a refusal is
   ``<voms><error><code>NoSuchUser|SuspendedUser|BadRequest|..</code>
   <message>..</message></error></voms>``.
2. Only if REST failed, the legacy XML protocol: ``<voms><command>B/vo/g:role
   </command>..<lifetime>N</lifetime></voms>`` answered by ``<vomsans><version>3
   </version>[<error><item><number>N</number><message>..</message></item></error>]
   <ac>BASE64</ac></vomsans>``. The client reports server messages only when an
   ``<ac>`` element is present, so refusals carry a one-byte placeholder AC.

Base64 is wrapped in lines (the client's decoder takes the line-broken form as
standard base64). One VO per port, as with vomsd. The client's chain is validated
with the project's Validator (CRLs included) before anything is issued.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from cryptography import x509
from lxml import etree
from OpenSSL import SSL

from gproc.security.attribute_authority import AcRequestRefused, AttributeAuthority, IssuedAc
from gproc.security.chain import Validator, proxy_language
from gproc.security.errors import CredentialError
from gproc.security.tls import TLSConfig, make_context, peer_chain
from gproc.services.chassis.guard import hardened_parser
from gproc.services.chassis.metrics import CONTENT_TYPE_LATEST, MetricsEndpoint, observe

log = logging.getLogger("gproc.voms")
MAX_REQUEST = 16 * 1024
IO_TIMEOUT_S = 15.0
_HTTP_STATUS = {
    "NoSuchUser": "403 Forbidden",
    "SuspendedUser": "403 Forbidden",
    "NoSuchAttribute": "403 Forbidden",
    "BadRequest": "400 Bad Request",
}
_LEGACY_NUMBER = {
    "NoSuchUser": 1002,
    "SuspendedUser": 1011,
    "NoSuchAttribute": 1003,
    "BadRequest": 1001,
}
_PLACEHOLDER_AC = "QQ==\n"  # the byte "A": lets the client print the server's message


@dataclass(frozen=True)
class AcRequest:
    fqans: tuple[str, ...]
    lifetime_s: int | None
    order: tuple[str, ...]
    legacy: bool


class BadRequest(Exception):  # noqa: N818 - protocol refusal
    """The request could not be understood."""


def parse_request(raw: bytes, vo: str) -> AcRequest:
    """REST or legacy request bytes (after the delegation flag) -> AcRequest."""
    text = raw.decode("ascii", "replace")
    if text.startswith("GET "):
        return _parse_rest(text)
    if text.lstrip().startswith("<"):
        return _parse_legacy(raw, vo)
    raise BadRequest("neither a REST nor a legacy VOMS request")


def _parse_rest(text: str) -> AcRequest:
    line = text.split("\n", 1)[0].strip()
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest("bad request line")
    url = urlsplit(parts[1])
    if url.path != "/generate-ac":
        raise BadRequest(f"unknown resource {url.path[:100]!r}")
    q = parse_qs(url.query, keep_blank_values=True)
    fqans = tuple(f for f in ",".join(q.get("fqans", [])).split(",") if f)
    order = tuple(f for f in ",".join(q.get("order", [])).split(",") if f)
    return AcRequest(fqans, _lifetime(q.get("lifetime", [""])[0]), order, legacy=False)


def _lifetime(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.lstrip("-").isdigit() or len(text) > 12:
        raise BadRequest("lifetime: whole seconds")
    return int(text)


def _parse_legacy(raw: bytes, vo: str) -> AcRequest:
    try:
        root = etree.fromstring(raw.strip(), parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype or root.tag != "voms":
        raise BadRequest("not a VOMS request document")
    fqans = tuple(_command(c.text or "", vo) for c in root.findall("command"))
    order = tuple((root.findtext("order") or "").replace(":", "/Role=").split(","))
    return AcRequest(
        tuple(f for f in fqans if f),
        _lifetime(root.findtext("lifetime") or ""),
        tuple(o for o in order if o),
        legacy=True,
    )


def _command(cmd: str, vo: str) -> str:
    """Legacy commands: G<group>, B<group>:<role>, R<role>, A (all), N (none)."""
    cmd = cmd.strip()
    if cmd[:1] == "A":
        return "all"
    if cmd[:1] == "N":
        return ""
    if cmd[:1] == "G":
        return cmd[1:]
    if cmd[:1] == "B":
        group, _, role = cmd[1:].partition(":")
        return f"{group}/Role={role}" if role else group
    if cmd[:1] == "R":
        return f"/{vo}/Role={cmd[1:]}"
    raise BadRequest(f"unknown VOMS command {cmd[:60]!r}")


def _b64(der: bytes) -> str:
    text = base64.b64encode(der).decode()
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"


def rest_answer(
    issued: IssuedAc | None, error: AcRequestRefused | None, max_lifetime_s: int
) -> bytes:
    """A complete HTTP/1.1 response for the REST protocol."""
    if issued is not None:
        warn = (
            f"<warning>The validity of this VOMS AC in your proxy is shortened to "
            f"{max_lifetime_s} seconds!</warning>"
            if issued.shortened
            else ""
        )
        status, body = "200 OK", f"<voms><ac>{_b64(issued.der)}</ac>{warn}</voms>"
    else:
        assert error is not None
        status = _HTTP_STATUS.get(error.code, "500 Internal Server Error")
        body = (
            f"<voms><error><code>{escape(error.code)}</code><message>"
            f"{escape(error.message)}</message></error></voms>"
        )
    data = ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


def legacy_answer(issued: IssuedAc | None, error: AcRequestRefused | None) -> bytes:
    """The legacy ``<vomsans>`` document."""
    body = '<?xml version="1.0" encoding="US-ASCII"?><vomsans><version>3</version>'
    if issued is not None:
        body += f"<ac>{_b64(issued.der)}</ac>"
    else:
        assert error is not None
        number = _LEGACY_NUMBER.get(error.code, 1500)
        body += (
            f"<error><item><number>{number}</number><message>{escape(error.message)}"
            f"</message></item></error><ac>{_PLACEHOLDER_AC}</ac>"
        )
    return (body + "</vomsans>").encode("ascii", "replace")


def end_entity(chain: tuple[x509.Certificate, ...]) -> x509.Certificate:
    """The first certificate of the chain that is not an RFC 3820 proxy."""
    for cert in chain:
        if proxy_language(cert) is None:
            return cert
    raise ValueError("the chain holds no end-entity certificate")


class VomsServer:
    """A TLS server answering VOMS AC requests for one VO (threads; start/stop)."""

    def __init__(
        self,
        authority: AttributeAuthority,
        validator: Validator,
        tls: TLSConfig,
        vo: str,
        *,
        host: str = "127.0.0.1",
        port: int = 15000,
        max_connections: int = 32,
        metrics: MetricsEndpoint | None = None,
    ) -> None:
        self.authority = authority
        self.metrics = metrics  # GET /metrics (scrapers and admins), see chassis.metrics
        self.validator = validator
        self.vo = vo
        self.context = make_context(tls)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._server = _TCPServer((host, port), self._handle)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> VomsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gproc-voms", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def _handle(self, sock: socket.socket, peer: Any) -> None:
        if not self._slots.acquire(blocking=False):
            sock.close()
            return
        try:
            self._serve(sock, str(peer[0]))
        except Exception as exc:  # noqa: BLE001 - one bad client never stops the server
            log.info("VOMS connection from %s dropped: %s", peer[0], exc)
        finally:
            self._slots.release()
            sock.close()

    def _serve(self, sock: socket.socket, remote: str) -> None:
        started = time.monotonic()
        deadline = started + IO_TIMEOUT_S
        sock.setblocking(False)
        conn = SSL.Connection(self.context, sock)
        conn.set_accept_state()
        _io(conn, sock, conn.do_handshake, deadline)
        raw = _read_request(conn, sock, deadline)
        chain = peer_chain(conn)
        if self.metrics is not None and raw.startswith(b"GET /metrics "):
            self._metrics(conn, sock, chain, deadline, started)
            return
        entry: dict[str, Any] = {"remote": remote, "dn": None, "vo": self.vo}
        issued, error, legacy = None, None, raw.lstrip().startswith(b"<")
        try:
            req = parse_request(raw, self.vo)
            legacy = req.legacy
            ident = self.validator.validate(chain)
            entry["dn"] = ident.subject_grid
            issued = self.authority.issue(
                end_entity(chain), self.vo, req.fqans, req.lifetime_s, req.order
            )
            entry["fqans"] = list(issued.fqans)
        except BadRequest as exc:
            error = AcRequestRefused("BadRequest", str(exc))
        except CredentialError as exc:
            error = AcRequestRefused("BadRequest", f"credential refused: {exc}")
        except AcRequestRefused as exc:
            error = exc
        answer = (
            legacy_answer(issued, error)
            if legacy
            else rest_answer(issued, error, self.authority.max_lifetime_s)
        )
        _send(conn, sock, answer, deadline)
        entry.update(
            protocol="legacy" if legacy else "rest",
            result="issued" if issued else error.code if error else "?",
            message=error.message if error else None,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        log.info(json.dumps(entry))
        status = 200 if legacy or issued else int(_HTTP_STATUS.get(entry["result"], "500")[:3])
        observe("voms", entry["protocol"], status, error.code if error else None, _since(started))
        with contextlib.suppress(SSL.Error):
            conn.shutdown()

    def _metrics(
        self, conn: SSL.Connection, sock: socket.socket, chain: Any, deadline: float, started: float
    ) -> None:
        """``/metrics`` over the VOMS port: the chain validated, the caller checked."""
        assert self.metrics is not None
        try:
            ident = self.validator.validate(chain)
        except CredentialError:
            ident = None
        if ident is not None and self.metrics.operators.may_scrape(ident):
            status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.text()
        else:
            status, ctype = "403 Forbidden", "application/json"
            body = json.dumps({"status": 403, "error": "not allowed to read metrics"}).encode()
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        _send(conn, sock, head.encode() + body, deadline)
        observe("voms", "metrics", int(status[:3]), None, _since(started))
        with contextlib.suppress(SSL.Error):
            conn.shutdown()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handle: Callable[[socket.socket, Any], None]) -> None:
        self._handle_conn = handle
        super().__init__(addr, socketserver.BaseRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self._handle_conn(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.close()


def _io(
    conn: SSL.Connection, sock: socket.socket, call: Callable[..., Any], deadline: float, *args: Any
) -> Any:
    """Run a pyOpenSSL call on a non-blocking socket, waiting until ``deadline``."""
    while True:
        try:
            return call(*args)
        except (SSL.WantReadError, SSL.WantWriteError) as exc:
            left = deadline - time.monotonic()
            reading = isinstance(exc, SSL.WantReadError)
            if left <= 0 or not any(
                select.select([sock] if reading else [], [] if reading else [sock], [], left)
            ):
                raise TimeoutError("VOMS client too slow") from None


def _since(started: float) -> float:
    return time.monotonic() - started


def _read_request(conn: SSL.Connection, sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while len(data) <= MAX_REQUEST:
        try:
            chunk = _io(conn, sock, conn.recv, deadline, 4096)
        except SSL.ZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
        body = data[1:] if data[:1] == b"0" else data
        if (body.startswith(b"GET ") and b"\n\n" in body.replace(b"\r\n", b"\n")) or (
            body.lstrip().startswith(b"<") and body.rstrip().endswith(b"</voms>")
        ):
            return body
    raise ValueError("VOMS request too large or incomplete")


def _send(conn: SSL.Connection, sock: socket.socket, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        sent = _io(conn, sock, conn.send, deadline, view[:16384])
        view = view[sent:]
