"""Assemble the data gateway's fronts from settings: namespace, key store, HTTPS server.

The HTTPS front is the WSGI app of ``storage_gateway.https_front`` behind the
chassis access log (``gproc.gateway.access``: request id, one JSON line per call)
on ``security.tls`` with client proxies required (a request without a valid identity
never reaches the app). The SFTP front is ``storage_gateway.sftp_front``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.catalogue_tasks import (
    CatalogueRemovals,
    catalogue_configured,
    open_catalogue_engine,
)
from gproc.services.chassis import AccessLog
from gproc.services.chassis.metrics import MetricsEndpoint, or_default
from gproc.settings import Settings
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.https_front import KEYS_PATH, GatewayApp
from gproc.storage_gateway.namespace import Namespace
from gproc.storage_gateway.sshkeys import SshKeyStore
from gproc.vo import VoStore, membership_refusal

ACCESS_LOGGER = "gproc.gateway.access"
LOGGERS = ("gproc.gateway", "gproc.services")
PREFETCH_BYTES = 1 << 20  # small uploads arrive whole before a worker sees them


@dataclass
class GatewayParts:
    """What the fronts share (one per process)."""

    gateway: StorageGateway
    keys: SshKeyStore
    admit: Callable[[Identity], str | None] | None = None  # VO standing, when enforced


def build_parts(
    settings: Settings, validator: Validator, namespace: Namespace | None = None
) -> GatewayParts:
    """Load the namespace (unless given) and open the key store."""
    conf = settings.gateway
    if namespace is None:
        if conf.namespace is None:
            raise ValueError("no gateway namespace configured ([gateway] namespace)")
        namespace = Namespace.load(conf.namespace)
    if any(a.mount[:1] == (KEYS_PATH.strip("/"),) for a in namespace.areas):
        raise ValueError(f"{KEYS_PATH} is reserved for key registration; mount areas elsewhere")
    keys_dir = conf.sshkeys_dir or settings.state_dir.resolve() / "sshkeys"
    removals = None
    if catalogue_configured(settings):  # removed files' entries marked at once
        removals = CatalogueRemovals(open_catalogue_engine(settings))
    return GatewayParts(
        StorageGateway(namespace, removals=removals),
        SshKeyStore(keys_dir, validator),
        vo_admission(settings),
    )


def vo_admission(settings: Settings) -> Callable[[Identity], str | None] | None:
    """With ``[vo] enforce_membership``, refuse members the local VO database has since
    suspended or removed, whatever their unexpired AC says (as the processing service does)."""
    if not settings.vo.enforce_membership:
        return None
    store = VoStore(
        settings.vo_database_url,
        admins=settings.vo.admins,
        admin_role=settings.vo.admin_role,
        auto_upgrade=settings.database.auto_upgrade,
    )

    def admit(ident: Identity) -> str | None:
        if not ident.acs:
            return None
        return membership_refusal(
            store, (ac.vo for ac in ident.acs), ident.subject_grid, ident.issuer_grid
        )

    return admit


def make_https_front(
    parts: GatewayParts,
    validator: Validator,
    tls: TLSConfig | None,
    host: str,
    port: int,
    *,
    threads: int = 16,
    timeout_s: int = 60,
    metrics: MetricsEndpoint | None = None,
) -> GridServer:
    """The HTTPS front (not started); port 0 picks a free port."""
    app = AccessLog(
        GatewayApp(parts.gateway, parts.keys, parts.admit),
        ACCESS_LOGGER,
        metrics=or_default(metrics),
    )
    return make_server(
        app,
        host,
        port,
        tls,
        validator,
        require_identity=True,
        threads=threads,
        timeout_s=timeout_s,
        prefetch_bytes=PREFETCH_BYTES,
    )


def host_key_path(settings: Settings) -> Path:
    return settings.gateway.sftp_host_key or settings.state_dir.resolve() / "sftp_host_key"
