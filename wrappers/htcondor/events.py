"""Follow a schedd-wide HTCondor event log and turn entries into typed ``JobEvent``s.

The cursor is ``"<inode>:<offset>"``: the log file's inode and the reader's
byte offset in it (``htcondor2.JobEventLog`` exposes the offset only through
its pickle protocol; we use ``__getstate__``/``__setstate__`` directly, never
unpickle a cursor). When the schedd rotates the log (``EventLog`` renamed to
``EventLog.old`` or ``EventLog.<n>``), the rest of the old file is read first,
found by its inode, then the new file from its start. ``end()`` is the cursor of
the log's last complete event: where a follower with no cursor yet starts, rather
than at the first event of a log that may hold hours of other jobs' events.

The pool writes ``GprocTaskId``/``GprocInstance`` after each job event in a
``JOB_AD_INFORMATION`` entry (``EVENT_LOG_JOB_AD_INFORMATION_ATTRS``); those
entries are folded into the events of the same job, not returned themselves.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import htcondor2

from gproc.wrappers.base import JobEvent, JobState

ET = htcondor2.JobEventType

MAX_EVENTS_PER_READ = 20000  # bounds one call; the cursor resumes mid-file
END_SCAN_BYTES = 1 << 20  # how far back from its end ``end()`` looks for an event's end
EVENT_END = b"...\n"  # the line closing every event of a text event log


def _terminated(ev: Mapping[str, Any]) -> tuple[JobState, str, int | None]:
    if ev.get("TerminatedNormally") is False or ev.get("TerminatedBySignal") is not None:
        signal = ev.get("TerminatedBySignal")
        return JobState.FAILED, f"killed by signal {signal}", None
    code = ev.get("ReturnValue")
    code = code if isinstance(code, int) else None
    return (JobState.COMPLETED if code == 0 else JobState.FAILED), f"exit code {code}", code


def _held(ev: Mapping[str, Any]) -> tuple[JobState, str, int | None]:
    return JobState.HELD, str(ev.get("HoldReason", "")), None


def _aborted(ev: Mapping[str, Any]) -> tuple[JobState, str, int | None]:
    return JobState.REMOVED, str(ev.get("Reason", "")), None


def _released(ev: Mapping[str, Any]) -> tuple[JobState, str, int | None]:
    return JobState.IDLE, str(ev.get("Reason", "")), None


def _slot(ev: Mapping[str, Any], key: str = "StartdName") -> str:
    """The slot an event names (``slot1@host``), else the host part of its address."""
    name = ev.get(key) or ev.get("SlotName")
    if isinstance(name, str) and name:
        return name
    addr = str(ev.get("ExecuteHost") or ev.get("StartdAddr") or "")
    alias = addr.partition("alias=")[2].split("&")[0].rstrip(">")
    return alias or addr.strip("<>").split("?")[0] or "an unnamed execute slot"


def _executing(ev: Mapping[str, Any]) -> tuple[JobState, str, None]:
    return JobState.RUNNING, f"running on {_slot(ev, 'SlotName')}", None


def _disconnected(ev: Mapping[str, Any]) -> tuple[None, str, None]:
    reason = ev.get("DisconnectReason") or "connection lost"
    return None, f"lost contact with {_slot(ev)} ({reason}); reconnecting", None


def _reconnected(ev: Mapping[str, Any]) -> tuple[None, str, None]:
    return None, f"reconnected to {_slot(ev)}", None


def _reconnect_failed(ev: Mapping[str, Any]) -> tuple[JobState, str, None]:
    reason = ev.get("Reason") or "reconnection failed"
    return JobState.IDLE, f"could not reconnect to {_slot(ev)} ({reason}); rescheduled", None


def _evicted(ev: Mapping[str, Any]) -> tuple[JobState, str, None]:
    reason = ev.get("Reason")
    why = f" ({reason})" if reason else ""
    return JobState.IDLE, f"evicted from its execute slot{why}; rescheduled", None


def _shadow_exception(ev: Mapping[str, Any]) -> tuple[JobState, str, None]:
    message = str(ev.get("Message") or "no message").strip()
    return JobState.IDLE, f"shadow exception: {message}; rescheduled", None


def _fixed(state: JobState | None) -> Callable[[Mapping[str, Any]], tuple[Any, str, None]]:
    return lambda ev: (state, "", None)


Handler = Callable[[Mapping[str, Any]], tuple[JobState | None, str, int | None]]

# Event type -> (implied state, detail, exit code). Unlisted types imply no state.
EVENT_TABLE: dict[Any, Handler] = {
    ET.SUBMIT: _fixed(JobState.IDLE),
    ET.EXECUTE: _executing,
    ET.JOB_TERMINATED: _terminated,
    ET.JOB_HELD: _held,
    ET.JOB_RELEASED: _released,
    ET.JOB_ABORTED: _aborted,
    # A lost execute node: the shadow first tries to reconnect (JOB_DISCONNECTED),
    # until the job lease runs out (JOB_RECONNECT_FAILED); the job goes back to idle
    # and runs again elsewhere. Events implying no state but carrying a detail are
    # reported in the task's history as they are.
    ET.JOB_EVICTED: _evicted,
    ET.SHADOW_EXCEPTION: _shadow_exception,
    ET.JOB_DISCONNECTED: _disconnected,
    ET.JOB_RECONNECTED: _reconnected,
    ET.JOB_RECONNECT_FAILED: _reconnect_failed,
    ET.JOB_SUSPENDED: _fixed(JobState.RUNNING),
    ET.JOB_UNSUSPENDED: _fixed(JobState.RUNNING),
}


@dataclass(frozen=True)
class Cursor:
    inode: int
    offset: int

    def __str__(self) -> str:
        return f"{self.inode}:{self.offset}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """A cursor from its string form; a malformed one counts as none."""
        if not text:
            return None
        inode, _, offset = text.partition(":")
        if not (inode.isdigit() and offset.isdigit()):
            return None
        return cls(int(inode), int(offset))


def _open(path: Path, offset: int) -> htcondor2.JobEventLog:
    log = htcondor2.JobEventLog.__new__(htcondor2.JobEventLog)
    log.__setstate__(({"_deadline": 0, "_filename": str(path)}, offset))
    return log


def _offset(log: htcondor2.JobEventLog) -> int:
    return int(log.__getstate__()[1])


def _read(path: Path, offset: int, limit: int) -> tuple[list[Any], int]:
    """Up to ``limit`` raw events of ``path`` from ``offset``, and the offset after them."""
    log = _open(path, offset)
    out: list[Any] = []
    try:
        for event in log.events(stop_after=0):
            out.append(event)
            if len(out) >= limit:
                break
        return out, _offset(log)
    finally:
        log.close()


def _rotated(path: Path, inode: int) -> Path | None:
    """The rotated copy of ``path`` that is the file with ``inode``, if any."""
    for candidate in sorted(path.parent.glob(path.name + ".*")):
        try:
            if candidate.stat().st_ino == inode:
                return candidate
        except OSError:
            continue
    return None


class EventLogReader:
    """Reads one event log and remembers which job is which gproc task."""

    def __init__(self, path: Path, instance: str, remember: int = 100_000) -> None:
        self.path = path
        self.instance = instance
        self._jobs: OrderedDict[tuple[int, int], tuple[str | None, str | None]] = OrderedDict()
        self._remember = remember

    def read(
        self, cursor: str | None, job_ids: Mapping[tuple[int, int], str] | None = None
    ) -> tuple[list[JobEvent], str | None]:
        """New events since ``cursor``; ``job_ids`` maps (cluster, proc) to global ids."""
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return [], cursor
        start = Cursor.parse(cursor)
        offset = 0
        raw: list[Any] = []
        if start is not None and start.inode == inode:
            offset = start.offset if start.offset <= self.path.stat().st_size else 0
        elif start is not None:
            old = _rotated(self.path, start.inode)
            if old is not None:
                raw, old_offset = _read(old, start.offset, MAX_EVENTS_PER_READ)
                if len(raw) >= MAX_EVENTS_PER_READ:  # rest of the old file next time
                    return self.convert(raw, job_ids or {}), str(Cursor(start.inode, old_offset))
        events, offset = _read(self.path, offset, MAX_EVENTS_PER_READ - len(raw))
        raw += events
        return self.convert(raw, job_ids or {}), str(Cursor(inode, offset))

    def end(self) -> str | None:
        """The cursor just after the log's last complete event (None: no log yet).

        Not simply the file's size: the schedd may be half-way through writing one."""
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, 2)
                start = max(0, size - END_SCAN_BYTES)
                fh.seek(start)
                tail = fh.read(size - start)
                inode = os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            return None
        at = tail.rfind(b"\n" + EVENT_END)
        offset = start + at + 1 + len(EVENT_END) if at >= 0 else 0
        return str(Cursor(inode, offset))

    def _learn(self, raw: Iterable[Any]) -> None:
        for ev in raw:
            if ev.type == ET.JOB_AD_INFORMATION and "GprocTaskId" in ev:
                key = (ev.cluster, ev.proc)
                self._jobs[key] = (ev.get("GprocTaskId"), ev.get("GprocInstance"))
                self._jobs.move_to_end(key)
        while len(self._jobs) > self._remember:
            self._jobs.popitem(last=False)

    def convert(self, raw: list[Any], job_ids: Mapping[tuple[int, int], str]) -> list[JobEvent]:
        """Typed events of this instance (and of jobs not yet identified)."""
        self._learn(raw)
        out = []
        for ev in raw:
            if ev.type == ET.JOB_AD_INFORMATION:
                continue
            task_id, instance = self._jobs.get((ev.cluster, ev.proc), (None, None))
            if instance is not None and instance != self.instance:
                continue
            out.append(job_event(ev, job_ids.get((ev.cluster, ev.proc)), task_id))
        return out


def job_event(ev: Any, job_id: str | None, task_id: str | None) -> JobEvent:
    """One ``htcondor2.JobEvent`` as a gproc :class:`JobEvent`."""
    handler = EVENT_TABLE.get(ev.type)
    state, detail, code = handler(ev) if handler else (None, "", None)
    return JobEvent(
        job_id=job_id,
        cluster=ev.cluster,
        proc=ev.proc,
        kind=ev.type.name,
        time=datetime.fromtimestamp(ev.timestamp, tz=UTC),
        state=state,
        detail=detail,
        exit_code=code,
        task_id=task_id,
    )
