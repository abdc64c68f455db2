"""Registered workflows as OGC API - Processes processes (``workflow.<name>``).

The administrator lists workflow documents in ``[ogc] workflows``; each is parsed and
compiled at start-up (a document that does not compile stops the server with its
error). A job of such a process *is* a gproc workflow, registered and submitted in the
workflow service's registry with the caller's identity and the workflow service's
policy checks (``register`` and ``submit`` for every tool), so the workflow SOAP
service sees and controls it too. Inputs are the start data (gateway references,
``dataset:`` or ``gql:`` sources, as the workflow service accepts); results are the
final outputs by reference (gateway locations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gproc import connectors, errors
from gproc.domain import NotReady, Owner
from gproc.security.identity import Identity
from gproc.services.ogc.describe import RASTER
from gproc.services.ogc.front import JobFailed, NoSuchJob, NoSuchProcess
from gproc.services.ogc.jobs import media_types
from gproc.services.ogc.tables import FINISHED, JobStatus, workflow_status
from gproc.services.workflow.service import WorkflowContext
from gproc.workflows.compile import compile_workflow
from gproc.workflows.document import WorkflowError
from gproc.workflows.service import WorkflowRequest, parse_document
from gproc.workflows.states import ACTIVE, WorkflowState
from gproc.workflows.views import WorkflowView

PREFIX = "workflow."
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
MAX_REFERENCES = 1000
MAX_REFERENCE_CHARS = 4096
JOB_CONTROL = ["async-execute", "dismiss"]
W = WorkflowState


class RegisteredWorkflowError(errors.InvalidRequest):
    """A document listed in ``[ogc] workflows`` is unreadable or does not compile."""

    code = "Client.InvalidRegisteredWorkflow"


class NoSuchInput(errors.InvalidRequest):
    code = "Client.NoSuchInput"


@dataclass(frozen=True)
class Registered:
    """One registered workflow: its document and its start ports (the process inputs)."""

    name: str
    text: str
    inputs: tuple[str, ...]  # "node" (one output port) or "node.port"
    outputs: tuple[str, ...]  # "node.port" of the final nodes
    tools: frozenset[str]
    media: Mapping[str, str] = field(default_factory=dict)  # output -> its media type

    @property
    def pid(self) -> str:
        return PREFIX + self.name

    @property
    def abstract(self) -> str:
        return f"registered workflow {self.name} ({', '.join(sorted(self.tools))})"


def load(documents: Mapping[str, Path], max_nodes: int) -> dict[str, Registered]:
    """Every listed document, compiled with placeholder start data (structure and tools)."""
    out: dict[str, Registered] = {}
    for name, path in documents.items():
        if not _NAME.match(name):
            raise RegisteredWorkflowError(f"[ogc] workflows: bad name {name[:60]!r}", field=name)
        try:
            text = Path(path).read_text()
            doc = parse_document(text, None, name)
            inputs = tuple(
                n.name if len(n.outputs) == 1 else f"{n.name}.{p}"
                for n in doc.nodes
                if n.is_start
                for p in n.outputs
            )
            wf = compile_workflow(doc, max_nodes=max_nodes, sources=dict.fromkeys(inputs, "x"))
        except (OSError, UnicodeDecodeError, WorkflowError, errors.GprocError) as exc:
            raise RegisteredWorkflowError(
                f"[ogc] workflows: {name} ({path}): {exc}", field=name
            ) from exc
        if not inputs:
            raise RegisteredWorkflowError(f"[ogc] workflows: {name} has no start data", field=name)
        media = {
            f"{j.node}.{p}": media_types(connectors.get_connector(j.tool)).get(p, RASTER)
            for j in wf.jobs
            if j.final
            for p in j.outputs
        }
        out[name] = Registered(name, text, inputs, tuple(sorted(media)), wf.tools, media)
    return out


class WorkflowProcesses:
    """The ``workflow.<name>`` processes and their jobs, over the workflow service."""

    def __init__(self, wf: WorkflowContext, registered: Mapping[str, Registered]) -> None:
        self.wf = wf
        self.registered = dict(registered)

    # ---- processes
    def get(self, pid: str) -> Registered:
        found = self.registered.get(pid.removeprefix(PREFIX)) if pid.startswith(PREFIX) else None
        if found is None:
            raise NoSuchProcess(f"no process {pid[:80]!r}", field="processID")
        return found

    def summaries(self, base: str) -> list[dict[str, Any]]:
        return [_summary(r, base) for r in self.registered.values()]

    def describe(self, pid: str, base: str) -> dict[str, Any]:
        r = self.get(pid)
        ref = {"type": "string", "description": "gateway path, dataset:<id> or gql:<query>"}
        refs = {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1}]}
        return {
            **_summary(r, base),
            "inputs": {
                i: {"title": i, "minOccurs": 1, "maxOccurs": 1, "schema": refs} for i in r.inputs
            },
            "outputs": {
                o: {"title": o, "schema": {"type": "string", "format": "uri"}} for o in r.outputs
            },
        }

    # ---- jobs
    def start(self, ident: Identity, owner: Owner, pid: str, body: Any) -> WorkflowView:
        """Register and submit the workflow, as RegisterWorkflow with ``submit`` does."""
        r = self.get(pid)
        gp = self.wf
        req = WorkflowRequest(text=r.text, owner=owner, name=r.name, sources=_sources(r, body))
        compiled = gp.core.compile(req)
        for op in ("register", "submit"):
            for tool in sorted(compiled.tools):
                gp.policy.require(ident, op, tool)
        resolver = gp.resolver_for(owner) if gp.resolver_for else gp.base_resolver
        view = gp.core.register(req, compiled, resolver)
        return gp.core.submit(view.id)

    def job_of(self, ident: Identity, operation: str, jid: str) -> WorkflowView | None:
        """The caller's workflow ``jid``, or None if there is none they may see."""
        try:
            view = self.wf.core.get(jid)
        except errors.NotFound:
            return None
        if not self.wf.policy.may_act_on(ident, view.owner_dn, view.owner_vo):
            return None
        for tool in view.tools:
            self.wf.policy.require(ident, operation, tool)
        return view

    def dismiss(self, ident: Identity, view: WorkflowView) -> WorkflowView:
        """Cancel an unfinished workflow; a finished one is purged (its results go)."""
        if view.state in ACTIVE | {W.REGISTERED}:
            return self.wf.core.cancel(view.id, reason="dismissed through OGC API - Processes")
        for tool in view.tools:
            self.wf.policy.require(ident, "purge", tool)
        return view if view.state == W.PURGED else self.wf.core.purge(view.id)

    def results(self, view: WorkflowView) -> dict[str, Any]:
        """The final outputs by reference, ``node.port`` -> {href} (a list for branches)."""
        status = workflow_status(view.state)
        if status == JobStatus.DISMISSED:
            raise NoSuchJob(f"job {view.id} was dismissed", task_id=view.id)
        if status == JobStatus.FAILED:
            raise JobFailed(view.state_reason or "the workflow failed", task_id=view.id)
        if status != JobStatus.SUCCESSFUL:
            raise NotReady(f"job {view.id} is {status}; results exist once it has succeeded")
        node_of = {n.name: n.node for n in view.nodes}
        out: dict[str, list[dict[str, str]]] = {}
        for o in self.wf.core.outputs(view.id):
            if not o.stored_at or self.wf.task_data is None:
                raise errors.Unavailable(f"job {view.id}: outputs are not stored yet")
            href = self.wf.task_data.location(o.stored_at)
            key = f"{node_of.get(o.node, o.node)}.{o.port}"
            out.setdefault(key, []).append({"href": href, "title": o.name})
        return {k: v[0] if len(v) == 1 else v for k, v in out.items()}

    def list(
        self, owner: Owner, statuses: tuple[JobStatus, ...], offset: int, limit: int
    ) -> tuple[list[WorkflowView], int]:
        states = [s for s in W if workflow_status(s) in statuses] if statuses else []
        if limit <= 0:
            return [], self.wf.core.list_workflows(owner, states, 0, 1)[1]
        return self.wf.core.list_workflows(owner, states, offset, limit)


def status_info(view: WorkflowView, base: str) -> dict[str, Any]:
    """The statusInfo document of a workflow job."""
    status = workflow_status(view.state)
    url = f"{base}/jobs/{view.id}"
    links = [{"href": url, "rel": "self", "type": "application/json", "title": "status"}]
    if status == JobStatus.SUCCESSFUL:
        links.append(
            {
                "href": f"{url}/results",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                "type": "application/json",
            }
        )
    times = {
        "created": view.created_at,
        "started": view.submitted_at,
        "finished": view.finished_at,
        "updated": view.updated_at,
    }
    doc: dict[str, Any] = {
        "jobID": view.id,
        "processID": PREFIX + view.name,
        "type": "process",
        "status": str(status),
        "message": view.state_reason or str(view.state),
        **{k: v.isoformat() for k, v in times.items() if v is not None},
        "progress": 100 if status in FINISHED else 0,
        "links": links,
    }
    return doc


def _summary(r: Registered, base: str) -> dict[str, Any]:
    return {
        "id": r.pid,
        "title": r.name,
        "description": r.abstract,
        "version": "1.0.0",
        "jobControlOptions": JOB_CONTROL,
        "outputTransmission": ["reference"],
        "links": [
            {"href": f"{base}/processes/{r.pid}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/processes/{r.pid}/execution",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "type": "application/json",
            },
        ],
    }


def _sources(r: Registered, body: Any) -> dict[str, list[str]]:
    """Execute ``inputs`` -> the workflow's start sources (references only, never inline)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
        raise errors.InvalidRequest("the body must be an object with inputs", field="inputs")
    given: dict[str, Any] = body["inputs"]
    for name in given:
        if name not in r.inputs:
            raise NoSuchInput(f"{r.pid} has no input {str(name)[:40]!r}", field=f"inputs.{name}")
    out: dict[str, list[str]] = {}
    for name in r.inputs:
        if name not in given:
            raise errors.InvalidRequest(f"input {name} is required", field=f"inputs.{name}")
        value = given[name]
        items = value if isinstance(value, list) else [value]
        if not items or len(items) > MAX_REFERENCES:
            raise errors.LimitExceeded(
                f"input {name}: 1 to {MAX_REFERENCES} references", field=f"inputs.{name}"
            )
        refs: list[str] = []
        for item in items:
            ref = item.get("href") if isinstance(item, dict) else item
            if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REFERENCE_CHARS:
                raise errors.InvalidRequest(
                    f"input {name}: a reference (string or {{href}}) is expected",
                    field=f"inputs.{name}",
                )
            if ref.startswith("inline:"):
                raise errors.InvalidRequest(
                    f"input {name}: not a reference", field=f"inputs.{name}"
                )
            refs.append(ref)
        out[name] = refs
    return out


def build_workflow_processes(
    wf: WorkflowContext, documents: Mapping[str, Path]
) -> WorkflowProcesses | None:
    """The registered workflows' processes (None when none are listed); raises
    :class:`RegisteredWorkflowError` if a document does not compile."""
    if not documents:
        return None
    return WorkflowProcesses(wf, load(documents, wf.settings.workflow.max_nodes))
