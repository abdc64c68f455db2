"""Assemble the workflow SOAP service on the chassis: spyne application, access log
(``gproc.workflow.access``), XML guard with this service's own faults, HTTPS; the
workflow tracker and the callback notifier run in the same process.

Request path: cheroot TLS (client chain) -> IdentityMiddleware -> AccessLog ->
XmlGuard -> spyne (Soap11) -> WorkflowSoapService -> gproc.workflows core -> DAGMan.
WSDL at ``https://HOST:PORT/?wsdl``, namespace ``urn:gproc:workflow:1``.
"""

from __future__ import annotations

from spyne import Application

from gproc.security.chain import Validator
from gproc.security.policy import Policy
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.chassis import soap_application, soap_stack
from gproc.services.chassis.guard import WSGIApp
from gproc.services.chassis.metrics import RegistryFigures, metrics_endpoint
from gproc.services.workflow.service import OPERATIONS, WorkflowContext, WorkflowSoapService
from gproc.services.workflow.types import ERRORS, NS
from gproc.settings import Settings
from gproc.staging import local_file_resolver
from gproc.workflows.app import build_workflow_service
from gproc.wrappers.dag_base import DagRunner

SERVICE_NAME = "GprocWorkflow"
ACCESS_LOGGER = "gproc.workflow.access"
LOGGERS = ("gproc.workflow", "gproc.workflows", "gproc.services")


def build_context(
    settings: Settings, *, runner: DagRunner | None = None, policy: Policy | None = None
) -> WorkflowContext:
    """The workflow core as a network front uses it: callers name no server file except
    below ``service.allowed_input_dirs``."""
    roots = tuple(p.resolve() for p in settings.service.allowed_input_dirs)
    resolver = local_file_resolver(roots)
    core = build_workflow_service(settings, runner=runner, resolve_input=resolver)
    return WorkflowContext(
        core=core,
        policy=policy or Policy.load(settings.service.policy, admin_role=settings.vo.admin_role),
        settings=settings,
        base_resolver=resolver,
    )


def build_wsgi(gp: WorkflowContext) -> WSGIApp:
    svc = gp.settings.service
    app: Application = soap_application([WorkflowSoapService], NS, SERVICE_NAME, gproc=gp)
    return soap_stack(
        app,
        ERRORS,
        OPERATIONS,
        access_logger=ACCESS_LOGGER,
        max_bytes=svc.max_message_bytes,
        max_depth=svc.max_depth,
        metrics=metrics_endpoint(
            gp.settings, RegistryFigures(gp.core.store.engine, tasks=False, workflows=True)
        ),
    )


def make_workflow_server(
    gp: WorkflowContext, validator: Validator, tls: TLSConfig | None, *, host: str, port: int
) -> GridServer:
    svc = gp.settings.service
    return make_server(
        build_wsgi(gp),
        host,
        port,
        tls,
        validator,
        trusted_proxies=tuple(svc.trusted_proxies),
        require_identity=False,
        threads=svc.threads,
        timeout_s=svc.request_timeout_s,
        prefetch_bytes=svc.max_message_bytes,
    )
