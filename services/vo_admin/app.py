"""Assemble the VO administration service on the chassis: spyne application, access
log (``gproc.vo_admin.access``), XML guard with this service's own faults, HTTPS.

Request path: cheroot TLS (client chain; the request gate) -> IdentityMiddleware ->
AccessLog -> XmlGuard -> spyne (Soap11, soft validation) -> VoAdminService -> VoStore.
WSDL at ``https://HOST:PORT/?wsdl``, namespace ``urn:gproc:vo-admin:1``.
"""

from __future__ import annotations

from spyne import Application

from gproc.security.chain import Validator
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.chassis import soap_application, soap_stack
from gproc.services.chassis.guard import WSGIApp
from gproc.services.chassis.metrics import MetricsEndpoint, or_default
from gproc.services.vo_admin.service import OPERATIONS, VoAdminService
from gproc.services.vo_admin.types import ERRORS, NS
from gproc.vo import VoStore

SERVICE_NAME = "GprocVoAdmin"
ACCESS_LOGGER = "gproc.vo_admin.access"
LOGGERS = ("gproc.vo_admin", "gproc.voms", "gproc.services")
MAX_MESSAGE_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 32


def build_application(store: VoStore) -> Application:
    return soap_application([VoAdminService], NS, SERVICE_NAME, vo_store=store)


def build_wsgi(
    store: VoStore,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_DEPTH,
    metrics: MetricsEndpoint | None = None,
) -> WSGIApp:
    return soap_stack(
        build_application(store),
        ERRORS,
        OPERATIONS,
        access_logger=ACCESS_LOGGER,
        max_bytes=max_bytes,
        max_depth=max_depth,
        metrics=or_default(metrics),
    )


def make_admin_server(
    store: VoStore,
    validator: Validator,
    tls: TLSConfig | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8444,
    threads: int = 8,
    trusted_proxies: tuple[str, ...] = (),
    metrics: MetricsEndpoint | None = None,
) -> GridServer:
    """The HTTPS server (not started); identity is checked per operation (typed faults)."""
    return make_server(
        build_wsgi(store, metrics=metrics),
        host,
        port,
        tls,
        validator,
        trusted_proxies=trusted_proxies,
        require_identity=False,
        threads=threads,
        timeout_s=60,
        prefetch_bytes=MAX_MESSAGE_BYTES,
    )
