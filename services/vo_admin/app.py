"""Assemble the VO administration service: spyne application, the processing
service's guards (size, hardened XML, depth, operation) and access log, HTTPS.

Request path: cheroot TLS (client chain) -> IdentityMiddleware -> AccessLog ->
HardeningMiddleware -> spyne (Soap11, soft validation) -> VoAdminService -> VoStore.
WSDL at ``https://HOST:PORT/?wsdl``, namespace ``urn:gproc:vo-admin:1``.
"""

from __future__ import annotations

from spyne import Application
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from gproc.security.chain import Validator
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.soap.app import AccessLog
from gproc.services.soap.hardening import HardeningMiddleware, WSGIApp
from gproc.services.vo_admin.service import OPERATIONS, VoAdminService
from gproc.services.vo_admin.types import NS
from gproc.vo import VoStore

SERVICE_NAME = "GprocVoAdmin"
MAX_MESSAGE_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 32


def build_application(store: VoStore) -> Application:
    app = Application(
        [VoAdminService],
        tns=NS,
        name=SERVICE_NAME,
        in_protocol=Soap11(validator="soft"),
        out_protocol=Soap11(),
    )
    app.vo_store = store
    return app


def build_wsgi(
    store: VoStore, *, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_DEPTH
) -> WSGIApp:
    spyne_app = WsgiApplication(build_application(store), max_content_length=max_bytes)
    guarded = HardeningMiddleware(
        spyne_app, max_bytes=max_bytes, max_depth=max_depth, operations=OPERATIONS, namespace=NS
    )
    return AccessLog(guarded)


def make_admin_server(
    store: VoStore,
    validator: Validator,
    tls: TLSConfig | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8444,
    threads: int = 8,
    trusted_proxies: tuple[str, ...] = (),
) -> GridServer:
    """The HTTPS server (not started); identity is checked per operation (typed faults)."""
    server = make_server(
        build_wsgi(store),
        host,
        port,
        tls,
        validator,
        trusted_proxies=trusted_proxies,
        require_identity=False,
        threads=threads,
        timeout_s=60,
    )
    return server
