"""Assemble the portal: session store, SOAP clients, the WSGI app with the chassis
access log (``gproc.portal.access``), on cheroot over HTTPS (``security/tls.py``).

Browsers present no client certificate: the portal's TLS asks for one only
optionally, and identity comes from the server-side session instead.
"""

from __future__ import annotations

from pathlib import Path

from gproc.security.chain import Validator
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.chassis.wsgi import AccessLog
from gproc.services.portal.app import Portal, PortalConfig, SignOn
from gproc.services.portal.clients import Clients, Endpoints
from gproc.services.portal.sessions import SessionStore
from gproc.settings import Settings

ACCESS_LOGGER = "gproc.portal.access"
LOGGERS = ("gproc.portal", "gproc.services")


def endpoints(settings: Settings) -> Endpoints:
    p = settings.portal
    return Endpoints(
        processing=p.processing_url,
        workflow=p.workflow_url,
        catalogue=p.catalogue_url,
        gateway=p.gateway_url,
        stac=p.stac_url,
        ops=p.ops_url,
    )


def config(settings: Settings) -> PortalConfig:
    p = settings.portal
    return PortalConfig(
        vos=list(p.vos),
        base_layer_url=p.base_layer_url,
        base_layer_attribution=p.base_layer_attribution,
        vendor_dir=p.vendor_dir,
        max_upload_bytes=p.max_upload_bytes,
        ops_enabled=p.ops_url is not None,
        admin_role=settings.vo.admin_role,
    )


def open_store(settings: Settings) -> SessionStore:
    p = settings.portal
    key = p.secret_file or settings.state_dir.resolve() / "portal.key"
    return SessionStore.open(
        p.database_url or settings.database_url,
        key,
        idle_s=p.session_idle_s,
        max_s=p.session_max_s,
    )


def build_portal(
    settings: Settings,
    validator: Validator,
    *,
    ca_file: Path | None = None,
    ca_dir: Path | None = None,
    sign_on: SignOn | None = None,
    store: SessionStore | None = None,
) -> Portal:
    clients = Clients(endpoints(settings), ca_file=ca_file, ca_dir=ca_dir)
    return Portal(
        store or open_store(settings), clients, validator, config(settings), sign_on=sign_on
    )


def make_portal_server(
    portal: Portal,
    validator: Validator,
    tls: TLSConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8450,
    threads: int = 16,
) -> GridServer:
    """The HTTPS server (not started)."""
    return make_server(
        AccessLog(portal, ACCESS_LOGGER),
        host,
        port,
        tls,
        validator,
        require_identity=False,
        threads=threads,
        timeout_s=60,
        prefetch_bytes=portal.config.max_upload_bytes + 65536,
    )
