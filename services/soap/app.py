"""Assemble the SOAP processing service on the chassis: spyne application, access log
(``gproc.soap.access``), XML guard, HTTPS server.

Request path: cheroot TLS (client chain; the request gate) -> IdentityMiddleware
(validated Identity in the environ) -> AccessLog (request id, one JSON log line per
call) -> XmlGuard (size, XML, depth, operation) -> spyne (Soap11, soft validation)
-> ProcessingService -> the core.
"""

from __future__ import annotations

from spyne import Application

from gproc.app import build_service
from gproc.leader import check_shared_directory
from gproc.security.chain import Validator
from gproc.security.delegation import DelegationStore
from gproc.security.policy import Policy
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.catalogue_tasks import (
    CatalogueOutputs,
    DatasetInputs,
    build_catalogue,
    input_types,
)
from gproc.services.chassis import build_validator, soap_application, soap_stack
from gproc.services.chassis.guard import WSGIApp
from gproc.services.chassis.metrics import RegistryFigures, metrics_endpoint
from gproc.services.gateway_tasks import GatewayTaskData
from gproc.services.ops.handler import PREFIX as OPS_PREFIX
from gproc.services.ops.handler import build_ops_app
from gproc.services.soap.faults import ERRORS
from gproc.services.soap.service import OPERATIONS, ProcessingService, ServiceContext
from gproc.services.soap.types import NS
from gproc.settings import Settings
from gproc.staging import local_file_resolver
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.task_data import TaskData
from gproc.vo import VoStore
from gproc.wrappers.base import WorkloadManager

SERVICE_NAME = "GprocProcessing"
ACCESS_LOGGER = "gproc.soap.access"
LOGGERS = ("gproc.soap", "gproc.services", "gproc.tracker", "gproc.renewal")
__all__ = ["build_context", "build_validator", "build_wsgi", "make_soap_server"]


def build_application(gp: ServiceContext) -> Application:
    return soap_application([ProcessingService], NS, SERVICE_NAME, gproc=gp)


def build_wsgi(gp: ServiceContext) -> WSGIApp:
    """The WSGI stack below identity: access log (``/metrics``, the dashboard's
    ``/ops/``), guard, spyne."""
    svc = gp.settings.service
    engine = gp.core.registry.engine
    return soap_stack(
        build_application(gp),
        ERRORS,
        OPERATIONS,
        access_logger=ACCESS_LOGGER,
        max_bytes=svc.max_message_bytes,
        max_depth=svc.max_depth,
        metrics=metrics_endpoint(gp.settings, RegistryFigures(engine)),
        routes={OPS_PREFIX: build_ops_app(gp.settings, engine, gp.core.wms)},
        service="processing",
    )


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
    -gateway paths read as the caller (``gateway``, else ``[gateway] namespace``); with
    ``[catalogue] tasks``, also catalogue datasets, and outputs are catalogued."""
    svc = settings.service
    allowed = tuple(p.resolve() for p in svc.allowed_input_dirs)
    store = DelegationStore(
        svc.delegation_dir or settings.state_dir.resolve() / "delegation", validator
    )
    if gateway is None and settings.gateway.namespace is not None:
        gateway = StorageGateway(Namespace.load(settings.gateway.namespace))
    task_data: TaskData | None = None
    if gateway is not None:
        task_data = gateway_data = GatewayTaskData(
            gateway,
            local_file_resolver(allowed),
            url_base=svc.output_url_base,
            outputs_dir=settings.gateway.task_outputs,
            validator=validator,
        )
        if settings.catalogue.tasks:  # dataset: inputs; outputs catalogued
            catalogue = build_catalogue(settings, gateway)
            task_data = CatalogueOutputs(
                catalogue,
                DatasetInputs(catalogue, gateway_data, input_types(settings)),
                gateway_data.output_principal,
            )
    core = build_service(settings, wms=wms, local_roots=allowed, task_data=task_data)
    check_shared_directory(core.registry.engine, "delegations", store.root)  # replicas
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
        read_timeout_s=svc.read_timeout_s,
        prefetch_bytes=svc.max_message_bytes,
    )
    return server
