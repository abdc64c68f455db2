"""Hostile and broken input: each gets a fault or an HTTP error, and the very next
good request succeeds (the server stays up). Real TLS server, real parser."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gproc.security.tls import TLSConfig
from gproc.services.soap.app import build_validator, make_soap_server
from tests.fixtures.soap import SoapServer
from tests.service.soap_helpers import envelope, fault_of, good_call_works, post

TASK = "0" * 32


def _expect_fault(srv: SoapServer, body: bytes, code: str) -> dict[str, str]:
    resp = post(srv, body)
    assert resp.status_code == 500, resp.text[:300]
    got, detail = fault_of(resp)
    assert got == code, (got, detail)
    good_call_works(srv)
    return detail


def test_malformed_xml(soap_offline: SoapServer) -> None:
    _expect_fault(soap_offline, b"<soap:Envelope><unclosed>", "Client.MalformedRequest")


def test_not_a_soap_envelope(soap_offline: SoapServer) -> None:
    _expect_fault(soap_offline, b"<hello/>", "Client.MalformedRequest")


def test_wrong_type(soap_offline: SoapServer) -> None:
    body = envelope("GetTaskLog", f"<g:task_id>{TASK}</g:task_id><g:max_bytes>many</g:max_bytes>")
    _expect_fault(soap_offline, body, "Client.ValidationError")


def test_missing_field(soap_offline: SoapServer) -> None:
    _expect_fault(soap_offline, envelope("GetTaskLog", ""), "Client.ValidationError")


def test_value_outside_declared_pattern(soap_offline: SoapServer) -> None:
    body = envelope("GetTaskStatus", "<g:task_ids>../../etc/passwd</g:task_ids>")
    _expect_fault(soap_offline, body, "Client.ValidationError")


def test_unknown_operation(soap_offline: SoapServer) -> None:
    detail = _expect_fault(soap_offline, envelope("FormatDisk"), "Client.UnknownOperation")
    assert len(detail["request_id"]) == 16


def test_xxe_external_entity_is_refused_and_not_read(soap_offline: SoapServer) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + envelope("DescribeTool", "<g:name>&x;</g:name>").split(b"?>", 1)[1]
    )
    resp = post(soap_offline, body)
    assert resp.status_code == 500 and b"root:" not in resp.content
    assert fault_of(resp)[0] == "Client.MalformedRequest"
    good_call_works(soap_offline)


def test_xxe_parameter_entity_is_refused(soap_offline: SoapServer) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM "file:///etc/hostname">'
        b"%p;]>" + envelope("ListTools").split(b"?>", 1)[1]
    )
    _expect_fault(soap_offline, body, "Client.MalformedRequest")


def test_entity_expansion_bomb(soap_offline: SoapServer) -> None:
    ents = '<!ENTITY a0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = (
        f'<?xml version="1.0"?><!DOCTYPE bomb [{ents}]>'.encode()
        + envelope("DescribeTool", "<g:name>&a9;</g:name>").split(b"?>", 1)[1]
    )
    started = time.monotonic()
    _expect_fault(soap_offline, body, "Client.MalformedRequest")
    assert time.monotonic() - started < 30  # bounded: nothing was expanded


def test_deep_nesting(soap_offline: SoapServer) -> None:
    deep = "<g:x>" * 60 + "</g:x>" * 60
    detail = _expect_fault(soap_offline, envelope("ListTools", deep), "Client.LimitExceeded")
    assert detail["field"] == "depth"


def test_very_deep_nesting_beyond_the_parser_bound(soap_offline: SoapServer) -> None:
    deep = "<g:x>" * 5000 + "</g:x>" * 5000
    resp = post(soap_offline, envelope("ListTools", deep))
    assert resp.status_code == 500
    code, detail = fault_of(resp)
    assert (code, detail["field"]) == ("Client.LimitExceeded", "depth")
    good_call_works(soap_offline)


def test_oversized_body(soap_offline: SoapServer) -> None:
    filler = "x" * (soap_offline.gp.settings.service.max_message_bytes + 10)
    resp = post(soap_offline, envelope("DescribeTool", f"<g:name>{filler}</g:name>"))
    assert resp.status_code == 413
    good_call_works(soap_offline)


def test_huge_announced_body_is_refused_without_reading_it(soap_offline: SoapServer) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        b"Content-Length: 10000000000\r\n\r\n<soap:Envelope>"
    )
    assert _raw_exchange(soap_offline, head).startswith(b"HTTP/1.1 413")
    good_call_works(soap_offline)


def test_body_without_length(soap_offline: SoapServer) -> None:
    def chunks() -> object:
        yield envelope("ListTools")

    resp = post(soap_offline, chunks())  # type: ignore[arg-type]  # chunked encoding
    assert resp.status_code == 411
    good_call_works(soap_offline)


def test_too_large_a_batch(soap_offline: SoapServer) -> None:
    ids = "".join(f"<g:task_ids>{i:032x}</g:task_ids>" for i in range(51))
    _expect_fault(soap_offline, envelope("GetTaskStatus", ids), "Client.LimitExceeded")


def test_get_without_wsdl_and_truncated_body(soap_offline: SoapServer) -> None:
    resp = soap_offline.session().get(soap_offline.url, timeout=30)
    assert resp.status_code >= 400
    good_call_works(soap_offline)
    _send_truncated(soap_offline)
    good_call_works(soap_offline)


def _tls(srv: SoapServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    ctx.load_cert_chain(str(srv.pki.proxies["alice-voms"]))
    ctx.check_hostname = False
    return ctx


def _send_truncated(srv: SoapServer) -> None:
    """Announce 1000 bytes, send 10 and hang up."""
    with (
        socket.create_connection((srv.server.host, srv.server.port), timeout=10) as raw,
        _tls(srv).wrap_socket(raw) as tls,
    ):
        tls.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 1000\r\n\r\n<soap:Env>"
        )


def _raw_exchange(srv: SoapServer, data: bytes) -> bytes:
    """Send raw bytes over TLS and return what comes back first."""
    with (
        socket.create_connection((srv.server.host, srv.server.port), timeout=10) as raw,
        _tls(srv).wrap_socket(raw) as tls,
    ):
        tls.sendall(data)
        return tls.recv(4096)


@pytest.mark.parametrize("who", ["alice", "alice-voms"])
def test_identity_never_comes_from_the_envelope(soap_offline: SoapServer, who: str) -> None:
    """A WS-Security header naming bob changes nothing: the TLS identity is alice."""
    header = (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken>'
        f"<wsse:Username>{soap_offline.pki.users['bob'].dn}</wsse:Username>"
        "</wsse:UsernameToken></wsse:Security>"
    )
    resp = post(soap_offline, envelope("GetServiceInfo", header=header), who=who)
    assert resp.status_code == 200
    assert soap_offline.pki.users["alice"].dn.encode() in resp.content
    assert soap_offline.pki.users["bob"].dn.encode() not in resp.content


# ---- slow clients: bounded reads, no starvation ---------------------------------------
GATE_S = 3.0  # the test server's read_timeout_s
IDLE_S = 4  # its request_timeout_s: idle connections are closed after this


@pytest.fixture(scope="module")
def small_server(soap_offline: SoapServer) -> Iterator[SoapServer]:
    """The offline service on a second server with two worker threads and a short
    request deadline (same core, same PKI)."""
    svc = soap_offline.gp.settings.service.model_copy(
        update={"threads": 2, "read_timeout_s": GATE_S, "request_timeout_s": IDLE_S}
    )
    gp = replace(
        soap_offline.gp, settings=soap_offline.gp.settings.model_copy(update={"service": svc})
    )
    pki = soap_offline.pki
    tls = TLSConfig(pki.host_cert, pki.host_key, pki.ca_dir)
    server = make_soap_server(gp, build_validator(pki.ca_dir, pki.vomsdir), tls).start()
    try:
        yield replace(soap_offline, server=server, gp=gp)
    finally:
        server.stop()


def _connect(srv: SoapServer, handshake: bool = True) -> socket.socket:
    raw = socket.create_connection((srv.server.host, srv.server.port), timeout=30)
    return _tls(srv).wrap_socket(raw) if handshake else raw


def test_short_body_gets_the_guards_400_in_bounded_time(small_server: SoapServer) -> None:
    """A body shorter than its Content-Length: the guard's 400, soon, not a 500."""
    with _connect(small_server) as tls:
        tls.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 1000\r\n\r\n<soap:Env>"
        )
        tls.settimeout(GATE_S + 10)
        answer = b"".join(iter(lambda: tls.recv(4096), b""))  # until the server closes
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"did not arrive within" in answer and b"10 of 1000 bytes" in answer
    good_call_works(small_server)


def test_slow_clients_do_not_starve_the_workers(small_server: SoapServer) -> None:
    """Three times as many slow connections as worker threads (silent after TCP, after
    the TLS handshake, mid-headers, mid-body): good calls are still answered at once."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n"
    slow = [_connect(small_server, handshake=False) for _ in range(2)]
    slow += [_connect(small_server) for _ in range(4)]
    try:
        slow[3].sendall(head[:20])
        slow[4].sendall(head + b"\r\n<soap:")
        slow[5].sendall(head)
        started = time.monotonic()
        for _ in range(3):
            resp = small_server.session().post(
                small_server.url,
                data=envelope("GetServiceInfo"),
                headers={"Content-Type": "text/xml"},
                timeout=GATE_S / 2,
            )
            assert resp.status_code == 200, resp.text[:300]
        assert time.monotonic() - started < GATE_S  # all of them before any slow one gave up
        time.sleep(1.0)  # past the server's idle-expiry sweep, with the slow ones still there
        good_call_works(small_server)  # a new connection
    finally:
        for s in slow:
            s.close()
    good_call_works(small_server)


@pytest.mark.parametrize("handshake", [False, True])
def test_silent_connections_are_closed_when_idle(small_server: SoapServer, handshake: bool) -> None:
    """A connection that never sends a request is closed after the idle timeout
    (it holds no worker meanwhile)."""
    with _connect(small_server, handshake=handshake) as conn:
        conn.settimeout(IDLE_S + 10)
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):  # closed either way
            assert conn.recv(100) == b""
        assert time.monotonic() - started < IDLE_S + 5
    good_call_works(small_server)
