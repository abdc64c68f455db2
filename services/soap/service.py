"""The G-PROC processing service: each operation authenticates (TLS identity from
the WSGI environ, never the envelope), authorises with the policy, converts wire
types and calls the core. Errors become declared faults in ``call_wrapper``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from spyne import Boolean, DateTime, Integer, Unicode, rpc

from gproc import __version__, connectors, errors
from gproc.domain import InvalidTaskRequest, Owner, TaskRequest, TaskView
from gproc.lifecycle import TaskService
from gproc.registry import TaskFilter
from gproc.security.delegation import (
    DELEGATION_ID,
    DelegationError,
    DelegationStore,
    RenewalRequest,
)
from gproc.security.identity import Identity
from gproc.security.policy import Denied, Policy
from gproc.services.chassis import FaultingService, as_error, identity_of
from gproc.services.soap import convert
from gproc.services.soap import faults as f
from gproc.services.soap import types as w
from gproc.settings import Settings
from gproc.states import TaskState
from gproc.vo import VoStore, membership_refusal
from gproc.wrappers.base import PoolInfo

MAX_LOG_BYTES = 1 << 20
PARSER_TEXT_LIMIT = 7_500_000  # decoded bytes whose base64 fits lxml's 10 MB text node
_REASON = re.compile(r"^[\x20-\x7e]{1,200}$")
_ACTIONS = ("get-request", "put-proxy", "renew")
_MYPROXY_USER = re.compile(r"^[\x20-\x7e]{1,1024}$")


@dataclass
class ServiceContext:
    """What the operations share; one per process, safe across threads."""

    core: TaskService
    policy: Policy
    settings: Settings
    delegations: DelegationStore | None = None
    task_data: Any = None  # services.gateway_tasks.TaskData when a gateway is configured
    vo_store: VoStore | None = None  # local VO database: refuse suspended/removed members
    ping_ttl_s: float = 5.0
    _ping: tuple[float, PoolInfo] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pool_info(self) -> PoolInfo:
        """WMS reachability, cached briefly so GetServiceInfo stays cheap under load."""
        with self._lock:
            if self._ping and time.monotonic() - self._ping[0] < self.ping_ttl_s:
                return self._ping[1]
        info = self.core.wms.ping()
        with self._lock:
            self._ping = (time.monotonic(), info)
        return info

    @property
    def inline_input_cap(self) -> int:
        return min(self.core.max_inline, PARSER_TEXT_LIMIT)


def _gp(ctx: Any) -> ServiceContext:
    gp: ServiceContext = ctx.app.gproc
    return gp


def _caller(ctx: Any) -> Identity:
    ident = identity_of(ctx, f.ERRORS)
    store = _gp(ctx).vo_store
    if store is not None and ident.acs:
        refusal = membership_refusal(
            store, (ac.vo for ac in ident.acs), ident.subject_grid, ident.issuer_grid
        )
        if refusal is not None:
            raise f.NotAuthorisedFault(refusal, rule="vo-membership")
    return ident


def owner_of(ident: Identity, policy: Policy) -> Owner:
    return Owner(
        dn=ident.subject_grid,
        vo=ident.vo,
        fqans=tuple(str(q) for q in ident.fqans),
        accounting_group=policy.accounting_group(ident),
        credential=ident,
    )


def _authorised_tasks(ctx: Any, operation: str, task_ids: Sequence[str]) -> list[TaskView]:
    """The tasks, once the caller may do ``operation`` on every one of them (all or none)."""
    gp, ident = _gp(ctx), _caller(ctx)
    views: list[TaskView] = []
    for i, result in enumerate(gp.core.status(task_ids)):
        if result.task is None:
            raise errors.NotFound("unknown task", task_id=result.task_id, index=i)
        view = result.task
        gp.policy.require(ident, operation, view.tool)
        gp.policy.may_act_on(ident, view.owner_dn, view.owner_vo).require()
        views.append(view)
    return views


def _reason(reason: str | None, default: str) -> str:
    if reason is None:
        return default
    if not _REASON.match(reason):
        raise InvalidTaskRequest("reason", "1-200 printable ASCII characters")
    return reason


TASK_IDS = w.TASK_ID.customize(min_occurs=1, max_occurs="unbounded", nillable=False)
ONE_TASK = w.TASK_ID.customize(min_occurs=1, nillable=False)
REASON = Unicode(max_len=200)


class ProcessingService(FaultingService):
    """G-PROC: register and run Earth-observation processing tasks on the grid."""

    ERRORS = f.ERRORS  # every error -> its declared fault (the chassis adds the request id)

    # ---- tools -------------------------------------------------------------
    @rpc(_returns=w.many(w.ToolSummary), _out_variable_name="tool", _throws=f.COMMON_FAULTS)
    def ListTools(ctx: Any) -> list[w.ToolSummary]:  # noqa: N802,N805
        _caller(ctx)
        return [convert.tool_summary(c) for c in connectors.list_connectors()]

    @rpc(
        Unicode(max_len=64, min_occurs=1, nillable=False),
        _returns=w.ToolInfo,
        _out_variable_name="tool",
        _throws=[*f.COMMON_FAULTS, f.InvalidRequestFault],
    )
    def DescribeTool(ctx: Any, name: str) -> w.ToolInfo:  # noqa: N802,N805
        _caller(ctx)
        return convert.tool_info(connectors.get_connector(name))

    # ---- registration and submission -----------------------------------------
    @rpc(
        w.many(w.TaskSpec, required=True),
        _returns=w.many(w.RegisteredTask),
        _out_variable_name="task",
        _throws=f.TASK_FAULTS,
    )
    def RegisterTask(ctx: Any, tasks: list[w.TaskSpec]) -> list[w.RegisteredTask]:  # noqa: N802,N805
        gp, ident = _gp(ctx), _caller(ctx)
        owner = owner_of(ident, gp.policy)
        if len(tasks) > gp.core.max_batch:
            raise f.LimitExceededFault(f"batch of {len(tasks)} exceeds {gp.core.max_batch}")
        requests = []
        for i, spec in enumerate(tasks):
            try:
                requests.append(_request(gp, ident, owner, spec))
            except Exception as exc:  # noqa: BLE001 - every known error names the task
                seen = as_error(exc)
                if seen is None:
                    raise
                raise seen[0].at(index=i) from exc
        views = gp.core.register(requests)
        return [convert.registered(v, owner.accounting_group) for v in views]

    @rpc(TASK_IDS, _returns=w.many(w.TaskStatus), _out_variable_name="task", _throws=f.TASK_FAULTS)
    def SubmitTask(ctx: Any, task_ids: list[str]) -> list[w.TaskStatus]:  # noqa: N802,N805
        _authorised_tasks(ctx, "submit", task_ids)
        out = []
        for i, result in enumerate(_gp(ctx).core.submit(task_ids)):
            if result.task is None:
                raise errors.NotFound(str(result.error), task_id=result.task_id, index=i)
            out.append(convert.task_status(result.task))
        return out

    # ---- reading -------------------------------------------------------------
    @rpc(TASK_IDS, _returns=w.many(w.TaskStatus), _out_variable_name="task", _throws=f.TASK_FAULTS)
    def GetTaskStatus(ctx: Any, task_ids: list[str]) -> list[w.TaskStatus]:  # noqa: N802,N805
        return [convert.task_status(v) for v in _authorised_tasks(ctx, "status", task_ids)]

    @rpc(
        w.many(Unicode(max_len=16)),
        Unicode(max_len=64),
        DateTime,
        DateTime,
        Integer(ge=0),
        Integer(ge=1),
        Unicode(max_len=200),
        Boolean,
        _returns=w.TaskPage,
        _out_variable_name="page",
        _throws=f.TASK_FAULTS,
    )
    def ListTasks(
        ctx: Any,
        states: list[str] | None,
        tool: str | None,  # noqa: N802,N805
        created_after: datetime | None,
        created_before: datetime | None,
        offset: int | None,
        limit: int | None,
        page_token: str | None,
        with_total: bool | None,
    ) -> w.TaskPage:
        gp, ident = _gp(ctx), _caller(ctx)
        gp.policy.require(ident, "list", tool)
        try:
            wanted = tuple(TaskState(s) for s in states or [])
        except ValueError as exc:
            raise InvalidTaskRequest(
                "states", f"known states: {[str(s) for s in TaskState]}"
            ) from exc
        admin = bool(ident.vo) and gp.policy.is_vo_admin(ident, ident.vo or "")
        flt = TaskFilter(
            owner_dn=None if admin else ident.subject_grid,
            owner_vo=ident.vo if admin else None,
            states=wanted,
            tool=tool,
            created_after=created_after,
            created_before=created_before,
        )
        views, token, total = gp.core.list_page(
            flt,
            limit=limit or 100,
            after=page_token or None,
            offset=offset or 0,
            with_total=bool(with_total),
        )
        return w.TaskPage(
            total=total,
            offset=offset or 0,
            next_page_token=token,
            tasks=[convert.task_status(v) for v in views],
        )

    @rpc(
        ONE_TASK, Integer(ge=0), _returns=w.TaskLog, _out_variable_name="log", _throws=f.TASK_FAULTS
    )
    def GetTaskLog(ctx: Any, task_id: str, max_bytes: int | None) -> w.TaskLog:  # noqa: N802,N805
        _authorised_tasks(ctx, "log", [task_id])
        size = min(max_bytes if max_bytes is not None else 16384, MAX_LOG_BYTES)
        return convert.task_log(_gp(ctx).core.log(task_id, size))

    @rpc(ONE_TASK, _returns=w.TaskOutputs, _out_variable_name="result", _throws=f.TASK_FAULTS)
    def RetrieveTaskOutput(ctx: Any, task_id: str) -> w.TaskOutputs:  # noqa: N802,N805
        view = _authorised_tasks(ctx, "retrieve", [task_id])[0]
        gp = _gp(ctx)
        svc = gp.settings.service
        where = gp.task_data.location if gp.task_data is not None else None
        outs = [
            convert.task_output(task_id, o, svc.max_inline_output_bytes, svc.output_url_base, where)
            for o in gp.core.outputs(task_id)
        ]
        return w.TaskOutputs(task_id=task_id, state=str(view.state), outputs=outs)

    # ---- control ------------------------------------------------------------
    @rpc(
        TASK_IDS,
        REASON,
        _returns=w.many(w.TaskStatus),
        _out_variable_name="task",
        _throws=f.TASK_FAULTS,
    )
    def CancelTask(ctx: Any, task_ids: list[str], reason: str | None) -> list[w.TaskStatus]:  # noqa: N802,N805
        why = _reason(reason, "cancelled by the owner")
        return _each(ctx, "cancel", task_ids, lambda core, t: core.cancel(t, why))

    @rpc(
        TASK_IDS,
        REASON,
        _returns=w.many(w.TaskStatus),
        _out_variable_name="task",
        _throws=f.TASK_FAULTS,
    )
    def HoldTask(ctx: Any, task_ids: list[str], reason: str | None) -> list[w.TaskStatus]:  # noqa: N802,N805
        why = _reason(reason, "held by the owner")
        return _each(ctx, "hold", task_ids, lambda core, t: core.hold(t, why))

    @rpc(TASK_IDS, _returns=w.many(w.TaskStatus), _out_variable_name="task", _throws=f.TASK_FAULTS)
    def ReleaseTask(ctx: Any, task_ids: list[str]) -> list[w.TaskStatus]:  # noqa: N802,N805
        return _each(ctx, "release", task_ids, lambda core, t: core.release(t))

    @rpc(TASK_IDS, _returns=w.many(w.TaskStatus), _out_variable_name="task", _throws=f.TASK_FAULTS)
    def ResubmitTask(ctx: Any, task_ids: list[str]) -> list[w.TaskStatus]:  # noqa: N802,N805
        return _each(ctx, "resubmit", task_ids, lambda core, t: core.resubmit(t))

    @rpc(TASK_IDS, _returns=w.many(w.TaskStatus), _out_variable_name="task", _throws=f.TASK_FAULTS)
    def PurgeTask(ctx: Any, task_ids: list[str]) -> list[w.TaskStatus]:  # noqa: N802,N805
        return _each(ctx, "purge", task_ids, lambda core, t: core.purge(t))

    # ---- credentials and service -------------------------------------------------
    @rpc(
        Unicode(min_occurs=1, nillable=False, max_len=16),
        Unicode(min_occurs=1, nillable=False, max_len=128),
        Unicode(max_len=65536),
        _returns=w.DelegationResult,
        _out_variable_name="delegation",
        _throws=[*f.COMMON_FAULTS, f.InvalidRequestFault, f.CredentialFault],
    )
    def DelegateProxy(
        ctx: Any,
        action: str,
        delegation_id: str,  # noqa: N802,N805
        proxy: str | None,
    ) -> w.DelegationResult:
        gp, ident = _gp(ctx), _caller(ctx)
        gp.policy.require(ident, "delegate")
        store = gp.delegations
        if store is None:
            raise f.InternalFault("delegation is not configured on this service")
        if action not in _ACTIONS:
            raise InvalidTaskRequest("action", f"one of {', '.join(_ACTIONS)}")
        if not DELEGATION_ID.match(delegation_id):
            raise InvalidTaskRequest("delegation_id", f"must match {DELEGATION_ID.pattern}")
        result = w.DelegationResult(delegation_id=delegation_id, dn=ident.subject_grid)
        if action == "put-proxy":
            if not proxy:
                raise InvalidTaskRequest("proxy", "the signed proxy chain (PEM) is required")
            result.expires = store.put_proxy(ident, delegation_id, proxy).not_after
            return result
        if action == "renew":
            store.info(ident, delegation_id)  # renewing needs an existing delegation
        result.certificate_request = store.get_request(ident, delegation_id).decode()
        return result

    @rpc(
        Unicode(min_occurs=1, nillable=False, max_len=128),
        Unicode(max_len=1024),
        _returns=w.DelegationResult,
        _out_variable_name="delegation",
        _throws=[*f.COMMON_FAULTS, f.InvalidRequestFault, f.CredentialFault],
    )
    def SetProxyRenewal(
        ctx: Any,
        delegation_id: str,  # noqa: N802,N805
        myproxy_username: str | None,
    ) -> w.DelegationResult:
        """Renew this delegation from the service's MyProxy server before it expires,
        from the credential stored as ``myproxy_username`` (empty: stop renewing)."""
        gp, ident = _gp(ctx), _caller(ctx)
        gp.policy.require(ident, "delegate")
        store, mp = gp.delegations, gp.settings.myproxy
        if store is None:
            raise f.InternalFault("delegation is not configured on this service")
        if not DELEGATION_ID.match(delegation_id):
            raise InvalidTaskRequest("delegation_id", f"must match {DELEGATION_ID.pattern}")
        if mp.host is None or not mp.renew:
            raise InvalidTaskRequest("myproxy_username", "MyProxy renewal is not offered here")
        if myproxy_username and not _MYPROXY_USER.match(myproxy_username):
            raise InvalidTaskRequest("myproxy_username", "printable characters, no line breaks")
        renewal = (
            RenewalRequest(myproxy_username, f"{mp.host}:{mp.port}") if myproxy_username else None
        )
        info = store.ask_renewal(ident, delegation_id, renewal)
        return w.DelegationResult(
            delegation_id=delegation_id,
            dn=ident.subject_grid,
            expires=info.not_after,
            myproxy_username=myproxy_username or None,
        )

    @rpc(_returns=w.ServiceInfo, _out_variable_name="info", _throws=f.COMMON_FAULTS)
    def GetServiceInfo(ctx: Any) -> w.ServiceInfo:  # noqa: N802,N805
        gp, ident = _gp(ctx), _caller(ctx)
        pool = gp.pool_info()
        svc = gp.settings.service
        return w.ServiceInfo(
            version=__version__,
            wms=pool.wms,
            wms_reachable=pool.reachable,
            wms_version=pool.version,
            wms_detail=pool.detail,
            pool_slots=pool.slots,
            caller_dn=ident.subject_grid,
            caller_fqans=[str(q) for q in ident.fqans],
            accounting_group=gp.policy.accounting_group(ident),
            limits=w.Limits(
                max_batch=gp.core.max_batch,
                max_inline_input_bytes=gp.inline_input_cap,
                max_inline_output_bytes=svc.max_inline_output_bytes,
                max_message_bytes=svc.max_message_bytes,
                max_depth=svc.max_depth,
            ),
        )


def _each(ctx: Any, operation: str, task_ids: list[str], act: Any) -> list[w.TaskStatus]:
    """Authorise the whole batch first, then act task by task (the first error stops)."""
    _authorised_tasks(ctx, operation, task_ids)
    core = _gp(ctx).core
    return [convert.task_status(act(core, t)) for t in dict.fromkeys(task_ids)]


OPERATIONS = tuple(ProcessingService.public_methods)
__all__ = ["OPERATIONS", "ProcessingService", "ServiceContext", "owner_of"]


def _request(gp: ServiceContext, ident: Identity, owner: Owner, spec: w.TaskSpec) -> TaskRequest:
    """One task of a RegisterTask batch, checked and authorised (errors name no index:
    the caller adds it)."""
    req = convert.task_request(spec, owner)
    for port, data in req.inline_inputs.items():
        if len(data) > gp.inline_input_cap:
            raise errors.LimitExceeded(
                f"inline input {port!r} exceeds {gp.inline_input_cap} bytes", field="inputs"
            )
    try:
        gp.policy.require(ident, "register", req.tool_request.tool)
    except Denied as exc:
        raise errors.NotAuthorised(str(exc), rule=exc.rule) from exc
    if spec.delegation_id:
        req = _with_delegated_proxy(gp, ident, req, spec.delegation_id)
    return req


def _with_delegated_proxy(
    gp: ServiceContext, ident: Identity, req: TaskRequest, delegation_id: str
) -> TaskRequest:
    """Hand the caller's delegated proxy to the task's job (refused if unknown/expired)."""
    if gp.delegations is None:
        raise InvalidTaskRequest("delegation_id", "delegation is not configured here")
    if not DELEGATION_ID.match(delegation_id):
        raise InvalidTaskRequest("delegation_id", "bad delegation id")
    try:
        path = gp.delegations.path_for(ident, delegation_id)
    except DelegationError as exc:
        raise InvalidTaskRequest("delegation_id", str(exc)) from exc
    return replace(req, x509_proxy=path)
