"""The workflow core: register, submit, status, log, outputs, cancel, retry, purge, list.

Entry points authenticate and authorise (per tool, for every node); this module keeps
the store and DAGMan consistent with the same protocol as tasks: the intent
(``submitting`` with a new attempt number) is recorded before the DAGMan job is
submitted with ``GprocWorkflowId``/``GprocAttempt`` in its ClassAd; after a failure or
a crash the job is looked up and adopted before anything is submitted again
(:meth:`WorkflowService.adopt_or_keep`, and the tracker's recovery).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gproc.connectors.base import EOTOOL
from gproc.domain import CLIENT_REQUEST_ID_RE, Owner, TaskStateConflict
from gproc.errors import InvalidRequest, WmsUnavailable
from gproc.models import utcnow
from gproc.notify import check_callback
from gproc.staging import InputResolver, check_sandbox_name
from gproc.workflow_models import WorkflowNodeRow, WorkflowRow
from gproc.workflows import silk, structured
from gproc.workflows.catalogue import WorkflowCatalogue, check_dataset_types, expander
from gproc.workflows.compile import CompiledWorkflow, NodeJob, compile_workflow
from gproc.workflows.document import WorkflowDoc, WorkflowError
from gproc.workflows.states import ACTIVE, TERMINAL, NodeState, WorkflowState
from gproc.workflows.store import StateChanged, WorkflowNotFound, WorkflowStore
from gproc.workflows.views import WorkflowView
from gproc.wrappers.base import JobSpec, JobState, WmsError, WmsRejected
from gproc.wrappers.dag_base import DagNode, DagRunner, DagSpec

log = logging.getLogger("gproc.workflows")
W = WorkflowState
MAX_DOCUMENT_BYTES = 1024 * 1024
OutputSink = Callable[[WorkflowRow, list[dict[str, Any]]], Mapping[str, str]]
"""Stores a completed workflow's final outputs (records as in ``outputs_json``) for its
owner; {file name: where stored}. Raising means "try again at the next cycle"."""


@dataclass(frozen=True)
class WorkflowRequest:
    text: str  # SiLK or structured JSON
    owner: Owner
    form: str | None = None  # "silk" | "json"; None: JSON if it starts with "{"
    name: str | None = None
    sources: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    client_request_id: str | None = None
    callback_url: str | None = None
    callback_secret: str | None = None  # made up when a callback has none
    keep_intermediate: bool | None = None
    x509_proxy: Path | None = None


class WorkflowDirs:
    """``<root>/<id>/in`` (workflow inputs), ``run<N>`` (one DAGMan run), ``out``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def workflow(self, wid: str) -> Path:
        return self.root / wid

    def inputs(self, wid: str) -> Path:
        return self.workflow(wid) / "in"

    def run(self, wid: str, attempt: int) -> Path:
        return self.workflow(wid) / f"run{int(attempt)}"

    def outputs(self, wid: str) -> Path:
        return self.workflow(wid) / "out"

    def remove(self, wid: str) -> None:
        shutil.rmtree(self.workflow(wid), ignore_errors=True)


def parse_document(text: str, form: str | None, name: str | None) -> WorkflowDoc:
    if not isinstance(text, str) or len(text.encode("utf-8", "replace")) > MAX_DOCUMENT_BYTES:
        raise WorkflowError(
            f"the document must be text of at most {MAX_DOCUMENT_BYTES} bytes", field="document"
        )
    form = form or ("json" if text.lstrip().startswith("{") else "silk")
    if form == "json":
        doc = structured.parse(text)
        return (
            doc
            if name is None
            else WorkflowDoc(name, doc.nodes, doc.edges, doc.form, doc.keep_intermediate)
        )
    if form == "silk":
        return silk.parse(text, name or "silk")
    raise WorkflowError(f"unknown form {form[:16]!r} (silk or json)", field="form")


def jobs_of(row: WorkflowRow) -> CompiledWorkflow:
    data = json.loads(row.compiled_json)
    jobs = tuple(
        NodeJob(
            **{
                **j,
                "arguments": tuple(j["arguments"]),
                "inputs": tuple(j["inputs"]),
                "parents": tuple(j["parents"]),
                "port_inputs": {k: tuple(v) for k, v in j.get("port_inputs", {}).items()},
            }
        )
        for j in data["jobs"]
    )
    inputs = tuple((a, b) for a, b in data["inputs"])
    return CompiledWorkflow(data["name"], data["form"], inputs, jobs, data["keep_intermediate"])


class WorkflowService:
    """Thread-safe: every state change is a compare-and-set in the store."""

    def __init__(
        self,
        store: WorkflowStore,
        runner: DagRunner,
        dirs: WorkflowDirs,
        resolve_input: InputResolver,
        *,
        max_nodes: int = 1000,
        node_retry: int = 2,
        resolver_for: Callable[[Owner], InputResolver] | None = None,
        output_sink: OutputSink | None = None,
        catalogue: WorkflowCatalogue | None = None,
        max_query_branches: int = 500,
    ) -> None:
        self.store = store
        self.runner = runner
        self.dirs = dirs
        self.resolve_input = resolve_input
        self.resolver_for = resolver_for
        self.output_sink = output_sink
        self.catalogue = catalogue
        self.max_query_branches = max_query_branches
        self.max_nodes = max_nodes
        self.node_retry = node_retry
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    # ---- register
    def compile(self, req: WorkflowRequest) -> CompiledWorkflow:
        """Validate a request without registering anything (authorisation uses ``tools``)."""
        doc = parse_document(req.text, req.form, req.name)
        expand = expander(self.catalogue, req.owner, self.max_query_branches)
        wf = compile_workflow(doc, max_nodes=self.max_nodes, sources=req.sources, expand=expand)
        if self.catalogue is not None:
            check_dataset_types(self.catalogue, req.owner, wf)
        return wf

    def register(
        self,
        req: WorkflowRequest,
        compiled: CompiledWorkflow | None = None,
        resolver: InputResolver | None = None,
    ) -> WorkflowView:
        """Validate, stage the inputs (with ``resolver``, else the owner's) and record."""
        wf = compiled or self.compile(req)
        _check_request(req)
        existing = self.store.by_request(req.owner.dn, req.client_request_id)
        if existing is not None:
            return self._view(existing)
        wid = uuid.uuid4().hex
        secret = req.callback_secret or (secrets.token_urlsafe(32) if req.callback_url else None)
        try:
            self._stage(wid, wf, req.owner, resolver)
            row = WorkflowRow(
                id=wid,
                name=wf.name,
                client_request_id=req.client_request_id,
                owner_dn=req.owner.dn,
                owner_vo=req.owner.vo,
                owner_fqans=json.dumps(list(req.owner.fqans)),
                accounting_group=req.owner.accounting_group,
                x509_proxy=str(req.x509_proxy) if req.x509_proxy else None,
                form=wf.form,
                document=req.text,
                compiled_json=json.dumps(
                    {
                        "name": wf.name,
                        "form": wf.form,
                        "inputs": [list(i) for i in wf.inputs],
                        "jobs": [asdict(j) for j in wf.jobs],
                        "keep_intermediate": wf.keep_intermediate,
                    }
                ),
                keep_intermediate=wf.keep_intermediate
                if req.keep_intermediate is None
                else req.keep_intermediate,
                state=str(W.REGISTERED),
                callback_url=req.callback_url,
                callback_secret=secret,
            )
            nodes = [
                WorkflowNodeRow(
                    workflow_id=wid,
                    name=j.dag_name,
                    node=j.node,
                    branch=j.branch,
                    tool=j.tool,
                    final=j.final,
                    state=str(NodeState.WAITING),
                )
                for j in wf.jobs
            ]
            stored = self.store.insert(row, nodes)
        except BaseException:
            self.dirs.remove(wid)
            raise
        if stored.id != wid:
            self.dirs.remove(wid)
        return self._view(stored, secret=stored.id == wid)

    def _stage(
        self, wid: str, wf: CompiledWorkflow, owner: Owner, resolver: InputResolver | None
    ) -> None:
        resolve = resolver or (
            self.resolver_for(owner) if self.resolver_for else self.resolve_input
        )
        folder = self.dirs.inputs(wid)
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in wf.inputs:
            try:
                resolve(source, folder / check_sandbox_name(name))
            except InvalidRequest as exc:
                raise WorkflowError(
                    f"input {source[:80]!r}: {exc.message}", field="sources"
                ) from None

    # ---- submit
    def submit(self, wid: str, owner: Owner | None = None) -> WorkflowView:
        """Submit a registered workflow as one DAGMan job; anything else is left alone."""
        row = self._owned(wid, owner)
        if row.state != W.REGISTERED:
            return self._view(row)
        self._start_attempt(row, W.REGISTERED)
        return self._view(self.store.get(wid))

    def _start_attempt(
        self, row: WorkflowRow, expect: WorkflowState, carry: Sequence[Path] = ()
    ) -> None:
        with self._lock:
            self._in_flight.add(row.id)
        try:
            try:  # the durable intent comes first
                row = self.store.transition(
                    row.id,
                    expect,
                    W.SUBMITTING,
                    attempt=row.attempt + 1,
                    state_reason=None,
                    job_id=None,
                    finished_at=None,
                )
            except StateChanged as exc:
                raise TaskStateConflict(f"workflow {row.id} changed state meanwhile") from exc
            self.send(row, carry)
        finally:
            with self._lock:
                self._in_flight.discard(row.id)

    def in_flight(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def dag_spec(self, row: WorkflowRow, carry: Sequence[Path] = ()) -> DagSpec:
        wf = jobs_of(row)
        run_dir = self.dirs.run(row.id, row.attempt)
        nodes = tuple(
            DagNode(
                name=j.dag_name,
                job=JobSpec(
                    task_id=row.id,
                    attempt=row.attempt,
                    executable=EOTOOL,
                    arguments=j.arguments,
                    input_files=tuple(run_dir / f for f in j.inputs),
                    output_files=tuple(j.outputs.values()),
                    request_cpus=j.request_cpus,
                    request_memory_mb=j.request_memory_mb,
                    request_disk_mb=j.request_disk_mb,
                    accounting_group=row.accounting_group,
                    x509_proxy=Path(row.x509_proxy) if row.x509_proxy else None,
                ),
                parents=j.parents,
                retry=self.node_retry,
                meta_json=json.dumps(dict(j.meta), sort_keys=True),
            )
            for j in wf.jobs
        )
        files = (EOTOOL, *(self.dirs.inputs(row.id) / n for n, _ in wf.inputs), *carry)
        return DagSpec(row.id, row.attempt, nodes, files, run_dir, row.accounting_group)

    def send(self, row: WorkflowRow, carry: Sequence[Path] = ()) -> None:
        """Submit a SUBMITTING workflow; on failure look it up before anything else."""
        try:
            job_id = self.runner.submit(self.dag_spec(row, carry))
        except WmsRejected as exc:
            if not self.adopt_or_keep(row):
                self._move(
                    row,
                    W.SUBMITTING,
                    W.FAILED,
                    "SUBMIT_REJECTED",
                    str(exc),
                    state_reason=f"rejected by HTCondor: {exc}",
                    finished_at=utcnow(),
                )
            return
        except (WmsError, OSError) as exc:
            log.warning("workflow %s: submission outcome unknown: %s", row.id, exc)
            self.adopt_or_keep(row)  # else the tracker's recovery tries again
            return
        self._move(
            row,
            W.SUBMITTING,
            W.SUBMITTED,
            "SUBMITTED",
            job_id,
            job_id=job_id,
            submitted_at=utcnow(),
        )

    def adopt_or_keep(self, row: WorkflowRow) -> bool:
        """Adopt the DAGMan job of the current attempt, if the schedd has it."""
        try:
            run = self.runner.find([row.id]).get(row.id)
        except WmsError:
            return False
        if run is None or run.attempt != row.attempt or run.job.state == JobState.REMOVED:
            return False  # a removed DAGMan job (e.g. its upload was cut off) never runs
        return self._move(
            row,
            W.SUBMITTING,
            W.SUBMITTED,
            "ADOPTED",
            run.job.job_id,
            job_id=run.job.job_id,
            submitted_at=run.job.submitted_at or utcnow(),
        )

    # ---- reading
    def get(self, wid: str, owner: Owner | None = None) -> WorkflowView:
        return self._view(self._owned(wid, owner))

    def list_workflows(
        self,
        owner: Owner | None,
        states: Sequence[WorkflowState] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[WorkflowView], int]:
        rows, total = self.store.list_workflows(
            owner.dn if owner else None, states, offset, min(limit, 1000)
        )
        return [self._view(r, nodes=False) for r in rows], total

    def log(self, wid: str, owner: Owner | None = None, max_bytes: int = 16384) -> dict[str, Any]:
        """History, DAGMan's log and each node's stdout/stderr (once the DAG has ended)."""
        row = self._owned(wid, owner)
        logs: dict[str, str] = {}
        run_dir = self.dirs.run(wid, row.attempt)
        if row.attempt and run_dir.is_dir():
            for name, path in self.runner.log_files(run_dir).items():
                data = path.read_bytes()[-max_bytes:]
                logs[name] = data.decode("utf-8", errors="replace")
        return {
            "workflow_id": wid,
            "state": row.state,
            "events": [
                {"time": e.time.isoformat(), "kind": e.kind, "state": e.state, "detail": e.detail}
                for e in self.store.events(wid)
            ],
            "logs": logs,
        }

    def outputs(
        self, wid: str, owner: Owner | None = None, intermediate: bool = False
    ) -> list[Any]:
        row = self._owned(wid, owner)
        if W(row.state) not in TERMINAL:
            raise TaskStateConflict(f"workflow {wid} is {row.state}; outputs exist once it ended")
        outs = self._view(row).outputs
        return [o for o in outs if intermediate or o.final]

    # ---- control
    def cancel(
        self, wid: str, owner: Owner | None = None, reason: str = "cancelled by the owner"
    ) -> WorkflowView:
        row = self._owned(wid, owner)
        state = W(row.state)
        if state == W.SUBMITTING:
            raise TaskStateConflict(f"workflow {wid} is being submitted; try again shortly")
        if state not in ACTIVE | {W.REGISTERED}:
            raise TaskStateConflict(f"workflow {wid} is {state}; only unfinished workflows cancel")
        if row.job_id:
            try:
                self.runner.cancel([row.job_id], reason)
                self.runner.forget([row.job_id])
            except WmsError as exc:
                raise WmsUnavailable(str(exc)) from exc
        if not self._move(
            row, state, W.CANCELLED, "CANCELLED", reason, state_reason=reason, finished_at=utcnow()
        ):
            raise TaskStateConflict(f"workflow {wid} changed state meanwhile; retry")
        self.store.update_nodes(
            row,
            {
                n.name: {"state": str(NodeState.REMOVED)}
                for n in self.store.nodes(wid)
                if n.state not in (NodeState.DONE, NodeState.FAILED)
            },
        )
        return self.get(wid)

    def retry(self, wid: str, owner: Owner | None = None) -> WorkflowView:
        """Run a failed or cancelled workflow again: the rescue DAG skips nodes done."""
        row = self._owned(wid, owner)
        state = W(row.state)
        if state not in (W.FAILED, W.CANCELLED):
            raise TaskStateConflict(
                f"workflow {wid} is {state}; only failed or cancelled workflows can be retried"
            )
        carry = self._carry(row)
        self.store.update_nodes(
            row,
            {
                n.name: {"state": str(NodeState.WAITING), "detail": None}
                for n in self.store.nodes(wid)
                if n.state != NodeState.DONE
            },
        )
        self._start_attempt(row, state, carry)
        return self.get(wid)

    def _carry(self, row: WorkflowRow) -> list[Path]:
        """The last run's rescue DAG and the outputs of its nodes that are done."""
        previous = self.dirs.run(row.id, row.attempt)
        if not row.attempt or not previous.is_dir():
            return []
        rescue = self.runner.rescue_file(previous)
        if rescue is None:
            return []
        staged = self.dirs.workflow(row.id) / f"carry{row.attempt + 1}"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        shutil.copyfile(rescue, staged / "wf.dag.rescue001")
        carry = [staged / "wf.dag.rescue001"]
        done = {n.name for n in self.store.nodes(row.id) if n.state == NodeState.DONE}
        for job in jobs_of(row).jobs:
            if job.dag_name in done:
                for name in job.outputs.values():
                    if (previous / name).is_file():
                        shutil.copyfile(previous / name, staged / name)
                        carry.append(staged / name)
        return carry

    def purge(self, wid: str, owner: Owner | None = None) -> WorkflowView:
        row = self._owned(wid, owner)
        state = W(row.state)
        if state not in TERMINAL | {W.REGISTERED}:
            raise TaskStateConflict(f"workflow {wid} is {state}; cancel it before purging")
        if row.job_id:
            try:
                self.runner.forget([row.job_id])
            except WmsError as exc:
                log.warning("workflow %s: could not forget %s: %s", wid, row.job_id, exc)
        if not self._move(row, state, W.PURGED, "PURGED", "purged", outputs_json=None):
            raise TaskStateConflict(f"workflow {wid} changed state meanwhile; retry")
        self.dirs.remove(wid)
        return self.get(wid)

    # ---- helpers
    def _owned(self, wid: str, owner: Owner | None) -> WorkflowRow:
        if not isinstance(wid, str) or not re.fullmatch(r"[0-9a-f]{32}", wid):
            raise WorkflowNotFound(str(wid)[:64])
        row = self.store.get(wid)
        if owner is not None and row.owner_dn != owner.dn:
            raise WorkflowNotFound(wid)  # another user's workflow does not exist for them
        return row

    def _view(self, row: WorkflowRow, secret: bool = False, nodes: bool = True) -> WorkflowView:
        return WorkflowView.from_rows(row, self.store.nodes(row.id) if nodes else [], secret)

    def _move(
        self,
        row: WorkflowRow,
        expect: WorkflowState,
        target: WorkflowState,
        kind: str,
        detail: str = "",
        **fields: Any,
    ) -> bool:
        try:
            self.store.transition(row.id, expect, target, kind=kind, detail=detail, **fields)
            return True
        except StateChanged:
            return False


def _check_request(req: WorkflowRequest) -> None:
    if req.client_request_id is not None and not CLIENT_REQUEST_ID_RE.fullmatch(
        req.client_request_id
    ):
        raise WorkflowError(
            "1-128 of [A-Za-z0-9._:-], starting with a letter or digit", field="client_request_id"
        )
    check_callback(req.callback_url, req.callback_secret)  # one rule for tasks and workflows
