"""The task life cycle: register, submit, status, log, retrieve, cancel, hold,
release, resubmit, purge. Entry points authenticate and authorise; this module
keeps the registry and the WMS consistent.
"""

from __future__ import annotations

import errno
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from gproc import connectors, errors, task_notify
from gproc.connectors.base import JobPlan, ToolRequest
from gproc.domain import (
    CLIENT_REQUEST_ID_RE,
    GprocError,
    InvalidTaskRequest,
    LimitExceeded,
    NotReady,
    OutputFile,
    TaskPlan,
    TaskPurged,
    TaskRequest,
    TaskResult,
    TaskStateConflict,
    TaskView,
    WmsUnavailableError,
)
from gproc.leader import ClaimKeeper, default_replica_name
from gproc.models import TaskRow, utcnow
from gproc.registry import ConcurrentChange, Registry, TaskFilter, TaskNotFound
from gproc.staging import TaskDirs, stage_inputs, tail
from gproc.states import ACTIVE, TERMINAL, TaskState
from gproc.task_data import TaskData
from gproc.wrappers.base import JobSpec, WmsError, WmsRejected, WorkloadManager

log = logging.getLogger("gproc.lifecycle")
S = TaskState
STDOUT, STDERR = "_gproc.out", "_gproc.err"
PENDING_HOLD = "pending.hold."  # + task id -> hold reason (meta): hold once inputs are up
PENDING_FORGET = "pending.forget."  # + task id -> job id (meta): forget until it succeeds
WMS_DOWN = "WMS unreachable since "
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})


class TaskService:
    """The core API. Thread-safe: every state change is a compare-and-set in the registry."""

    def __init__(
        self,
        registry: Registry,
        wms: WorkloadManager,
        task_dirs: TaskDirs,
        task_data: TaskData,
        *,
        max_batch: int = 1000,
        max_inline: int = 16 << 20,
        replica: str | None = None,
        claim_lease_s: float = 60.0,
    ) -> None:
        self.registry = registry
        self.wms = wms
        self.dirs = task_dirs
        # where inputs come from (read with the owner's rights) and outputs go
        self.task_data = task_data
        self.max_batch = max_batch
        self.max_inline = max_inline
        # this replica's name in task claims; several replicas may share the registry
        self.replica = replica or default_replica_name()
        self.claims = ClaimKeeper(registry, self.replica, claim_lease_s)

    # ---- register -------------------------------------------------------
    def register(self, requests: Sequence[TaskRequest]) -> list[TaskView]:
        """Validate, stage inputs and record tasks; all or none. Idempotent per request
        id. A refused request's error names its index in the batch; a store that
        cannot write (disk full, read-only database) raises StorageUnavailable."""
        self._check_batch(requests)
        rows: list[TaskRow] = []
        callbacks: dict[str, tuple[str, str]] = {}
        try:
            with _storage_errors():
                for i, req in enumerate(requests):
                    try:
                        task_notify.check(req.callback_url, req.callback_secret)
                        rows.append(self._prepare(req))
                    except GprocError as exc:
                        raise exc.at(index=i) from exc
                    if req.callback_url and req.callback_secret:
                        callbacks[rows[-1].id] = (req.callback_url, req.callback_secret)
                stored = self.registry.insert_tasks(rows, callbacks)
        except BaseException:
            for row in rows:
                self.dirs.remove(row.id)
            raise
        kept = {r.id for r in stored}
        for row in rows:
            if row.id not in kept:  # an idempotent replay: drop what we staged
                self.dirs.remove(row.id)
        return [TaskView.from_row(r) for r in stored]

    def _prepare(self, req: TaskRequest) -> TaskRow:
        plan = plan_request(req.tool_request)
        _check_request_id(req.client_request_id)
        self.task_data.check_request(req.owner, req.tool_request)  # e.g. dataset input types
        task_id = uuid.uuid4().hex
        try:
            stage_inputs(
                self.dirs.inputs(task_id),
                plan.staging,
                _inline_by_source(req),
                self.task_data.resolver_for(req.owner),
                self.max_inline,
            )
            row = TaskRow(
                id=task_id,
                client_request_id=req.client_request_id,
                owner_dn=req.owner.dn,
                owner_vo=req.owner.vo,
                owner_fqans=json.dumps(list(req.owner.fqans)),
                tool=req.tool_request.tool,
                request_json=_request_record(req),  # read by the catalogue's provenance
                plan_json=TaskPlan.of(plan).to_json(),
                accounting_group=req.owner.accounting_group,
                x509_proxy=str(req.x509_proxy) if req.x509_proxy else None,
                state=str(S.REGISTERED),
                wms=self.wms.name,
            )
            row.job_description = self.wms.describe(self.job_spec(row))
            return row
        except BaseException:
            self.dirs.remove(task_id)
            raise

    # ---- submit ---------------------------------------------------------
    def submit(self, task_ids: Sequence[str]) -> list[TaskResult]:
        """Submit registered tasks as one WMS batch. Already-submitted tasks are left
        alone (never submitted twice); the result says each task's state."""
        self._check_batch(task_ids)
        rows = self.registry.get_many(task_ids)
        results: dict[str, TaskResult] = {}
        todo: list[str] = []
        for i, tid in enumerate(task_ids):
            if tid in results or tid in todo:
                continue
            row = rows.get(tid)
            if row is None:
                results[tid] = TaskResult(tid, error=TaskNotFound(tid).at(index=i))
            elif row.state != S.REGISTERED:
                results[tid] = TaskResult(tid, task=TaskView.from_row(row))
            else:
                todo.append(tid)
        if todo:
            self._submit_registered(todo)
        fresh = self.registry.get_many(todo)
        for tid in todo:
            results[tid] = TaskResult(tid, task=TaskView.from_row(fresh[tid]))
        return [results[t] for t in dict.fromkeys(task_ids)]

    def _submit_registered(self, task_ids: list[str]) -> None:
        # the durable intent comes first (submitting, a new attempt, this replica's
        # claim): a crash from here on is recovered by lookup once the claim expires.
        # A task another replica claimed meanwhile is left to it.
        claimed = self.registry.claim_registered(task_ids, self.replica, self.claims.until())
        if claimed:
            self._send_claimed(claimed)

    def resend(self, rows: Sequence[TaskRow]) -> list[str]:
        """Submit ``submitting`` tasks again as a new attempt (the tracker's recovery,
        after a lookup found no job of their attempt); a task claimed meanwhile by
        another replica, or already resent, is skipped. Returns the ids resent."""
        claimed = self.registry.claim_submitting(
            {r.id: r.attempt for r in rows}, self.replica, self.claims.until()
        )
        if claimed:
            self._send_claimed(claimed)
        return claimed

    def _send_claimed(self, claimed: list[str]) -> None:
        with self.claims.hold(claimed):
            try:
                rows = self.registry.get_many(claimed)
                self.send_to_wms([rows[t] for t in claimed])
            finally:
                self.registry.release_claims(claimed, self.replica)

    def send_to_wms(self, rows: Sequence[TaskRow]) -> None:
        """Submit SUBMITTING tasks; on failure look them up before anything else."""
        try:
            submitted = self.wms.submit([self.job_spec(r) for r in rows])
        except WmsRejected as exc:
            ids = [r.id for r in rows]
            adopted = self.adopt_or_keep(rows)
            rest = [t for t in ids if t not in adopted]
            if rest:
                self.registry.transition_many(
                    rest,
                    S.SUBMITTING,
                    S.FAILED,
                    kind="SUBMIT_REJECTED",
                    detail=str(exc),
                    state_reason=f"rejected by the WMS: {exc}",
                    finished_at=utcnow(),
                )
            return
        except WmsError as exc:
            # unknown outcome: the tracker's recovery looks the tasks up and
            # adopts or resubmits them once the WMS answers; meanwhile they say why
            adopted = self.adopt_or_keep(rows)
            self.note_wms_down([r for r in rows if r.id not in adopted], exc)
            return
        now = utcnow()
        # one transaction for the batch; a task already adopted by a concurrent
        # recovery is skipped
        self.registry.transition_each(
            {
                job.task_id: {"job_id": job.job_id, "submitted_at": now, "state_reason": None}
                for job in submitted
            },
            S.SUBMITTING,
            S.SUBMITTED,
            details={job.task_id: job.job_id for job in submitted},
        )

    def note_wms_down(self, rows: Sequence[TaskRow], exc: Exception) -> None:
        """Tasks left ``submitting`` by an unreachable WMS say so: "WMS unreachable
        since <first failure>: <the latest error>" (an event records the first)."""
        now = utcnow().isoformat(timespec="seconds")
        changes: dict[str, dict[str, Any]] = {}
        for row in rows:
            reason = row.state_reason or ""
            known = reason.startswith(WMS_DOWN)
            since = reason[len(WMS_DOWN) :].split(": ", 1)[0] if known else now
            changes[row.id] = {"state_reason": f"{WMS_DOWN}{since}: {exc}"[:1000]}
        fresh = [r.id for r in rows if not (r.state_reason or "").startswith(WMS_DOWN)]
        for tid in set(changes) - set(fresh):
            self.registry.update_fields(tid, S.SUBMITTING, **changes[tid])
        if fresh:
            self.registry.transition_each(
                {t: changes[t] for t in fresh},
                S.SUBMITTING,
                S.SUBMITTING,
                kind="WMS_UNREACHABLE",
                details={t: str(exc)[:500] for t in fresh},
            )

    def adopt_or_keep(self, rows: Sequence[TaskRow]) -> set[str]:
        """Adopt WMS jobs of the current attempt; returns the task ids adopted."""
        try:
            found = self.wms.find_jobs([r.id for r in rows])
        except WmsError:
            return set()
        adopted: set[str] = set()
        for row in rows:
            job = found.get(row.id)
            if job is None or job.attempt != row.attempt:
                continue
            try:
                self.registry.transition(
                    row.id,
                    S.SUBMITTING,
                    S.SUBMITTED,
                    kind="ADOPTED",
                    detail=job.job_id,
                    job_id=job.job_id,
                    submitted_at=job.submitted_at or utcnow(),
                    state_reason=None,
                )
                adopted.add(row.id)
            except ConcurrentChange:
                pass
        return adopted

    def in_flight_ids(self) -> set[str]:
        """Tasks this process is submitting right now (their claims are being renewed)."""
        return self.claims.held()

    def job_spec(self, row: TaskRow) -> JobSpec:
        plan = TaskPlan.from_json(row.plan_json)
        in_dir = self.dirs.inputs(row.id)
        return JobSpec(
            task_id=row.id,
            attempt=max(row.attempt, 1),
            executable=plan.executable,
            arguments=plan.arguments,
            input_files=tuple(in_dir / n for n in plan.input_files()),
            output_files=tuple(plan.outputs.values()),
            request_cpus=plan.request_cpus,
            request_memory_mb=plan.request_memory_mb,
            request_disk_mb=plan.request_disk_mb,
            accounting_group=row.accounting_group,
            x509_proxy=Path(row.x509_proxy) if row.x509_proxy else None,
        )

    # ---- reading --------------------------------------------------------
    def status(self, task_ids: Iterable[str]) -> list[TaskResult]:
        ids = list(dict.fromkeys(task_ids))
        self._check_batch(ids)
        rows = self.registry.records(ids)
        return [
            TaskResult(t, task=TaskView.from_row(rows[t]))
            if t in rows
            else TaskResult(t, error=TaskNotFound(t).at(index=i))
            for i, t in enumerate(ids)
        ]

    def get(self, task_id: str) -> TaskView:
        return TaskView.from_row(self.registry.get(task_id))

    def list_tasks(
        self, flt: TaskFilter, offset: int = 0, limit: int = 100
    ) -> tuple[list[TaskView], int]:
        rows, total = self.registry.list_tasks(flt, offset, min(limit, self.max_batch))
        return [TaskView.from_row(r) for r in rows], total

    def list_page(
        self,
        flt: TaskFilter,
        *,
        limit: int = 100,
        after: str | None = None,
        offset: int = 0,
        with_total: bool = False,
    ) -> tuple[list[TaskView], str | None, int | None]:
        """A keyset page (see ``Registry.page``): views, the next page's token, the
        total when asked for."""
        p = self.registry.page(
            flt, limit=min(limit, self.max_batch), after=after, offset=offset, with_total=with_total
        )
        return [TaskView.from_row(r) for r in p.rows], p.next_token, p.total

    def log(self, task_id: str, max_bytes: int = 16384) -> dict[str, Any]:
        """Task history, and the tails of the job's stdout/stderr once retrieved."""
        row = self.registry.get(task_id)
        out = self.dirs.outputs(task_id)
        return {
            "task_id": task_id,
            "state": row.state,
            "events": [
                {"time": e.time.isoformat(), "kind": e.kind, "state": e.state, "detail": e.detail}
                for e in self.registry.events(task_id)
            ],
            "stdout": tail(out / STDOUT, max_bytes),
            "stderr": tail(out / STDERR, max_bytes),
        }

    def outputs(self, task_id: str) -> list[OutputFile]:
        row = self.registry.get(task_id)
        if row.state == S.PURGED:
            when = row.updated_at.isoformat(timespec="seconds")
            raise TaskPurged(f"task {task_id} was purged at {when}; its outputs are gone")
        if S(row.state) not in TERMINAL:
            raise NotReady(f"task {task_id} is {row.state}; outputs exist once it has ended")
        return list(TaskView.from_row(row).outputs)

    # ---- control --------------------------------------------------------
    def cancel(self, task_id: str, reason: str = "cancelled by the owner") -> TaskView:
        row = self.registry.get(task_id)
        state = S(row.state)
        if state == S.SUBMITTING:
            raise TaskStateConflict(f"task {task_id} is being submitted; try again shortly")
        if state not in ACTIVE | {S.REGISTERED}:
            raise TaskStateConflict(f"task {task_id} is {state}; only unfinished tasks cancel")
        if row.job_id:
            self._wms_call(self.wms.cancel, [row.job_id], reason)
        self._move(row, state, S.CANCELLED, reason, finished_at=utcnow())
        self.registry.delete_meta([PENDING_HOLD + task_id])
        return self.get(task_id)

    def hold(self, task_id: str, reason: str = "held by the owner") -> TaskView:
        """Hold a queued or running task. Right after submission the WMS may still be
        receiving the inputs (it would drop a hold then): the task is ``held`` at once
        and the tracker applies the hold in the WMS as soon as the upload has ended."""
        row = self.registry.get(task_id)
        state = S(row.state)
        if state not in (S.SUBMITTED, S.IDLE, S.RUNNING) or not row.job_id:
            raise TaskStateConflict(f"task {task_id} is {state}; only queued or running tasks hold")
        try:
            info = self.wms.query([row.job_id]).get(row.job_id)
        except WmsError as exc:
            raise WmsUnavailableError(str(exc)) from exc
        if info is not None and info.spooling:
            self.registry.set_meta(PENDING_HOLD + task_id, reason)
            try:
                self._move(row, state, S.HELD, reason, hold_reason=reason, hold_code=None)
            except TaskStateConflict:
                self.registry.delete_meta([PENDING_HOLD + task_id])
                raise
            self.registry.add_event(task_id, "HOLD_PENDING", "inputs still uploading", "held")
            return self.get(task_id)
        self._wms_call(self.wms.hold, [row.job_id], reason)
        self._move(row, state, S.HELD, reason, hold_reason=reason)
        return self.get(task_id)

    def hold_pending(self, task_id: str) -> bool:
        """True while a hold waits for the task's inputs to finish uploading."""
        return self.registry.get_meta(PENDING_HOLD + task_id) is not None

    def release(self, task_id: str) -> TaskView:
        row = self.registry.get(task_id)
        if row.state != S.HELD or not row.job_id:
            raise TaskStateConflict(f"task {task_id} is {row.state}; only held tasks release")
        if self.hold_pending(task_id):  # the WMS never held it: just drop the intent
            self.registry.delete_meta([PENDING_HOLD + task_id])
        else:
            self._wms_call(self.wms.release, [row.job_id])
        self._move(row, S.HELD, S.IDLE, "released", hold_reason=None, hold_code=None)
        return self.get(task_id)

    def resubmit(self, task_id: str) -> TaskView:
        """A failed or cancelled task runs again as a new attempt with the same inputs."""
        row = self.registry.get(task_id)
        state = S(row.state)
        if state not in (S.FAILED, S.CANCELLED):
            raise TaskStateConflict(
                f"task {task_id} is {state}; only failed or cancelled tasks can be resubmitted"
            )
        self._forget(row)
        self._move(
            row,
            state,
            S.REGISTERED,
            "resubmit",
            job_id=None,
            exit_code=None,
            hold_reason=None,
            hold_code=None,
            outputs_json=None,
            finished_at=None,
            started_at=None,
            retrieved_at=None,
        )
        self.submit([task_id])
        return self.get(task_id)

    def purge(self, task_id: str) -> TaskView:
        """Forget a finished task's job and data; the registry keeps its history."""
        row = self.registry.get(task_id)
        state = S(row.state)
        if state not in TERMINAL | {S.REGISTERED}:
            raise TaskStateConflict(f"task {task_id} is {state}; cancel it before purging")
        self._forget(row)
        self._move(row, state, S.PURGED, "purged", outputs_json=None)
        self.dirs.remove(task_id)
        return self.get(task_id)

    # ---- helpers --------------------------------------------------------
    def _move(
        self, row: TaskRow, expect: TaskState, target: TaskState, detail: str, **fields: Any
    ) -> None:
        try:
            self.registry.transition(
                row.id, expect, target, detail=detail, state_reason=detail, **fields
            )
        except ConcurrentChange as exc:
            raise TaskStateConflict(f"task {row.id} changed state meanwhile; retry") from exc

    def _forget(self, row: TaskRow) -> None:
        """Let the old job leave the queue. Not fatal: a newer attempt number makes an
        old job irrelevant, and a lingering finished job harms nothing."""
        if not row.job_id:
            return
        try:
            self.wms.forget([row.job_id])
        except WmsError as exc:  # the tracker retries it until it succeeds
            log.warning("task %s: could not forget job %s: %s", row.id, row.job_id, exc)
            self.registry.set_meta(PENDING_FORGET + row.id, row.job_id)

    @staticmethod
    def _wms_call(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except WmsError as exc:
            raise WmsUnavailableError(str(exc)) from exc

    def _check_batch(self, items: Sequence[Any]) -> None:
        if not items:
            raise InvalidTaskRequest("batch", "at least one item is required")
        if len(items) > self.max_batch:
            raise LimitExceeded(f"batch of {len(items)} exceeds the limit of {self.max_batch}")


def plan_request(request: ToolRequest) -> JobPlan:
    """The connector's plan; the connectors' errors (InvalidRequest of the error root)
    become the core's InvalidTaskRequest, naming the same field."""
    try:
        return connectors.get_connector(request.tool).plan(request)
    except errors.InvalidRequest as exc:
        raise InvalidTaskRequest(exc.field or "tool", exc.message) from exc


def _check_request_id(value: str | None) -> None:
    if value is not None and not CLIENT_REQUEST_ID_RE.fullmatch(value):
        raise InvalidTaskRequest(
            "client_request_id", "1-128 of [A-Za-z0-9._:-], starting with a letter or digit"
        )


def _request_record(req: TaskRequest) -> str:
    tr = req.tool_request
    record = {"tool": tr.tool, "inputs": dict(tr.inputs), "params": dict(tr.params)}
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=list)


def _inline_by_source(req: TaskRequest) -> dict[str, bytes]:
    """Inline contents keyed by the source reference their port names (the plan's
    staging pairs name sources, not ports)."""
    out: dict[str, bytes] = {}
    for port, data in req.inline_inputs.items():
        source = req.tool_request.inputs.get(port)
        if source is None:
            continue
        if not isinstance(source, str):
            raise InvalidTaskRequest(f"inputs.{port}", "inline content is for single-file inputs")
        out[source] = data
    return out


@contextmanager
def _storage_errors() -> Iterator[None]:
    """The service's own storage refusing a write becomes StorageUnavailable."""
    try:
        yield
    except OperationalError as exc:
        cause = str(exc.orig) if exc.orig is not None else str(exc)
        raise errors.StorageUnavailable(f"the task registry refused the write: {cause}") from exc
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        raise errors.StorageUnavailable(f"the task directories refused the write: {exc}") from exc
