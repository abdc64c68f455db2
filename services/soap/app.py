"""Assemble the SOAP service: spyne application, WSGI guards, access log, HTTPS server.

Request path: cheroot TLS (client chain) -> IdentityMiddleware (validated
Identity in the environ) -> AccessLog (request id, one JSON log line per call)
-> HardeningMiddleware (size, XML, depth, operation) -> spyne (Soap11, soft
validation) -> ProcessingService -> the core.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from spyne import Application
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from gproc.app import build_service
from gproc.security.chain import Validator
from gproc.security.delegation import DelegationStore
from gproc.security.policy import Policy
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.services.gateway_tasks import TaskData
from gproc.services.soap.hardening import ENV_REQUEST_ID, HardeningMiddleware, WSGIApp
from gproc.services.soap.service import (
    ENV_FAULT,
    ENV_IDENTITY,
    OPERATIONS,
    ProcessingService,
    ServiceContext,
)
from gproc.services.soap.types import NS
from gproc.settings import Settings
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.vo import VoStore
from gproc.wrappers.base import WorkloadManager

access_log = logging.getLogger("gproc.soap.access")
SERVICE_NAME = "GprocProcessing"

# spyne logs every fault with a traceback; the access log records them once instead
for _name in ("spyne.application.client", "spyne.application.server", "spyne.application"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def build_application(gp: ServiceContext) -> Application:
    app = Application(
        [ProcessingService],
        tns=NS,
        name=SERVICE_NAME,
        in_protocol=Soap11(validator="soft"),
        out_protocol=Soap11(),
    )
    app.gproc = gp
    return app


def build_wsgi(gp: ServiceContext) -> WSGIApp:
    """The WSGI stack below identity: access log, hardening, spyne."""
    svc = gp.settings.service
    spyne_app = WsgiApplication(build_application(gp), max_content_length=svc.max_message_bytes)
    guarded = HardeningMiddleware(
        spyne_app,
        max_bytes=svc.max_message_bytes,
        max_depth=svc.max_depth,
        operations=OPERATIONS,
        namespace=NS,
    )
    return AccessLog(guarded)


def build_validator(ca_dir: Path, vomsdir: Path | None) -> Validator:
    return Validator(TrustStore(ca_dir), VomsTrust(vomsdir) if vomsdir else None)


def load_policy(settings: Settings) -> Policy:
    """The authorisation policy, with the VO admin role of the VO settings (the one the
    VO admin service uses), so a VO admin by one rule is one by the other."""
    return Policy.load(settings.service.policy, admin_role=settings.vo.admin_role)


def build_context(
    settings: Settings,
    validator: Validator,
    *,
    wms: WorkloadManager | None = None,
    policy: Policy | None = None,
    gateway: StorageGateway | None = None,
) -> ServiceContext:
    """The core for network callers: inputs inline, under allowed directories, or data
    -gateway paths read as the caller (``gateway``, else ``[gateway] namespace``)."""
    svc = settings.service
    allowed = tuple(p.resolve() for p in svc.allowed_input_dirs)
    core = build_service(settings, wms=wms, local_roots=allowed)
    store = DelegationStore(
        svc.delegation_dir or settings.state_dir.resolve() / "delegation", validator
    )
    if gateway is None and settings.gateway.namespace is not None:
        gateway = StorageGateway(Namespace.load(settings.gateway.namespace))
    task_data = None
    if gateway is not None:
        task_data = TaskData(
            gateway,
            core.resolve_input,
            url_base=svc.output_url_base,
            outputs_dir=settings.gateway.task_outputs,
            validator=validator,
        )
        core.resolver_for = task_data.resolver_for
        core.output_sink = task_data.output_sink
    vo_store = (
        VoStore(
            settings.vo_database_url, admins=settings.vo.admins, admin_role=settings.vo.admin_role
        )
        if settings.vo.enforce_membership
        else None
    )
    return ServiceContext(
        core=core,
        policy=policy or load_policy(settings),
        settings=settings,
        delegations=store,
        task_data=task_data,
        vo_store=vo_store,
    )


def make_soap_server(gp: ServiceContext, validator: Validator, tls: TLSConfig | None) -> GridServer:
    """The HTTPS server (not started). Identity is optional at the HTTP layer so a
    caller without a usable credential gets a typed fault, and ``?wsdl`` is readable."""
    svc = gp.settings.service
    server = make_server(
        build_wsgi(gp),
        svc.host,
        svc.port,
        tls,
        validator,
        trusted_proxies=svc.trusted_proxies,
        require_identity=False,
        threads=svc.threads,
        timeout_s=svc.request_timeout_s,
    )
    return server


class AccessLog:
    """A request id per call (``X-Request-Id`` header, fault detail) and one JSON log
    line with caller, operation, HTTP status, fault code and duration."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        rid = uuid.uuid4().hex[:16]
        environ[ENV_REQUEST_ID] = rid
        started = time.perf_counter()
        status: list[str] = []

        def _start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, [*headers, ("X-Request-Id", rid)], exc_info)

        body = self.app(environ, _start)
        return _Logged(body, lambda: self._log(environ, rid, status, started))

    @staticmethod
    def _log(environ: dict[str, Any], rid: str, status: list[str], started: float) -> None:
        ident = environ.get(ENV_IDENTITY)
        access_log.info(
            json.dumps(
                {
                    "request_id": rid,
                    "method": environ.get("REQUEST_METHOD"),
                    "operation": environ.get("gproc.operation"),
                    "dn": ident.subject_grid if ident else None,
                    "remote": environ.get("REMOTE_ADDR"),
                    "status": int(status[0].split()[0]) if status else None,
                    "fault": environ.get(ENV_FAULT),
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                }
            )
        )


class _Logged:
    """Iterates a WSGI body and logs once it is done (or closed)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done
        self._logged = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.body

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        if not self._logged:
            self._logged = True
            self.done()
