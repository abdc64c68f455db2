"""The tracker keeps every active task's state fresh.

Each cycle reads new entries of the WMS event log (prompt, no schedd query);
every ``reconcile_every`` cycles it runs one reconciling status query for all
active jobs (a constant number of schedd queries, whatever the task count), as
HTCondor recommends for scalable job tracking. It also stages out finished
jobs and recovers tasks left ``submitting`` by a crash or a WMS outage: it
looks their task ids up in the WMS and adopts what it finds before it ever
submits again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from gproc.lifecycle import TaskService
from gproc.models import TaskRow, utcnow
from gproc.registry import ConcurrentChange
from gproc.staging import checksums
from gproc.states import ACTIVE, TaskState, can_transition, task_state_for
from gproc.wrappers.base import JobInfo, JobState, WmsError

log = logging.getLogger("gproc.tracker")
S = TaskState
CURSOR_KEY = "tracker.event_cursor"
MISSING_LIMIT = 3  # reconciles a job may be absent from the WMS before the task fails


@dataclass
class CycleStats:
    events: int = 0
    wms_queries: int = 0
    transitions: int = 0
    staged_out: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    ms: float = 0.0


class Tracker:
    def __init__(
        self,
        service: TaskService,
        *,
        interval_s: float = 5.0,
        reconcile_every: int = 6,
        submit_grace_s: float = 60.0,
    ) -> None:
        self.svc = service
        self.interval_s = interval_s
        self.reconcile_every = reconcile_every
        self.submit_grace = timedelta(seconds=submit_grace_s)
        self._cycles = 0
        self._missing: dict[str, int] = {}
        self._scheduler: BackgroundScheduler | None = None

    # ---- running --------------------------------------------------------
    def start(self) -> None:
        """Run cycles in a background thread (one at a time, late runs coalesced)."""
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

    def _safe_cycle(self) -> None:
        try:
            stats = self.cycle()
            if stats.errors:
                log.warning("tracker cycle: %s", "; ".join(stats.errors))
        except Exception:  # the loop must survive anything one cycle meets
            log.exception("tracker cycle failed")

    # ---- one cycle ------------------------------------------------------
    def cycle(self, *, reconcile: bool | None = None) -> CycleStats:
        started = time.perf_counter()
        stats = CycleStats()
        first = self._cycles == 0
        self._cycles += 1
        active = self.svc.registry.in_states(ACTIVE)
        by_job = {r.job_id: r for r in active if r.job_id}
        self._follow_events(by_job, stats)
        due = (
            reconcile
            if reconcile is not None
            else (first or self._cycles % self.reconcile_every == 0 or not self._has_event_log)
        )
        if due and by_job:
            self._reconcile(by_job, stats)
        self._recover_submitting([r for r in active if r.state == S.SUBMITTING], first, stats)
        stats.ms = (time.perf_counter() - started) * 1000
        return stats

    @property
    def _has_event_log(self) -> bool:
        return self.svc.registry.get_meta(CURSOR_KEY) is not None

    def _follow_events(self, by_job: dict[str, TaskRow], stats: CycleStats) -> None:
        cursor = self.svc.registry.get_meta(CURSOR_KEY)
        try:
            events, new_cursor = self.svc.wms.read_events(cursor)
        except WmsError as exc:
            stats.errors.append(f"event log: {exc}")
            return
        by_cluster = {_cluster_proc(j): r for j, r in by_job.items()}
        for ev in events:
            row = by_job.get(ev.job_id or "") or by_cluster.get((ev.cluster, ev.proc))
            if row is None or ev.state is None:
                continue
            stats.events += 1
            info = JobInfo(
                job_id=row.job_id or "",
                task_id=row.id,
                state=ev.state,
                exit_code=ev.exit_code,
                hold_reason=ev.detail if ev.state == JobState.HELD else None,
            )
            self._apply(row, info, stats, kind=ev.kind)
            row = self.svc.registry.get(row.id)
            by_job[row.job_id or ""] = row
        if new_cursor is not None and new_cursor != cursor:
            self.svc.registry.set_meta(CURSOR_KEY, new_cursor)

    def _reconcile(self, by_job: dict[str, TaskRow], stats: CycleStats) -> None:
        try:
            stats.wms_queries += 1
            infos = self.svc.wms.query(list(by_job))
        except WmsError as exc:
            stats.errors.append(f"reconcile: {exc}")
            return
        fresh = self.svc.registry.get_many([r.id for r in by_job.values()])  # after events
        for job_id, row in by_job.items():
            current = fresh.get(row.id)
            if current is None or current.job_id != job_id:
                continue
            info = infos.get(job_id)
            if info is None or info.state == JobState.UNKNOWN:
                self._note_missing(current, stats)
                continue
            self._missing.pop(row.id, None)
            self._apply(current, info, stats, kind="RECONCILE")

    def _note_missing(self, row: TaskRow, stats: CycleStats) -> None:
        n = self._missing[row.id] = self._missing.get(row.id, 0) + 1
        if n >= MISSING_LIMIT:
            self._missing.pop(row.id, None)
            self._try_move(
                row,
                S.FAILED,
                stats,
                kind="JOB_LOST",
                detail=f"job {row.job_id} is no longer known to the WMS",
                finished_at=utcnow(),
            )

    # ---- applying WMS state ---------------------------------------------
    def _apply(self, row: TaskRow, info: JobInfo, stats: CycleStats, kind: str) -> None:
        current = S(row.state)
        target = task_state_for(info.state)
        if target is None or target == current and target != S.HELD:
            return
        if target in (S.COMPLETED, S.FAILED):
            self._stage_out(row, info, stats)
            return
        if not can_transition(current, target):
            return
        fields: dict[str, Any] = {}
        if target == S.HELD:
            if current == S.HELD and row.hold_reason == info.hold_reason:
                return
            fields = {"hold_reason": info.hold_reason, "hold_code": info.hold_code}
        elif target == S.RUNNING:
            fields = {"started_at": info.started_at or utcnow()}
        elif target == S.CANCELLED:
            fields = {"finished_at": utcnow()}
        if current == target:
            self.svc.registry.update_fields(row.id, current, **fields)
            return
        self._try_move(row, target, stats, kind=kind, detail=info.hold_reason or "", **fields)

    def _stage_out(self, row: TaskRow, info: JobInfo, stats: CycleStats) -> None:
        """Fetch the output sandbox; the task ends only once its outputs are safe."""
        out_dir = self.svc.dirs.outputs(row.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.svc.wms.retrieve(row.job_id or "", out_dir)
        except WmsError as exc:
            stats.errors.append(f"retrieve {row.id}: {exc}")
            return
        plan = json.loads(row.plan_json)
        outputs, missing = [], []
        for port, name in plan["outputs"].items():
            path = out_dir / name
            if not path.is_file():
                missing.append(port)
                continue
            size, adler, sha = checksums(path)
            outputs.append(
                {
                    "port": port,
                    "name": name,
                    "size": size,
                    "adler32": adler,
                    "sha256": sha,
                    "path": str(path),
                }
            )
        target = S.COMPLETED if info.state == JobState.COMPLETED and not missing else S.FAILED
        if target == S.COMPLETED and not self._sink(row, outputs, stats):
            return
        reason = None
        if info.state == JobState.FAILED:
            reason = f"job exited with code {info.exit_code}"
        elif missing:
            reason = "outputs missing: " + ", ".join(missing)
        if self._try_move(
            row,
            target,
            stats,
            kind="STAGED_OUT",
            detail=reason or "",
            exit_code=info.exit_code,
            finished_at=info.finished_at or utcnow(),
            retrieved_at=utcnow(),
            outputs_json=json.dumps(outputs),
            state_reason=reason,
        ):
            stats.staged_out += 1
            try:
                self.svc.wms.forget([row.job_id or ""])
            except WmsError as exc:  # harmless: the job lingers until the next forget
                stats.errors.append(f"forget {row.id}: {exc}")

    def _sink(self, row: TaskRow, outputs: list[dict[str, Any]], stats: CycleStats) -> bool:
        """Hand outputs to the service's sink (e.g. the owner's gateway area); False:
        it failed, the task stays as it is and the next cycle tries again."""
        sink = self.svc.output_sink
        if sink is None or not outputs:
            return True
        try:
            stored = sink(row, outputs)
        except Exception as exc:  # noqa: BLE001 - any sink failure is retried
            stats.errors.append(f"store outputs of {row.id}: {exc}")
            return False
        for out in outputs:
            if out["port"] in stored:
                out["stored_at"] = stored[out["port"]]
        return True

    def _try_move(
        self,
        row: TaskRow,
        target: TaskState,
        stats: CycleStats,
        *,
        kind: str,
        detail: str = "",
        **fields: Any,
    ) -> bool:
        current = S(row.state)
        if not can_transition(current, target):
            return False
        try:
            self.svc.registry.transition(
                row.id, current, target, kind=kind, detail=detail, **fields
            )
        except ConcurrentChange:
            return False
        stats.transitions += 1
        return True

    # ---- recovering submissions -------------------------------------------
    def _recover_submitting(self, rows: Sequence[TaskRow], first: bool, stats: CycleStats) -> None:
        cutoff = utcnow() - self.submit_grace
        busy = self.svc.in_flight_ids()
        stale = [r for r in rows if r.id not in busy and (first or r.updated_at < cutoff)]
        if not stale:
            return
        try:
            stats.wms_queries += 1
            found = self.svc.wms.find_jobs([r.id for r in stale])
        except WmsError as exc:
            stats.errors.append(f"recovery: {exc}")
            return
        resend: list[TaskRow] = []
        for row in stale:
            job = found.get(row.id)
            if job is not None and job.attempt == row.attempt and not job.spooling:
                self.svc.adopt_or_keep([row])
                stats.recovered += 1
                continue
            if job is not None and job.attempt == row.attempt:
                # still spooling: an upload may be finishing; only an old one is orphaned
                if job.submitted_at is None or job.submitted_at > cutoff:
                    continue
                try:
                    self.svc.wms.cancel([job.job_id], "gproc: input upload was interrupted")
                except WmsError as exc:
                    stats.errors.append(f"recovery cancel {row.id}: {exc}")
                    continue
            resend.append(row)
        if resend:
            self._resend(resend, stats)

    def _resend(self, rows: list[TaskRow], stats: CycleStats) -> None:
        ids = [r.id for r in rows]
        try:  # a new attempt number makes any older job of these tasks stale
            self.svc.registry.transition_many(
                ids, S.SUBMITTING, S.SUBMITTING, kind="RESEND", attempt=TaskRow.attempt + 1
            )  # type: ignore[arg-type]
        except ConcurrentChange:
            return
        fresh = self.svc.registry.get_many(ids)
        self.svc.send_to_wms([fresh[t] for t in ids])
        stats.recovered += len(ids)


def _cluster_proc(job_id: str) -> tuple[int, int] | None:
    """(cluster, proc) from a global job id ``schedd#cluster.proc#qdate``."""
    try:
        cp = job_id.split("#")[1]
        cluster, proc = cp.split(".")
        return int(cluster), int(proc)
    except (IndexError, ValueError):
        return None
