"""Event-log reader: typed events, task ids from job-ad-information entries, cursor, rotation.

The logs are written in HTCondor's own text format and parsed by the real
``htcondor2.JobEventLog``.
"""

from __future__ import annotations

from pathlib import Path

from gproc.wrappers.base import JobState
from gproc.wrappers.htcondor.events import Cursor, EventLogReader
from gproc.wrappers.htcondor.schedd import HTCondorWMS

TASK_A = "a" * 32
TASK_B = "b" * 32
USAGE = (
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage\n"
    "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n"
    "\t0  -  Total Bytes Sent By Job\n\t0  -  Total Bytes Received By Job\n"
)


def ev(code: int, cluster: int, text: str, body: str = "") -> str:
    return f"{code:03d} ({cluster:03d}.000.000) 11/21 06:07:08 {text}\n{body}...\n"


def info(cluster: int, task: str, instance: str) -> str:
    body = f'GprocTaskId = "{task}"\nGprocInstance = "{instance}"\n'
    return ev(28, cluster, "Job ad information event triggered.", body)


def submitted(cluster: int, task: str, instance: str = "inst") -> str:
    head = ev(0, cluster, "Job submitted from host: <127.0.0.1:9618>")
    return head + info(cluster, task, instance)


def terminated(cluster: int, code: int) -> str:
    body = f"\t(1) Normal termination (return value {code})\n" + USAGE
    return ev(5, cluster, "Job terminated.", body)


def write(path: Path, *chunks: str, mode: str = "w") -> None:
    with path.open(mode) as fh:
        fh.write("".join(chunks))


def test_events_are_typed_with_implied_state_and_task(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    write(
        log,
        submitted(1, TASK_A),
        ev(1, 1, "Job executing on host: <127.0.0.1:9618>"),
        terminated(1, 3),
        submitted(2, TASK_B),
        ev(12, 2, "Job was held.", "\tinput missing\n\tCode 13 Subcode 2\n"),
        ev(13, 2, "Job was released.", "\tby admin\n"),
        ev(9, 2, "Job was aborted.", "\tcancelled by user\n"),
    )
    events, cursor = EventLogReader(log, "inst").read(None, {(1, 0): "s#1.0#5"})
    got = [(e.cluster, e.kind, e.state, e.task_id) for e in events]
    assert got == [
        (1, "SUBMIT", JobState.IDLE, TASK_A),
        (1, "EXECUTE", JobState.RUNNING, TASK_A),
        (1, "JOB_TERMINATED", JobState.FAILED, TASK_A),
        (2, "SUBMIT", JobState.IDLE, TASK_B),
        (2, "JOB_HELD", JobState.HELD, TASK_B),
        (2, "JOB_RELEASED", JobState.IDLE, TASK_B),
        (2, "JOB_ABORTED", JobState.REMOVED, TASK_B),
    ]
    assert events[2].exit_code == 3
    assert events[0].job_id == "s#1.0#5" and events[3].job_id is None
    assert events[4].detail == "input missing"
    assert events[6].detail == "cancelled by user"
    assert cursor is not None and Cursor.parse(cursor).offset == log.stat().st_size


def test_exit_zero_is_completed_and_signal_is_failed(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    killed = ev(
        5,
        2,
        "Job terminated.",
        "\t(0) Abnormal termination (signal 9)\n\t(0) No core file\n" + USAGE,
    )
    write(log, terminated(1, 0), killed)
    events, _ = EventLogReader(log, "inst").read(None)
    assert [(e.state, e.exit_code) for e in events] == [
        (JobState.COMPLETED, 0),
        (JobState.FAILED, None),
    ]
    assert "signal 9" in events[1].detail


def test_other_instances_are_filtered_out(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    write(log, submitted(1, TASK_A, "other"), submitted(2, TASK_B, "inst"))
    events, _ = EventLogReader(log, "inst").read(None)
    assert [(e.cluster, e.task_id) for e in events] == [(2, TASK_B)]


def test_cursor_resumes_after_appended_events(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    reader = EventLogReader(log, "inst")
    write(log, submitted(1, TASK_A))
    first, cursor = reader.read(None)
    write(log, terminated(1, 0), mode="a")
    second, cursor2 = reader.read(cursor)
    assert [e.kind for e in first] == ["SUBMIT"]
    assert [(e.kind, e.task_id) for e in second] == [("JOB_TERMINATED", TASK_A)]
    assert reader.read(cursor2)[0] == []
    # a fresh reader (service restart) resumes from the same cursor too
    again, _ = EventLogReader(log, "inst").read(cursor)
    assert [e.kind for e in again] == ["JOB_TERMINATED"]


def test_rotation_reads_rest_of_old_file_then_new(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    reader = EventLogReader(log, "inst")
    write(log, submitted(1, TASK_A))
    _, cursor = reader.read(None)
    write(log, terminated(1, 0), mode="a")  # written before rotation, not yet read
    log.rename(tmp_path / "EventLog.old")
    write(log, submitted(2, TASK_B))
    events, new_cursor = reader.read(cursor)
    assert [(e.cluster, e.kind) for e in events] == [(1, "JOB_TERMINATED"), (2, "SUBMIT")]
    assert Cursor.parse(new_cursor).inode == log.stat().st_ino


def test_missing_log_and_bad_cursor(tmp_path: Path) -> None:
    reader = EventLogReader(tmp_path / "absent", "inst")
    assert reader.read("12:34") == ([], "12:34")
    log = tmp_path / "EventLog"
    write(log, submitted(1, TASK_A))
    events, _ = EventLogReader(log, "inst").read("not-a-cursor")
    assert [e.kind for e in events] == ["SUBMIT"]
    assert Cursor.parse("1:x") is None and Cursor.parse(None) is None


NODE_A = (
    "<10.37.246.11:9620?CCBID=127.0.0.1:9718#1&PrivNet=gpn9718-a&addrs=10.37.246.11-9620"
    "&alias=a.nodes.gproc.pool&noUDP&sock=startd_1_0cb7>"
)
# (event text as the schedd writes it, kind, implied state, words the detail must hold)
LOST_NODE_EVENTS = [
    (
        ev(1, 1, f"Job executing on host: {NODE_A}", "\tSlotName: slot1@a.nodes.gproc.pool\n"),
        "EXECUTE",
        JobState.RUNNING,
        "running on slot1@a.nodes.gproc.pool",
    ),
    (
        ev(1, 1, f"Job executing on host: {NODE_A}"),
        "EXECUTE",
        JobState.RUNNING,
        "running on a.nodes.gproc.pool",
    ),
    (
        ev(
            22,
            1,
            "Job disconnected, attempting to reconnect",
            "    Socket between submit and execute hosts closed unexpectedly\n"
            f"    Trying to reconnect to slot1@a.nodes.gproc.pool {NODE_A}\n",
        ),
        "JOB_DISCONNECTED",
        None,
        "lost contact with slot1@a.nodes.gproc.pool (Socket between submit and execute "
        "hosts closed unexpectedly); reconnecting",
    ),
    (
        ev(
            24,
            1,
            "Job reconnection failed",
            "    Job disconnected too long: JobLeaseDuration (30 seconds) expired\n"
            "    Can not reconnect to slot1@a.nodes.gproc.pool, rescheduling job\n",
        ),
        "JOB_RECONNECT_FAILED",
        JobState.IDLE,
        "could not reconnect to slot1@a.nodes.gproc.pool (Job disconnected too long: "
        "JobLeaseDuration (30 seconds) expired); rescheduled",
    ),
    (
        ev(
            23,
            1,
            "Job reconnected to slot1@a.nodes.gproc.pool",
            f"    startd address: {NODE_A}\n    starter address: <10.37.246.11:9620>\n",
        ),
        "JOB_RECONNECTED",
        None,
        "reconnected to slot1@a.nodes.gproc.pool",
    ),
    (
        ev(
            7,
            1,
            "Shadow exception!",
            "\tError from slot1@a.nodes.gproc.pool: starter lost\n"
            "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n",
        ),
        "SHADOW_EXCEPTION",
        JobState.IDLE,
        "shadow exception: Error from slot1@a.nodes.gproc.pool: starter lost; rescheduled",
    ),
    (
        ev(
            4,
            1,
            "Job was evicted.",
            "\t(0) Job was not checkpointed.\n"
            "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage\n"
            "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage\n"
            "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n",
        ),
        "JOB_EVICTED",
        JobState.IDLE,
        "evicted from its execute slot",
    ),
]


def test_a_lost_execute_node_is_reported_event_by_event(tmp_path: Path) -> None:
    """Table: each event of a node lost mid-job -> its state and the detail reported."""
    log = tmp_path / "EventLog"
    write(log, submitted(1, TASK_A), *(text for text, *_ in LOST_NODE_EVENTS))
    events, _ = EventLogReader(log, "inst").read(None)
    got = [(e.kind, e.state, e.detail) for e in events[1:]]
    assert len(got) == len(LOST_NODE_EVENTS)
    for (kind, state, detail), (_, want_kind, want_state, want_detail) in zip(
        got, LOST_NODE_EVENTS, strict=True
    ):
        assert (kind, state) == (want_kind, want_state)
        assert want_detail in detail, (kind, detail)
        assert detail.endswith("rescheduled") == (want_state is JobState.IDLE)


def test_end_is_after_the_last_complete_event(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    partial = "001 (002.000.000) 11/21 06:0"  # the schedd is writing this one
    write(log, submitted(1, TASK_A), terminated(1, 0), partial)
    reader = EventLogReader(log, "inst")
    cursor = reader.end()
    assert cursor is not None
    assert Cursor.parse(cursor) == Cursor(log.stat().st_ino, log.stat().st_size - len(partial))
    write(log, "7:08 Job executing on host: <127.0.0.1:9618>\n...\n", mode="a")
    events, _ = reader.read(cursor)
    assert [(e.cluster, e.kind) for e in events] == [(2, "EXECUTE")]
    assert EventLogReader(tmp_path / "absent", "inst").end() is None


def test_a_wms_with_no_cursor_yet_follows_the_log_from_where_it_ended(tmp_path: Path) -> None:
    """A big shared log is not read from its start: the follower would lag behind the
    schedd query and never report the details (e.g. the execute slot) of new jobs."""
    log = tmp_path / "EventLog"
    write(log, *(submitted(c, TASK_A) + terminated(c, 0) for c in range(1, 50)))
    wms = HTCondorWMS(instance="inst", event_log=log, sandbox_root=tmp_path / "sb")
    write(log, submitted(50, TASK_B), ev(1, 50, "Job executing on host: <1.2.3.4:9>"), mode="a")
    events, cursor = wms.read_events(None)
    assert [(e.cluster, e.kind, e.task_id) for e in events] == [
        (50, "SUBMIT", TASK_B),
        (50, "EXECUTE", TASK_B),
    ]
    assert wms.read_events(cursor)[0] == []
