"""Assemble the catalogue SOAP service on the chassis: spyne application, access log
(``gproc.catalogue.access``), XML guard with this service's own faults, HTTPS.

WSDL at ``https://HOST:PORT/?wsdl``, namespace ``urn:gproc:catalogue:1``.
"""

from __future__ import annotations

from spyne import Application

from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.service import Catalogue
from gproc.security.chain import Validator
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.catalogue.service import OPERATIONS, CatalogueService
from gproc.services.catalogue.types import ERRORS, NS
from gproc.services.chassis import AccessLog, soap_application, soap_stack
from gproc.services.chassis.guard import WSGIApp
from gproc.services.chassis.metrics import MetricsEndpoint, or_default

SERVICE_NAME = "GprocCatalogue"
ACCESS_LOGGER = "gproc.catalogue.access"
STAC_ACCESS_LOGGER = "gproc.stac.access"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32


def build_application(catalogue: Catalogue, gazetteer: Gazetteer) -> Application:
    return soap_application(
        [CatalogueService], NS, SERVICE_NAME, catalogue=catalogue, gazetteer=gazetteer
    )


def build_wsgi(
    catalogue: Catalogue, gazetteer: Gazetteer, metrics: MetricsEndpoint | None = None
) -> WSGIApp:
    return soap_stack(
        build_application(catalogue, gazetteer),
        ERRORS,
        OPERATIONS,
        access_logger=ACCESS_LOGGER,
        max_bytes=MAX_MESSAGE_BYTES,
        max_depth=MAX_DEPTH,
        metrics=or_default(metrics),
    )


def make_catalogue_server(
    catalogue: Catalogue,
    gazetteer: Gazetteer,
    validator: Validator,
    tls: TLSConfig | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8447,
    threads: int = 8,
    metrics: MetricsEndpoint | None = None,
) -> GridServer:
    """The HTTPS server (not started); identity is checked per operation (typed faults)."""
    return make_server(
        build_wsgi(catalogue, gazetteer, metrics),
        host,
        port,
        tls,
        validator,
        require_identity=False,
        threads=threads,
        timeout_s=60,
        prefetch_bytes=MAX_MESSAGE_BYTES,
    )


def make_stac_server(
    catalogue: Catalogue,
    gazetteer: Gazetteer,
    validator: Validator,
    tls: TLSConfig | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8449,
    metrics: MetricsEndpoint | None = None,
) -> GridServer:
    """The read-only STAC API (not started), behind the chassis access log."""
    from gproc.services.catalogue.stac import StacApp

    app = AccessLog(StacApp(catalogue, gazetteer), STAC_ACCESS_LOGGER, metrics=or_default(metrics))
    return make_server(app, host, port, tls, validator)
