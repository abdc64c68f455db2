"""The tracker keeps every active task's state fresh.

Each cycle reads new entries of the WMS event log (prompt, no schedd query);
every ``reconcile_every`` cycles it runs one reconciling status query for all
active jobs (a constant number of schedd queries, whatever the task count), as
HTCondor recommends for scalable job tracking. The changes a cycle works out are
applied in memory, then written in one transaction together with the new event-log
cursor (compare-and-set per task: a task the API changed meanwhile is left to the
next cycle). It then stages out finished jobs, applies holds that waited for an
upload to end, retries failed "forget" calls, and recovers tasks left
``submitting`` by a crash or a WMS outage: it looks their task ids up in the WMS
and adopts what it finds before it ever submits again.
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
from sqlalchemy.exc import SQLAlchemyError

from gproc.domain import OutputFile, TaskPlan, outputs_json, task_owner
from gproc.leader import Leadership, LeadershipLost, SoleLeader
from gproc.lifecycle import PENDING_FORGET, PENDING_HOLD, TaskService
from gproc.models import TaskRow, utcnow
from gproc.registry import TaskChange
from gproc.staging import checksums
from gproc.states import ACTIVE, TaskState, can_transition, task_state_for
from gproc.wrappers.base import JobInfo, JobState, WmsError, WmsRejected

log = logging.getLogger("gproc.tracker")
S = TaskState
CURSOR_KEY = "tracker.event_cursor"
HEARTBEAT_KEY = "tracker.heartbeat"  # {"at": epoch s, "ms": last cycle}: the tracker's lag
HEARTBEAT_S = 10.0  # written at most this often (one small upsert)
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


@dataclass
class _Work:
    """One task's state within a cycle: what was read, and what the cycle decided."""

    row: TaskRow
    state: TaskState
    hold_reason: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str | None, str]] = field(default_factory=list)
    finished: JobInfo | None = None  # the job ended: stage out after the flush

    @classmethod
    def of(cls, row: TaskRow) -> _Work:
        return cls(row, S(row.state), row.hold_reason)

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.events)


class Tracker:
    def __init__(
        self,
        service: TaskService,
        *,
        interval_s: float = 5.0,
        reconcile_every: int = 6,
        submit_grace_s: float = 60.0,
        leadership: Leadership | None = None,
    ) -> None:
        self.svc = service
        # several replicas on PostgreSQL: only the leader's cycles run (gproc.leader)
        self.leadership: Leadership = leadership or SoleLeader(service.replica)
        self.interval_s = interval_s
        self.reconcile_every = reconcile_every
        self.submit_grace = timedelta(seconds=submit_grace_s)
        self._cycles = 0
        self._beat = 0.0
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
        self.leadership.release()

    def _safe_cycle(self) -> None:
        try:
            was = self.leadership.is_leader
            if not self.leadership.ensure():
                return  # another replica tracks; ask again next interval
            if not was:
                self._cycles = 0  # a new lead: look everything up as after a restart
                self._missing.clear()
            stats = self.cycle()
            if stats.errors:
                log.warning("tracker cycle: %s", "; ".join(stats.errors))
        except LeadershipLost as exc:  # another replica leads: this cycle wrote nothing
            log.warning("tracker cycle dropped: %s", exc)
            self.leadership.release()
        except Exception:  # the loop must survive anything one cycle meets
            log.exception("tracker cycle failed")

    # ---- one cycle ------------------------------------------------------
    def cycle(self, *, reconcile: bool | None = None) -> CycleStats:
        started = time.perf_counter()
        stats = CycleStats()
        first = self._cycles == 0
        self._cycles += 1
        reg = self.svc.registry
        active = reg.in_states(ACTIVE)
        pending = reg.meta_items("pending.")
        holds = {k[len(PENDING_HOLD) :] for k in pending if k.startswith(PENDING_HOLD)}
        by_job = {r.job_id: r for r in active if r.job_id}
        work: dict[str, _Work] = {}
        cursor = reg.get_meta(CURSOR_KEY)
        new_cursor = self._follow_events(cursor, by_job, work, holds, stats)
        due = (
            reconcile
            if reconcile is not None
            else (first or self._cycles % self.reconcile_every == 0 or cursor is None)
        )
        if due and by_job:
            self._reconcile(by_job, work, holds, stats)
        self._flush(work, new_cursor if new_cursor != cursor else None, stats)
        self._stage_out([w for w in work.values() if w.finished is not None], stats)
        self._apply_pending_holds(holds, stats)
        forgets = {
            k[len(PENDING_FORGET) :]: v for k, v in pending.items() if k.startswith(PENDING_FORGET)
        }
        self._retry_forgets(forgets, stats)
        self._recover_submitting([r for r in active if r.state == S.SUBMITTING], first, stats)
        stats.ms = (time.perf_counter() - started) * 1000
        self._heartbeat(stats)
        return stats

    def _heartbeat(self, stats: CycleStats) -> None:
        """Record when a cycle last ended (``gproc_tracker_last_cycle_age_seconds``),
        throttled: operators alert on minutes, not on every cycle."""
        now = time.time()
        if now - self._beat < HEARTBEAT_S:
            return
        beat = {"at": round(now, 3), "ms": round(stats.ms, 1), "errors": len(stats.errors)}
        try:
            self.svc.registry.set_meta(HEARTBEAT_KEY, json.dumps(beat))
        except SQLAlchemyError as exc:  # the cycle's work is done: only the figure is late
            stats.errors.append(f"heartbeat not recorded: {exc}")
            return
        self._beat = now

    def _follow_events(
        self,
        cursor: str | None,
        by_job: dict[str, TaskRow],
        work: dict[str, _Work],
        holds: set[str],
        stats: CycleStats,
    ) -> str | None:
        try:
            events, new_cursor = self.svc.wms.read_events(cursor)
        except WmsError as exc:
            stats.errors.append(f"event log: {exc}")
            return cursor
        by_cluster = {_cluster_proc(j): r for j, r in by_job.items()}
        for ev in events:
            row = by_job.get(ev.job_id or "") or by_cluster.get((ev.cluster, ev.proc))
            if row is None or (ev.state is None and not ev.detail):
                continue
            stats.events += 1
            if ev.state is None:  # e.g. lost contact with the execute node: a note only
                w = work.get(row.id) or work.setdefault(row.id, _Work.of(row))
                w.events.append((ev.kind, str(w.state), ev.detail))
                continue
            info = JobInfo(
                job_id=row.job_id or "",
                task_id=row.id,
                state=ev.state,
                exit_code=ev.exit_code,
                hold_reason=ev.detail if ev.state == JobState.HELD else None,
            )
            w = work.get(row.id) or work.setdefault(row.id, _Work.of(row))
            before = len(w.events)
            self._apply(w, info, ev.kind, row.id in holds, ev.detail)
            noted = len(w.events) > before or w.finished is not None
            if ev.detail and not noted and ev.state in (JobState.IDLE, JobState.RUNNING):
                w.events.append((ev.kind, str(w.state), ev.detail))  # a reconcile came first
        return new_cursor

    def _reconcile(
        self, by_job: dict[str, TaskRow], work: dict[str, _Work], holds: set[str], stats: CycleStats
    ) -> None:
        try:
            stats.wms_queries += 1
            infos = self.svc.wms.query(list(by_job))
        except WmsError as exc:
            stats.errors.append(f"reconcile: {exc}")
            return
        for job_id, row in by_job.items():
            w = work.get(row.id) or work.setdefault(row.id, _Work.of(row))
            info = infos.get(job_id)
            if info is None or info.state == JobState.UNKNOWN:
                self._note_missing(w)
                continue
            self._missing.pop(row.id, None)
            self._apply(w, info, "RECONCILE", row.id in holds)

    def _note_missing(self, w: _Work) -> None:
        tid = w.row.id
        n = self._missing[tid] = self._missing.get(tid, 0) + 1
        if n >= MISSING_LIMIT and w.finished is None:
            self._missing.pop(tid, None)
            detail = f"job {w.row.job_id} is no longer known to the WMS"
            self._step(w, S.FAILED, "JOB_LOST", detail, finished_at=utcnow(), state_reason=detail)

    # ---- applying WMS state (in memory) ------------------------------------
    def _apply(
        self, w: _Work, info: JobInfo, kind: str, hold_pending: bool, detail: str = ""
    ) -> None:
        if w.finished is not None:
            return  # the job ended: stage-out decides the rest
        target = task_state_for(info.state)
        if target is None or target == w.state and target != S.HELD:
            return
        if hold_pending and target in (S.IDLE, S.RUNNING):
            return  # held by the owner; the WMS hears of it once the upload has ended
        if target in (S.COMPLETED, S.FAILED):
            w.finished = info
            return
        if not can_transition(w.state, target):
            return
        fields: dict[str, Any] = {}
        if target == S.HELD:
            if w.state == S.HELD and w.hold_reason == info.hold_reason:
                return
            fields = {"hold_reason": info.hold_reason, "hold_code": info.hold_code}
            w.hold_reason = info.hold_reason
        elif target == S.RUNNING:
            fields = {"started_at": info.started_at or utcnow()}
        elif target == S.CANCELLED:
            fields = {"finished_at": utcnow()}
        if w.state == target:
            w.fields.update(fields)
            return
        self._step(w, target, kind, info.hold_reason or detail, **fields)

    @staticmethod
    def _step(w: _Work, target: TaskState, kind: str, detail: str, **fields: Any) -> None:
        if not can_transition(w.state, target):
            return
        w.state = target
        w.fields.update(fields)
        w.events.append((kind, str(target), detail))

    def _flush(self, work: dict[str, _Work], cursor: str | None, stats: CycleStats) -> None:
        """The cycle's changes and the new cursor in one transaction."""
        changes = [
            TaskChange(w.row.id, S(w.row.state), w.state, dict(w.fields), tuple(w.events))
            for w in work.values()
            if w.changed
        ]
        if not changes and cursor is None:
            return
        moved = self.svc.registry.apply_changes(
            changes, {CURSOR_KEY: cursor} if cursor else None, fence=self.leadership.fence
        )
        stats.transitions += sum(len(c.events) for c in changes if c.task_id in moved)
        for w in work.values():
            if w.changed and w.row.id not in moved:
                w.finished = None  # the task moved meanwhile: the next cycle looks again

    # ---- stage-out ----------------------------------------------------------
    def _stage_out(self, done: Sequence[_Work], stats: CycleStats) -> None:
        """Fetch output sandboxes; a task ends only once its outputs are safe. The
        final transitions are one transaction, the jobs are forgotten in one call."""
        if not done:
            return
        fresh = self.svc.registry.get_many([w.row.id for w in done])
        changes: list[TaskChange] = []
        for w in done:
            row = fresh.get(w.row.id)
            if row is None or w.finished is None or S(row.state) not in ACTIVE:
                continue
            change = self._finish(row, w.finished, stats)
            if change is not None:
                changes.append(change)
        if not changes:
            return
        moved = self.svc.registry.apply_changes(changes, fence=self.leadership.fence)
        stats.transitions += len(moved)
        stats.staged_out += len(moved)
        jobs = {c.task_id: str(fresh[c.task_id].job_id) for c in changes if c.task_id in moved}
        self._forget(jobs, stats)

    def _finish(self, row: TaskRow, info: JobInfo, stats: CycleStats) -> TaskChange | None:
        out_dir = self.svc.dirs.outputs(row.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.svc.wms.retrieve(row.job_id or "", out_dir)
        except WmsError as exc:
            stats.errors.append(f"retrieve {row.id}: {exc}")
            return None
        plan = TaskPlan.from_json(row.plan_json)
        outputs: list[OutputFile] = []
        missing: list[str] = []
        for port, name in plan.outputs.items():
            path = out_dir / name
            if not path.is_file():
                missing.append(port)
                continue
            size, adler, sha = checksums(path)
            outputs.append(OutputFile(port, plan.output_name(port), size, adler, sha, str(path)))
        target = S.COMPLETED if info.state == JobState.COMPLETED and not missing else S.FAILED
        if target == S.COMPLETED:
            stored = self._store(row, outputs, stats)
            if stored is None:
                return None
            outputs = stored
        reason = None
        if info.state == JobState.FAILED:
            reason = f"job exited with code {info.exit_code}"
        elif missing:
            reason = "outputs missing: " + ", ".join(missing)
        if not can_transition(S(row.state), target):
            return None
        fields = {
            "exit_code": info.exit_code,
            "finished_at": info.finished_at or utcnow(),
            "retrieved_at": utcnow(),
            "outputs_json": outputs_json(outputs),
            "state_reason": reason,
        }
        event = ("STAGED_OUT", str(target), reason or "")
        return TaskChange(row.id, S(row.state), target, fields, (event,))

    def _store(
        self, row: TaskRow, outputs: list[OutputFile], stats: CycleStats
    ) -> list[OutputFile] | None:
        """Hand outputs to the task data sink (e.g. the owner's gateway area); None:
        it failed, the task stays as it is and the next cycle tries again."""
        if not outputs:
            return outputs
        try:
            stored = self.svc.task_data.store_outputs(task_owner(row), outputs)
        except Exception as exc:  # noqa: BLE001 - any sink failure is retried
            stats.errors.append(f"store outputs of {row.id}: {exc}")
            return None
        return [
            OutputFile(**{**o.__dict__, "stored_at": stored[o.port]}) if o.port in stored else o
            for o in outputs
        ]

    # ---- WMS actions that must happen eventually ---------------------------------
    def _forget(self, jobs: dict[str, str], stats: CycleStats) -> None:
        """Let finished jobs leave the queue; a failure is recorded and retried by
        every cycle until it succeeds (the task may long be completed by then)."""
        if not jobs:
            return
        try:
            self.svc.wms.forget(list(jobs.values()))
        except WmsRejected as exc:  # not job ids of this WMS: nothing to retry
            stats.errors.append(f"forget: {exc}")
        except WmsError as exc:
            stats.errors.append(f"forget (retried next cycle): {exc}")
            self.svc.registry.apply_changes([], {PENDING_FORGET + t: j for t, j in jobs.items()})
            return
        self.svc.registry.delete_meta(PENDING_FORGET + t for t in jobs)

    def _retry_forgets(self, pending: dict[str, str], stats: CycleStats) -> None:
        if pending:
            self._forget(pending, stats)

    def _apply_pending_holds(self, holds: set[str], stats: CycleStats) -> None:
        """Holds accepted while the job's inputs were uploading go to the WMS now."""
        if not holds:
            return
        reg = self.svc.registry
        rows = reg.get_many(holds)
        reasons = reg.meta_items(PENDING_HOLD)
        gone = [t for t in holds if t not in rows or rows[t].state != S.HELD]
        waiting = {str(rows[t].job_id): rows[t] for t in holds if t not in gone and rows[t].job_id}
        if waiting:
            try:
                stats.wms_queries += 1
                infos = self.svc.wms.query(list(waiting))
            except WmsError as exc:
                stats.errors.append(f"pending holds: {exc}")
                infos = {}
            for job_id, row in waiting.items():
                info = infos.get(job_id)
                if info is None or info.spooling:
                    continue
                reason = reasons.get(PENDING_HOLD + row.id) or "held by the owner"
                try:
                    self.svc.wms.hold([job_id], reason)
                except WmsError as exc:
                    stats.errors.append(f"hold {row.id}: {exc}")
                    continue
                reg.add_event(row.id, "HOLD_APPLIED", reason, str(S.HELD))
                gone.append(row.id)
        reg.delete_meta(PENDING_HOLD + t for t in gone)

    # ---- recovering submissions -------------------------------------------
    def _recover_submitting(self, rows: Sequence[TaskRow], first: bool, stats: CycleStats) -> None:
        now = utcnow()
        cutoff = now - self.submit_grace
        # a live claim: a replica (this one or another) is submitting the task now
        stale = [
            r
            for r in rows
            if not (r.claim_until is not None and r.claim_until > now)
            and (first or r.updated_at < cutoff)
        ]
        if not stale:
            return
        try:
            stats.wms_queries += 1
            found = self.svc.wms.find_jobs([r.id for r in stale])
        except WmsError as exc:
            stats.errors.append(f"recovery: {exc}")
            self.svc.note_wms_down(stale, exc)
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
                self.svc.registry.add_event(
                    row.id,
                    "ORPHAN_REMOVED",
                    f"removed job {job.job_id}: its input upload was interrupted",
                    str(S.SUBMITTING),
                )
            resend.append(row)
        if resend:
            self._resend(resend, stats)

    def _resend(self, rows: list[TaskRow], stats: CycleStats) -> None:
        # a new attempt number makes any older job of these tasks stale; claimed
        # compare-and-set on the attempt, so a task is resent once whoever else looks
        stats.recovered += len(self.svc.resend(rows))


def _cluster_proc(job_id: str) -> tuple[int, int] | None:
    """(cluster, proc) from a global job id ``schedd#cluster.proc#qdate``."""
    try:
        cp = job_id.split("#")[1]
        cluster, proc = cp.split(".")
        return int(cluster), int(proc)
    except (IndexError, ValueError):
        return None
