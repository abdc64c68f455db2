"""HTTPS with client certificates (RFC 3820 proxies included) on cheroot + pyOpenSSL.

Used by the SOAP service and the storage gateway's HTTPS front. The handshake asks
for the client chain and checks it against the CA directory with OpenSSL's
ALLOW_PROXY_CERTS (a first, cheap refusal of strangers); the full peer chain then goes
to the application-level validator (CRLs, namespaces, VOMS) via
security.wsgi_auth.IdentityMiddleware. cheroot's stock pyOpenSSL adapter does not
expose the peer chain, so a small gateway subclass adds it to the WSGI environ.
Behind a TLS-terminating reverse proxy, run with ``tls=None`` and list the proxy's
address in ``trusted_proxies``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cheroot import wsgi
from cheroot.ssl.pyopenssl import (
    SSLFileobjectStreamReader,
    SSLFileobjectStreamWriter,
    pyOpenSSLAdapter,
)
from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509StoreFlags

from gproc.security.tls_gate import GatedConnections
from gproc.security.tls_streams import PatientReader, PatientWriter
from gproc.security.wsgi_auth import (
    DEFAULT_CHAIN_HEADER,
    ENV_PEER_CHAIN,
    IdentityMiddleware,
    Validator,
    WSGIApp,
)

_SESSION_ID = b"gproc-x509"


@dataclass(frozen=True)
class TLSConfig:
    """Server credentials and client-certificate requirements.

    ``ca_dir`` is an OpenSSL hashed CA directory (X509_CERT_DIR); ``chain_file`` holds
    intermediate CA certificates of the server, if any."""

    cert_file: Path
    key_file: Path
    ca_dir: Path
    client_cert: Literal["required", "optional"] = "required"
    chain_file: Path | None = None
    verify_depth: int = 16  # EEC + intermediates + a stack of proxies
    ciphers: str | None = None


def make_context(cfg: TLSConfig) -> SSL.Context:
    """A server context that requests client chains and accepts RFC 3820 proxies."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    if cfg.ciphers:
        ctx.set_cipher_list(cfg.ciphers.encode())
    ctx.use_certificate_chain_file(str(cfg.cert_file))
    ctx.use_privatekey_file(str(cfg.key_file))
    ctx.check_privatekey()
    if cfg.chain_file:
        ctx.load_verify_locations(str(cfg.chain_file))
    ctx.load_verify_locations(None, str(cfg.ca_dir))
    ctx.get_cert_store().set_flags(X509StoreFlags.ALLOW_PROXY_CERTS)  # type: ignore[union-attr]
    mode = SSL.VERIFY_PEER
    if cfg.client_cert == "required":
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    ctx.set_verify(mode, _keep_openssl_verdict)
    ctx.set_verify_depth(cfg.verify_depth)
    ctx.set_session_id(_SESSION_ID)  # needed for session resumption with client certs
    return ctx


def _keep_openssl_verdict(
    _conn: SSL.Connection, _cert: Any, _err: int, _depth: int, ok: int
) -> bool:
    return bool(ok)


def peer_chain(conn: SSL.Connection) -> tuple[x509.Certificate, ...]:
    """The client's chain, leaf first (OpenSSL omits the leaf on the server side)."""
    leaf = conn.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return ()
    rest = conn.get_peer_cert_chain(as_cryptography=True) or []
    if rest and rest[0] == leaf:
        return tuple(rest)
    return (leaf, *rest)


ENV_READ_DEADLINE = "gproc.read_deadline"
"""A function of a monotonic time: the request's body reads stop waiting then (TLS)."""
ENV_CLOSE = "gproc.close_connection"
"""Set by the application: close the connection after the answer (a body cut short)."""


class _ClientChainGateway(wsgi.Gateway_10):
    """WSGI 1.0 gateway that adds the verified TLS peer chain to the environ, and a
    way for the application to bound the time its body reads may wait."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]
        env: dict[str, Any] = super().get_environ()
        sock = self.req.conn.socket
        env.pop(ENV_PEER_CHAIN, None)
        env.pop(ENV_READ_DEADLINE, None)
        if isinstance(sock, SSL.Connection):
            env[ENV_PEER_CHAIN] = _cached_chain(self.req.conn, sock)
            env[ENV_READ_DEADLINE] = _deadline_setter(self.req.conn.rfile)
        return env

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        """With ``environ[ENV_CLOSE]`` set, the connection closes after this answer
        (cheroot would otherwise first wait for the rest of a body that is not coming)."""
        if self.env.get(ENV_CLOSE):
            self.req.close_connection = True
        return super().start_response(status, headers, exc_info)


def _deadline_setter(rfile: Any) -> Any:
    def bound(at: float) -> None:
        current = getattr(rfile, "_gproc_deadline", None)
        rfile._gproc_deadline = at if current is None else min(current, at)

    return bound


def _cached_chain(conn: Any, sock: SSL.Connection) -> tuple[x509.Certificate, ...]:
    """The chain once per TLS connection (keep-alive requests reuse it)."""
    chain = getattr(conn, "_gproc_peer_chain", None)
    if chain is None:
        chain = peer_chain(sock)
        conn._gproc_peer_chain = chain
    return chain


class _Adapter(pyOpenSSLAdapter):
    """cheroot's pyOpenSSL adapter with a prepared context and patient streams."""

    def __init__(self, cfg: TLSConfig, write_timeout_s: float = 60.0) -> None:
        super().__init__(str(cfg.cert_file), str(cfg.key_file))
        self.context = make_context(cfg)
        self.write_timeout_s = write_timeout_s

    def makefile(self, sock: Any, mode: str = "r", bufsize: int = -1) -> Any:
        stream = super().makefile(sock, mode, bufsize)
        if type(stream) is SSLFileobjectStreamReader:
            stream.__class__ = PatientReader
        elif type(stream) is SSLFileobjectStreamWriter:
            stream.__class__ = PatientWriter
            stream._gproc_timeout = self.write_timeout_s  # type: ignore[attr-defined]
        return stream


class _GatedServer(wsgi.Server):  # type: ignore[misc]
    """cheroot's WSGI server whose workers get only requests that have arrived
    (see ``security.tls_gate``)."""

    gate_read_timeout_s = 20.0
    gate_prefetch_bytes = 1 << 20
    _connections: Any

    def prepare(self) -> None:
        super().prepare()
        stock = self._connections
        self._connections = GatedConnections(
            self, read_timeout_s=self.gate_read_timeout_s, prefetch_bytes=self.gate_prefetch_bytes
        )
        stock._selector.close()


class GridServer:
    """A cheroot WSGI server run in a background thread (start/stop from tests/CLI)."""

    def __init__(self, server: wsgi.Server, tls: bool) -> None:
        self.server = server
        self.tls = tls
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.server.bind_addr[0])

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> GridServer:
        """Bind (the real port is known afterwards) and serve in a daemon thread."""
        self.server.prepare()
        self._thread = threading.Thread(target=self.server.serve, name="gproc-https", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() (for the service entry point)."""
        self.server.safe_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish workers and join the thread."""
        self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> GridServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _no_body_for_head(app: WSGIApp) -> WSGIApp:
    """Drop the body of every HEAD answer (RFC 9110 9.3.2): cheroot sends what the app
    returns, and a body would be read as the start of the next response on a kept-alive
    connection. Headers (Content-Length included) stay as the app set them."""

    def head_safe(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "HEAD":
            return body
        for _ in body:  # run the app to its end, send nothing
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return []

    return head_safe


def make_server(
    app: WSGIApp,
    host: str,
    port: int,
    tls: TLSConfig | None,
    validator: Validator,
    *,
    trusted_proxies: Iterable[str] = (),
    header: str = DEFAULT_CHAIN_HEADER,
    require_identity: bool = True,
    threads: int = 10,
    timeout_s: int = 30,
    read_timeout_s: float = 20.0,
    prefetch_bytes: int = 1 << 20,
) -> GridServer:
    """A server whose app sees ``environ["gproc.identity"]`` (see wsgi_auth).

    ``tls=None`` serves plain HTTP, meant only behind a TLS-terminating proxy whose
    address is in ``trusted_proxies``; port 0 picks a free port (read ``.port``
    after ``start()``). A request must arrive (headers and up to ``prefetch_bytes``
    of body) within ``read_timeout_s`` of its first byte before a worker sees it;
    ``timeout_s`` bounds each later socket wait and idle keep-alive connections."""
    wrapped = IdentityMiddleware(
        _no_body_for_head(app),
        validator,
        trusted_proxies=trusted_proxies,
        header=header,
        require=require_identity,
    )
    server = _GatedServer(
        (host, port), wrapped, numthreads=threads, timeout=timeout_s, shutdown_timeout=5
    )
    server.gate_read_timeout_s = read_timeout_s
    server.gate_prefetch_bytes = prefetch_bytes
    server.gateway = _ClientChainGateway
    if tls is not None:
        server.ssl_adapter = _Adapter(tls, float(timeout_s))
    return GridServer(server, tls is not None)
