"""The workflow tracker: per-node state from the schedd, overall state derived, outputs.

Runs beside the task tracker. Each cycle asks the schedd, for every active workflow
at once, for their DAGMan jobs and their node jobs (one queue query and one bounded
history query each: a constant number of schedd queries whatever the number of
workflows or nodes). A node's state is its latest job's while the DAG runs; when the
DAGMan job ends, its directory is retrieved and DAGMan's node status file is the
final word on every node (done, failed, futile). Final outputs (nodes marked last,
else the leaves) are checksummed, copied to the workflow's ``out`` folder and handed
to the output sink (the owner's gateway area) like task outputs. It also recovers
workflows left ``submitting`` by a crash: it adopts their DAGMan job or submits anew.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from gproc.leader import Leadership, SoleLeader
from gproc.models import utcnow
from gproc.staging import checksums
from gproc.workflow_models import WorkflowRow
from gproc.workflows.service import WorkflowService, jobs_of
from gproc.workflows.states import (
    NODE_JOB_TABLE,
    NODE_REPORT_TABLE,
    NodeState,
    WorkflowState,
    can_transition,
    derive,
)
from gproc.workflows.store import StateChanged
from gproc.wrappers.base import JobState, WmsError
from gproc.wrappers.dag_base import DagRun, NodeJob

log = logging.getLogger("gproc.workflows.tracker")
W = WorkflowState
MISSING_LIMIT = 3
HISTORY_MARGIN = timedelta(minutes=1)
RECORD_MARGIN = timedelta(seconds=30)  # a job's history record may lag its last state


@dataclass
class CycleStats:
    workflows: int = 0
    nodes: int = 0
    wms_queries: int = 0
    transitions: int = 0
    finished: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    ms: float = 0.0
    wms_ms: float = 0.0  # of which: waiting for the schedd


class WorkflowTracker:
    def __init__(
        self,
        service: WorkflowService,
        *,
        interval_s: float = 5.0,
        submit_grace_s: float = 60.0,
        leadership: Leadership | None = None,
    ) -> None:
        self.svc = service
        # several replicas on PostgreSQL: only the elected one's cycles run (gproc.leader)
        self.leadership: Leadership = leadership or SoleLeader()
        self.interval_s = interval_s
        self.submit_grace = timedelta(seconds=submit_grace_s)
        self._cycles = 0
        self._missing: dict[str, int] = {}
        self._known: dict[str, dict[str, NodeJob]] = {}  # node jobs seen, per workflow
        self._mark: datetime | None = None  # when the last history read started
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            self._safe_cycle,
            "interval",
            seconds=self.interval_s,
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow(),
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.leadership.release()

    def _safe_cycle(self) -> None:
        try:
            was = self.leadership.is_leader
            if not self.leadership.ensure():
                return  # another replica tracks the workflows; ask again next interval
            if not was:  # a new lead: look everything up as after a restart
                self._cycles, self._mark = 0, None
                self._missing.clear()
                self._known.clear()
            stats = self.cycle()
            if stats.errors:
                log.warning("workflow tracker: %s", "; ".join(stats.errors))
        except Exception:  # the loop must survive anything one cycle meets
            log.exception("workflow tracker cycle failed")

    # ---- one cycle
    def cycle(self) -> CycleStats:
        started = time.perf_counter()
        stats = CycleStats()
        first = self._cycles == 0
        self._cycles += 1
        store = self.svc.store
        active = store.in_states([W.SUBMITTED, W.RUNNING, W.HELD])
        stats.workflows = len(active)
        if active:
            self._follow(active, stats)
        self._recover(store.in_states([W.SUBMITTING]), first, stats)
        stats.ms = (time.perf_counter() - started) * 1000
        return stats

    def _follow(self, rows: Sequence[WorkflowRow], stats: CycleStats) -> None:
        ids = [r.id for r in rows]
        unseen = [r for r in rows if r.id not in self._known]
        # the schedd history is read only back to the previous cycle, except for
        # workflows this tracker has not followed yet (back to their registration)
        since = _since(unseen) if unseen or self._mark is None else self._mark - RECORD_MARGIN
        mark = utcnow()
        try:
            stats.wms_queries += 4
            asked = time.perf_counter()
            runs = self.svc.runner.find(ids, since)
            found = self.svc.runner.node_jobs(ids, since)
            stats.wms_ms += (time.perf_counter() - asked) * 1000
        except WmsError as exc:
            stats.errors.append(f"query: {exc}")
            return
        self._mark = mark
        self._known = {wid: self._known.get(wid, {}) for wid in ids}
        node_jobs: dict[str, list[NodeJob]] = {}
        for wid in ids:
            known = self._known[wid]
            known.update({j.job.job_id: j for j in found.get(wid, [])})
            node_jobs[wid] = sorted(known.values(), key=_submitted)
        for row in rows:
            run = runs.get(row.id)
            if run is None or run.attempt != row.attempt:
                self._note_missing(row, stats)
                continue
            self._missing.pop(row.id, None)
            jobs = node_jobs.get(row.id, [])
            stats.nodes += len(jobs)
            self.svc.store.update_nodes(row, live_node_changes(run, jobs))
            self._apply(row, run, stats)

    def _apply(self, row: WorkflowRow, run: DagRun, stats: CycleStats) -> None:
        target = derive(run.job.state)
        current = W(row.state)
        if target is None or target == current:
            return
        if target in (W.COMPLETED, W.FAILED):
            self._finish(row, run, stats)
        elif target == W.CANCELLED:
            if self._move(
                row,
                W.CANCELLED,
                stats,
                "REMOVED",
                run.job.hold_reason or "",
                finished_at=utcnow(),
                state_reason="the DAGMan job was removed",
            ):
                self._forget(run.job.job_id, stats)
        else:
            self._move(row, target, stats, "DAGMAN", run.job.hold_reason or "")

    def _finish(self, row: WorkflowRow, run: DagRun, stats: CycleStats) -> None:
        """Retrieve the DAG's directory; the workflow ends once its outputs are safe."""
        run_dir = self.svc.dirs.run(row.id, row.attempt)
        try:
            self.svc.runner.retrieve(run.job.job_id, run_dir)
        except WmsError as exc:
            stats.errors.append(f"retrieve {row.id}: {exc}")
            return
        reports = self.svc.runner.node_reports(run_dir)
        self.svc.store.update_nodes(
            row,
            {
                r.node: {"state": str(NODE_REPORT_TABLE[r.status]), "detail": r.detail or None}
                for r in reports
            },
        )
        target = derive(run.job.state, [r.status for r in reports]) or W.FAILED
        try:
            outputs = self._outputs(row, run_dir, target == W.COMPLETED)
        except OSError as exc:
            stats.errors.append(f"outputs of {row.id}: {exc}")
            return
        if target == W.COMPLETED and not self._sink(row, outputs, stats):
            return
        failed = [r.node for r in reports if NODE_REPORT_TABLE[r.status] == NodeState.FAILED]
        reason = None
        if target == W.FAILED:
            reason = (
                ("failed nodes: " + ", ".join(failed))
                if failed
                else (f"DAGMan exited with code {run.job.exit_code}")
            )
        if self._move(
            row,
            target,
            stats,
            "FINISHED",
            reason or "",
            state_reason=reason,
            finished_at=run.job.finished_at or utcnow(),
            outputs_json=json.dumps(outputs),
        ):
            stats.finished += 1
            self._forget(run.job.job_id, stats)
            if target == W.COMPLETED:
                self._tidy(row)

    def _tidy(self, row: WorkflowRow) -> None:
        """A completed workflow keeps its logs and ``out/``; the runs' data files and the
        copies of the owner's proxy go."""
        keep = {"wf.dag", "wf.status", "wf.dag.dagman.out"}
        for run in self.svc.dirs.workflow(row.id).glob("run*"):
            for path in run.iterdir():
                if path.suffix in (".tif", ".json", ".pem") and path.name not in keep:
                    path.unlink(missing_ok=True)
        for carry in self.svc.dirs.workflow(row.id).glob("carry*"):
            shutil.rmtree(carry, ignore_errors=True)

    def _outputs(self, row: WorkflowRow, run_dir: Path, completed: bool) -> list[dict[str, Any]]:
        """Checksummed outputs copied to ``out/``: the final ones, and the others on request."""
        out_dir = self.svc.dirs.outputs(row.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        records = []
        for job in jobs_of(row).jobs:
            if not (job.final or row.keep_intermediate):
                continue
            for port, name in job.outputs.items():
                source = run_dir / name
                if not source.is_file():
                    continue
                target = out_dir / name
                shutil.copyfile(source, target)
                size, adler, sha = checksums(target)
                records.append(
                    {
                        "node": job.dag_name,
                        "port": port,
                        "name": name,
                        "size": size,
                        "adler32": adler,
                        "sha256": sha,
                        "path": str(target),
                        "final": job.final,
                    }
                )
        return records if completed or row.keep_intermediate else []

    def _sink(self, row: WorkflowRow, outputs: list[dict[str, Any]], stats: CycleStats) -> bool:
        sink = self.svc.output_sink
        finals = [o for o in outputs if o["final"]]
        if sink is None or not finals:
            return True
        try:
            stored = sink(row, [dict(o, port=o["name"]) for o in finals])
        except Exception as exc:  # noqa: BLE001 - any sink failure is retried next cycle
            stats.errors.append(f"store outputs of {row.id}: {exc}")
            return False
        for out in outputs:
            if out["name"] in stored:
                out["stored_at"] = stored[out["name"]]
        return True

    def _note_missing(self, row: WorkflowRow, stats: CycleStats) -> None:
        n = self._missing[row.id] = self._missing.get(row.id, 0) + 1
        if n >= MISSING_LIMIT:
            self._missing.pop(row.id, None)
            self._move(
                row,
                W.FAILED,
                stats,
                "JOB_LOST",
                f"DAGMan job {row.job_id} is no longer known to the schedd",
                state_reason="the DAGMan job was lost",
                finished_at=utcnow(),
            )

    def _move(
        self,
        row: WorkflowRow,
        target: WorkflowState,
        stats: CycleStats,
        kind: str,
        detail: str = "",
        **fields: Any,
    ) -> bool:
        if not can_transition(W(row.state), target):
            return False
        try:
            self.svc.store.transition(
                row.id, W(row.state), target, kind=kind, detail=detail, **fields
            )
        except StateChanged:
            return False
        stats.transitions += 1
        return True

    def _forget(self, job_id: str, stats: CycleStats) -> None:
        try:
            self.svc.runner.forget([job_id])
        except WmsError as exc:  # harmless: it lingers until the next forget
            stats.errors.append(f"forget {job_id}: {exc}")

    # ---- recovery
    def _recover(self, rows: Sequence[WorkflowRow], first: bool, stats: CycleStats) -> None:
        cutoff = utcnow() - self.submit_grace
        busy = self.svc.in_flight()
        stale = [r for r in rows if r.id not in busy and (first or _aware(r.updated_at) < cutoff)]
        if not stale:
            return
        try:
            stats.wms_queries += 2
            runs = self.svc.runner.find([r.id for r in stale], _since(stale))
        except WmsError as exc:
            stats.errors.append(f"recovery: {exc}")
            return
        for row in stale:
            run = runs.get(row.id)
            if run is not None and run.attempt == row.attempt and run.job.state == JobState.REMOVED:
                self._forget(run.job.job_id, stats)  # its upload was cut off: it never ran
            elif run is not None and run.attempt == row.attempt:
                if not run.job.spooling:
                    stats.recovered += self.svc.adopt_or_keep(row)
                    continue
                submitted = run.job.submitted_at
                if submitted is None or submitted > cutoff:
                    continue  # an upload may be finishing
                try:  # an upload that was cut off never finishes
                    self.svc.runner.cancel([run.job.job_id], "gproc: DAG upload was interrupted")
                    self.svc.runner.forget([run.job.job_id])
                except WmsError as exc:
                    stats.errors.append(f"recovery cancel {row.id}: {exc}")
                    continue
            self._resend(row, stats)

    def _resend(self, row: WorkflowRow, stats: CycleStats) -> None:
        try:  # a new attempt number makes any older DAGMan job of this workflow stale
            fresh = self.svc.store.transition(
                row.id, W.SUBMITTING, W.SUBMITTING, kind="RESEND", attempt=row.attempt + 1
            )
        except StateChanged:
            return
        self.svc.send(fresh)
        stats.recovered += 1


def live_node_changes(run: DagRun, jobs: Sequence[NodeJob]) -> dict[str, dict[str, Any]]:
    """Per node: the latest job of this run gives state, job id, exit code, hold reason;
    ``runs`` counts the node's jobs over every attempt."""
    cluster = run.job.job_id.split("#")[1].split(".")[0] if "#" in run.job.job_id else ""
    runs = Counter(j.node for j in jobs)
    latest: dict[str, NodeJob] = {}
    for job in jobs:  # oldest first
        if job.dag_job_id == cluster:
            latest[job.node] = job
    changes: dict[str, dict[str, Any]] = {}
    for node, count in runs.items():
        entry: dict[str, Any] = {"runs": count}
        last = latest.get(node)
        if last is not None:
            info = last.job
            entry |= {
                "state": str(NODE_JOB_TABLE[info.state]),
                "job_id": info.job_id,
                "exit_code": info.exit_code,
                "hold_reason": info.hold_reason if info.state == JobState.HELD else None,
            }
        changes[node] = entry
    return changes


def _submitted(job: NodeJob) -> tuple[bool, datetime | None, str]:
    return (job.job.submitted_at is None, job.job.submitted_at, job.job.job_id)


def _since(rows: Sequence[WorkflowRow]) -> datetime:
    """Older history cannot hold jobs of these workflows (with a margin for clock skew):
    the first attempt of each was recorded after its registration."""
    return min(_aware(r.created_at) for r in rows) - HISTORY_MARGIN


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
