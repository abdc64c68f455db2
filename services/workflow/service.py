"""The workflow SOAP service: each operation authenticates (the TLS identity), is
authorised by the policy for *every tool* of the workflow and for ownership, converts
wire types and calls the workflow core. Errors become declared faults in
``call_wrapper``. Policy operations: RegisterWorkflow ``register`` (and ``submit``
with ``submit``), SubmitWorkflow ``submit``, GetWorkflowStatus ``status``,
GetWorkflowLog ``log``, RetrieveWorkflowOutput ``retrieve``, CancelWorkflow
``cancel``, RetryWorkflow ``resubmit``, PurgeWorkflow ``purge``, ListWorkflows ``list``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from spyne import Boolean, Integer, Unicode, rpc

from gproc.domain import Owner
from gproc.errors import InvalidRequest, LimitExceeded
from gproc.security.delegation import DELEGATION_ID, DelegationError, DelegationStore
from gproc.security.identity import Identity
from gproc.security.policy import Policy
from gproc.services.chassis import FaultingService, identity_of
from gproc.services.workflow import types as w
from gproc.settings import Settings
from gproc.staging import InputResolver
from gproc.vo import VoStore, membership_refusal
from gproc.workflows.service import WorkflowRequest, WorkflowService
from gproc.workflows.states import WorkflowState
from gproc.workflows.views import WorkflowView

OPERATIONS = (
    "RegisterWorkflow",
    "SubmitWorkflow",
    "GetWorkflowStatus",
    "GetWorkflowLog",
    "RetrieveWorkflowOutput",
    "CancelWorkflow",
    "RetryWorkflow",
    "PurgeWorkflow",
    "ListWorkflows",
)
INLINE = "inline:"
MAX_SOURCES = 10000


@dataclass
class WorkflowContext:
    core: WorkflowService
    policy: Policy
    settings: Settings
    base_resolver: InputResolver  # gateway references with the owner's rights, allowed files
    resolver_for: Any = None  # Callable[[Owner], InputResolver] when a gateway is configured
    task_data: Any = None  # services.gateway_tasks.TaskData, for output locations
    vo_store: VoStore | None = None
    delegations: DelegationStore | None = None  # the processing service's store


def _gp(ctx: Any) -> WorkflowContext:
    gp: WorkflowContext = ctx.app.gproc
    return gp


def _caller(ctx: Any) -> Identity:
    ident = identity_of(ctx, w.ERRORS)
    store = _gp(ctx).vo_store
    if store is not None and ident.acs:
        refusal = membership_refusal(
            store, (ac.vo for ac in ident.acs), ident.subject_grid, ident.issuer_grid
        )
        if refusal is not None:
            raise w.FAULTS.NotAuthorisedFault(refusal, rule="vo-membership")
    return ident


def _owner(ident: Identity, policy: Policy) -> Owner:
    return Owner(
        dn=ident.subject_grid,
        vo=ident.vo,
        fqans=tuple(str(q) for q in ident.fqans),
        accounting_group=policy.accounting_group(ident),
        credential=ident,
    )


def _require(gp: WorkflowContext, ident: Identity, operation: str, tools: Iterable[str]) -> None:
    """Every tool of the workflow must be allowed for ``operation``."""
    for tool in sorted(set(tools)):
        gp.policy.require(ident, operation, tool)


def _authorised(ctx: Any, operation: str, workflow_id: str) -> tuple[WorkflowView, Identity]:
    gp, ident = _gp(ctx), _caller(ctx)
    view = gp.core.get(workflow_id)
    gp.policy.may_act_on(ident, view.owner_dn, view.owner_vo).require()
    _require(gp, ident, operation, view.tools)
    return view, ident


def _status(v: WorkflowView) -> w.WorkflowStatus:
    return w.WorkflowStatus(
        workflow_id=v.id,
        name=v.name,
        form=v.form,
        state=str(v.state),
        state_reason=v.state_reason,
        owner_dn=v.owner_dn,
        attempt=v.attempt,
        dagman_job_id=v.job_id,
        callback_url=v.callback_url,
        callback_secret=v.callback_secret,
        created=v.created_at,
        updated=v.updated_at,
        submitted=v.submitted_at,
        finished=v.finished_at,
        tools=list(v.tools),
        nodes=[
            w.NodeStatus(
                name=n.name,
                node=n.node,
                branch=n.branch,
                tool=n.tool,
                state=str(n.state),
                job_id=n.job_id,
                exit_code=n.exit_code,
                hold_reason=n.hold_reason,
                detail=n.detail,
                runs=n.runs,
                final=n.final,
            )
            for n in v.nodes
        ],
    )


def _sources(
    gp: WorkflowContext, sources: list[w.WorkflowSource] | None, owner: Owner
) -> tuple[dict[str, list[str]], InputResolver]:
    """Source names -> references, and a resolver that also knows this call's inline data."""
    inline: dict[str, bytes] = {}
    out: dict[str, list[str]] = {}
    cap = gp.settings.limits.max_inline_input_bytes
    if len(sources or []) > MAX_SOURCES:
        raise LimitExceeded(f"more than {MAX_SOURCES} sources")
    for i, src in enumerate(sources or []):
        if (src.location is None) == (src.content is None):
            raise InvalidRequest("give either location or content", field=f"sources.{i}")
        if src.content is not None:
            data = b"".join(src.content) if isinstance(src.content, list | tuple) else src.content
            if len(data) > cap:
                raise LimitExceeded(f"inline source {i} exceeds {cap} bytes")
            key = f"{INLINE}{uuid.uuid4().hex}"
            inline[key] = data
            out.setdefault(src.name, []).append(key)
        else:
            if src.location.startswith(INLINE):
                raise InvalidRequest("not a location", field=f"sources.{i}")
            out.setdefault(src.name, []).append(src.location)
    base = gp.resolver_for(owner) if gp.resolver_for else gp.base_resolver

    def resolve(ref: str, dest: Path) -> None:
        if ref in inline:
            dest.write_bytes(inline[ref])
        else:
            base(ref, dest)

    return out, resolve


def _delegated_proxy(
    gp: WorkflowContext, ident: Identity, delegation_id: str | None
) -> Path | None:
    """The caller's delegated proxy for the node jobs (refused if unknown or expired)."""
    if delegation_id is None:
        return None
    if gp.delegations is None:
        raise InvalidRequest("delegation is not configured here", field="delegation_id")
    if not DELEGATION_ID.match(delegation_id):
        raise InvalidRequest(f"must match {DELEGATION_ID.pattern}", field="delegation_id")
    try:
        return gp.delegations.path_for(ident, delegation_id)
    except DelegationError as exc:
        raise InvalidRequest(str(exc), field="delegation_id") from exc


W1 = w.WORKFLOW_ID


class WorkflowSoapService(FaultingService):
    """GiSHEO workflows (SiLK or structured) run by HTCondor DAGMan."""

    ERRORS = w.ERRORS

    @rpc(
        w.WorkflowSpec.customize(min_occurs=1, nillable=False),
        _returns=w.WorkflowStatus,
        _out_variable_name="workflow",
        _throws=w.ALL_FAULTS,
    )
    def RegisterWorkflow(ctx: Any, spec: w.WorkflowSpec) -> w.WorkflowStatus:  # noqa: N802,N805
        gp, ident = _gp(ctx), _caller(ctx)
        owner = _owner(ident, gp.policy)
        sources, resolver = _sources(gp, cast(list[w.WorkflowSource], spec.sources), owner)
        req = WorkflowRequest(
            text=spec.document,
            owner=owner,
            form=spec.form,
            name=spec.name,
            sources=sources,
            client_request_id=spec.client_request_id,
            callback_url=spec.callback_url,
            callback_secret=spec.callback_secret,
            keep_intermediate=spec.keep_intermediate,
            x509_proxy=_delegated_proxy(gp, ident, spec.delegation_id),
        )
        compiled = gp.core.compile(req)  # validated before anything is authorised or kept
        _require(gp, ident, "register", compiled.tools)
        if spec.submit:
            _require(gp, ident, "submit", compiled.tools)
        view = gp.core.register(req, compiled, resolver)
        secret = view.callback_secret
        if spec.submit:
            view = gp.core.submit(view.id)
        status = _status(view)
        status.callback_secret = secret
        return status

    @rpc(W1, _returns=w.WorkflowStatus, _out_variable_name="workflow", _throws=w.ALL_FAULTS)
    def SubmitWorkflow(ctx: Any, workflow_id: str) -> w.WorkflowStatus:  # noqa: N802,N805
        _authorised(ctx, "submit", workflow_id)
        return _status(_gp(ctx).core.submit(workflow_id))

    @rpc(W1, _returns=w.WorkflowStatus, _out_variable_name="workflow", _throws=w.ALL_FAULTS)
    def GetWorkflowStatus(ctx: Any, workflow_id: str) -> w.WorkflowStatus:  # noqa: N802,N805
        return _status(_authorised(ctx, "status", workflow_id)[0])

    @rpc(W1, _returns=w.WorkflowLog, _out_variable_name="log", _throws=w.ALL_FAULTS)
    def GetWorkflowLog(ctx: Any, workflow_id: str) -> w.WorkflowLog:  # noqa: N802,N805
        _authorised(ctx, "log", workflow_id)
        data = _gp(ctx).core.log(workflow_id)
        return w.WorkflowLog(
            workflow_id=workflow_id,
            state=data["state"],
            events=[
                w.WorkflowEvent(
                    time=datetime.fromisoformat(e["time"]),
                    kind=e["kind"],
                    state=e["state"],
                    detail=e["detail"],
                )
                for e in data["events"]
            ],
            logs=[w.LogFile(name=k, text=v) for k, v in data["logs"].items()],
        )

    @rpc(
        W1,
        Boolean,
        _returns=w.many(w.WorkflowOutputFile),
        _out_variable_name="output",
        _throws=w.ALL_FAULTS,
    )
    def RetrieveWorkflowOutput(  # noqa: N802
        ctx: Any,
        workflow_id: str,
        intermediate: bool | None,  # noqa: N805
    ) -> list[w.WorkflowOutputFile]:
        gp = _gp(ctx)
        _authorised(ctx, "retrieve", workflow_id)
        cap = gp.settings.service.max_inline_output_bytes
        out = []
        for o in gp.core.outputs(workflow_id, intermediate=bool(intermediate)):
            inline = o.size <= cap
            location = None
            if o.stored_at and gp.task_data is not None:
                location = gp.task_data.location(o.stored_at)
            out.append(
                w.WorkflowOutputFile(
                    node=o.node,
                    port=o.port,
                    name=o.name,
                    final=o.final,
                    size=o.size,
                    adler32=o.adler32,
                    sha256=o.sha256,
                    inline=inline,
                    content=Path(o.path).read_bytes() if inline else None,
                    location=location,
                )
            )
        return out

    @rpc(W1, _returns=w.WorkflowStatus, _out_variable_name="workflow", _throws=w.ALL_FAULTS)
    def CancelWorkflow(ctx: Any, workflow_id: str) -> w.WorkflowStatus:  # noqa: N802,N805
        _authorised(ctx, "cancel", workflow_id)
        return _status(_gp(ctx).core.cancel(workflow_id))

    @rpc(W1, _returns=w.WorkflowStatus, _out_variable_name="workflow", _throws=w.ALL_FAULTS)
    def RetryWorkflow(ctx: Any, workflow_id: str) -> w.WorkflowStatus:  # noqa: N802,N805
        _authorised(ctx, "resubmit", workflow_id)
        return _status(_gp(ctx).core.retry(workflow_id))

    @rpc(W1, _returns=w.WorkflowStatus, _out_variable_name="workflow", _throws=w.ALL_FAULTS)
    def PurgeWorkflow(ctx: Any, workflow_id: str) -> w.WorkflowStatus:  # noqa: N802,N805
        _authorised(ctx, "purge", workflow_id)
        return _status(_gp(ctx).core.purge(workflow_id))

    @rpc(
        w.many(Unicode(max_len=16)),
        Integer(ge=0),
        Integer(ge=1, le=1000),
        _returns=w.WorkflowPage,
        _out_variable_name="page",
        _throws=w.ALL_FAULTS,
    )
    def ListWorkflows(  # noqa: N802
        ctx: Any,
        states: list[str] | None,
        offset: int | None,
        limit: int | None,  # noqa: N805
    ) -> w.WorkflowPage:
        gp, ident = _gp(ctx), _caller(ctx)
        gp.policy.require(ident, "list")
        try:
            wanted = [WorkflowState(s) for s in states or []]
        except ValueError:
            raise InvalidRequest(
                f"states: one of {[s.value for s in WorkflowState]}", field="states"
            ) from None
        views, total = gp.core.list_workflows(
            _owner(ident, gp.policy), wanted, offset or 0, limit or 100
        )
        return w.WorkflowPage(total=total, workflows=[_status(v) for v in views])
