"""Assemble the workflow SOAP service on the chassis: spyne application, access log
(``gproc.workflow.access``), XML guard with this service's own faults, HTTPS; the
workflow tracker and the callback notifier run in the same process.

Request path: cheroot TLS (client chain) -> IdentityMiddleware -> AccessLog ->
XmlGuard -> spyne (Soap11) -> WorkflowSoapService -> gproc.workflows core -> DAGMan.
WSDL at ``https://HOST:PORT/?wsdl``, namespace ``urn:gproc:workflow:1``.
"""

from __future__ import annotations

from spyne import Application

from gproc.leader import check_shared_directory
from gproc.security.chain import Validator
from gproc.security.delegation import DelegationStore
from gproc.security.policy import Policy
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.services.catalogue_tasks import DatasetInputs, build_catalogue, input_types
from gproc.services.chassis import soap_application, soap_stack
from gproc.services.chassis.guard import WSGIApp
from gproc.services.chassis.metrics import RegistryFigures, metrics_endpoint
from gproc.services.gateway_tasks import GatewayTaskData
from gproc.services.workflow.data import (
    CatalogueStartData,
    catalogue_sink,
    gateway_sink,
    workflow_owner,
)
from gproc.services.workflow.service import OPERATIONS, WorkflowContext, WorkflowSoapService
from gproc.services.workflow.types import ERRORS, NS
from gproc.settings import Settings
from gproc.staging import local_file_resolver
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.task_data import TaskData
from gproc.workflows.app import build_workflow_service
from gproc.workflows.service import OutputSink
from gproc.wrappers.dag_base import DagRunner

SERVICE_NAME = "GprocWorkflow"
ACCESS_LOGGER = "gproc.workflow.access"
LOGGERS = ("gproc.workflow", "gproc.workflows", "gproc.services")
WORKFLOW_OUTPUTS = "workflows"  # <home>/workflows/<workflow id>/: final outputs
SERVICE = "the gproc workflow service"


def build_context(
    settings: Settings,
    *,
    runner: DagRunner | None = None,
    policy: Policy | None = None,
    validator: Validator | None = None,
    gateway: StorageGateway | None = None,
) -> WorkflowContext:
    """The workflow core as a network front uses it: callers name no server file except
    below ``service.allowed_input_dirs``; with a gateway (``gateway``, else ``[gateway]
    namespace``) sources may be gateway paths read as the owner and final outputs are
    stored in the owner's area; with ``[catalogue] tasks`` also catalogue datasets and
    queries. ``validator``: delegated proxies (the processing service's store)."""
    svc = settings.service
    roots = tuple(p.resolve() for p in svc.allowed_input_dirs)
    resolver = local_file_resolver(roots)
    if gateway is None and settings.gateway.namespace is not None:
        gateway = StorageGateway(Namespace.load(settings.gateway.namespace))
    task_data: TaskData | None = None
    start_data: CatalogueStartData | None = None
    sink: OutputSink | None = None
    if gateway is not None:
        task_data = gateway_data = GatewayTaskData(
            gateway,
            resolver,
            url_base=svc.output_url_base,
            outputs_dir=WORKFLOW_OUTPUTS,
            validator=validator,
            service=SERVICE,
        )
        sink = gateway_sink(gateway_data)
        if settings.catalogue.tasks:  # dataset: and gql: sources
            catalogue = build_catalogue(settings, gateway)
            task_data = DatasetInputs(catalogue, gateway_data, input_types(settings))
            start_data = CatalogueStartData(catalogue, input_types(settings))
            sink = catalogue_sink(  # final outputs catalogued with provenance
                catalogue, sink, lambda row: gateway_data.output_principal(workflow_owner(row))
            )
    core = build_workflow_service(
        settings,
        runner=runner,
        resolve_input=resolver,
        resolver_for=task_data.resolver_for if task_data else None,
        output_sink=sink,
        catalogue=start_data,
    )
    delegations = None
    if validator is not None:
        delegations = DelegationStore(
            svc.delegation_dir or settings.state_dir.resolve() / "delegation", validator
        )
        check_shared_directory(core.store.engine, "delegations", delegations.root)
    return WorkflowContext(
        core=core,
        policy=policy or Policy.load(settings.service.policy, admin_role=settings.vo.admin_role),
        settings=settings,
        base_resolver=resolver,
        resolver_for=task_data.resolver_for if task_data else None,
        task_data=task_data,
        delegations=delegations,
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
