"""Task callbacks: every recorded state change of a subscribed task is POSTed, signed,
to a real local HTTP receiver, at least once with a stable id; a dead callback holds
nothing up; bad callbacks are refused at registration. No pool is contacted: the
changes are recorded the way the core (``transition``) and the tracker
(``apply_changes``) record them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproc.connectors import ToolRequest
from gproc.domain import Owner, TaskRequest
from gproc.errors import InvalidRequest
from gproc.lifecycle import TaskService
from gproc.registry import Registry, TaskChange, TaskFilter, make_engine
from gproc.services.soap import convert
from gproc.services.soap import types as w
from gproc.staging import TaskDirs, local_file_resolver
from gproc.states import TaskState as S
from gproc.task_data import LocalTaskData
from gproc.task_notify import TaskOutbox, task_deliverer
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.service.test_workflow_notify import Receiver

OWNER = Owner(dn="/C=RO/O=GiSHEO/CN=ann")
SECRET = "task-callback-secret-0123456789"
GPROC = Path(sys.executable).parent / "gproc"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _svc(tmp_path: Path) -> TaskService:
    return TaskService(
        Registry(f"sqlite:///{tmp_path / 'db.sqlite'}"),
        HTCondorWMS(instance="callbacks", sandbox_root=tmp_path / "sb"),
        TaskDirs(tmp_path / "tasks"),
        LocalTaskData(local_file_resolver(None)),
    )


def _req(url: str | None, secret: str | None = SECRET) -> TaskRequest:
    return TaskRequest(
        ToolRequest(tool="band", inputs={"image": "inline"}),
        OWNER,
        inline_inputs={"image": b"tiff"},
        callback_url=url,
        callback_secret=secret,
    )


def _run(svc: TaskService, task_id: str) -> None:
    """Submitting (core), then a tracker cycle seeing it run and complete."""
    reg = svc.registry
    reg.transition(task_id, S.REGISTERED, S.SUBMITTING, attempt=1)
    reg.transition(task_id, S.SUBMITTING, S.SUBMITTED, job_id="vm#1.0#1")
    events = (("EXECUTE", str(S.RUNNING), ""), ("TERMINATED", str(S.COMPLETED), "exit 0"))
    moved = reg.apply_changes(
        [TaskChange(task_id, S.SUBMITTED, S.COMPLETED, {"exit_code": 0}, events)]
    )
    assert moved == {task_id}


def test_state_changes_are_signed_json_with_stable_ids(tmp_path: Path, receiver: Receiver) -> None:
    svc = _svc(tmp_path)
    (view,) = svc.register([_req(receiver.url)])
    (quiet,) = svc.register([_req(None, None)])  # no callback: no events
    _run(svc, view.id)
    _run(svc, quiet.id)
    receiver.answers = [503]  # the first POST fails and is retried with the same id
    deliverer = task_deliverer(svc.registry.engine, backoff_s=0.0)
    assert deliverer.deliver_due() == 4
    assert deliverer.deliver_due() == 1
    assert deliverer.deliver_due() == 0  # delivered once, not again
    bodies = []
    for headers, body in receiver.received:
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Gproc-Signature"] == want
        event = json.loads(body)
        assert headers["X-Gproc-Event-Id"] == event["id"]
        assert event["task_id"] == view.id
        bodies.append(event)
    assert bodies[0] == bodies[-1]  # the retried event: same body, same id
    states = [b["state"] for b in bodies[1:]]
    assert sorted(states) == sorted(
        ["registered", "submitting", "submitted", "running", "completed"]
    )
    assert len({b["id"] for b in bodies}) == 5


def test_a_dead_callback_blocks_nothing(tmp_path: Path, receiver: Receiver) -> None:
    svc = _svc(tmp_path)
    receiver.stall = True  # the receiver takes every request and never answers
    (view,) = svc.register([_req(receiver.url)])
    deliverer = task_deliverer(svc.registry.engine, timeout_s=30, poll_s=0.05)
    deliverer.start()
    try:
        assert receiver.arrived.wait(10)  # the deliverer is stuck in its first POST
        started = time.monotonic()
        _run(svc, view.id)  # ... and the state changes go on regardless
        assert time.monotonic() - started < 5
        assert svc.registry.get(view.id).state == S.COMPLETED
    finally:
        receiver.hold.set()
        deliverer.stop()
    outbox = TaskOutbox(svc.registry.engine).notifications(view.id)
    assert len(outbox) == 5  # every change queued, none lost while the receiver stalled


def test_gives_up_after_max_attempts_and_keeps_the_row(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    (view,) = svc.register([_req("http://127.0.0.1:9/nothing-listens")])
    deliverer = task_deliverer(svc.registry.engine, backoff_s=0.0, max_attempts=2, timeout_s=1)
    for _ in range(4):
        deliverer.deliver_due()
    (row,) = TaskOutbox(svc.registry.engine).notifications(view.id)
    assert row.attempts == 2 and row.delivered_at is None and row.last_error


@pytest.mark.parametrize(
    ("url", "secret", "field"),
    [
        ("ftp://example.org/hook", SECRET, "callback_url"),
        ("file:///etc/passwd", SECRET, "callback_url"),
        ("http://user:pw@127.0.0.1/hook", SECRET, "callback_url"),
        ("http://127.0.0.1/a b", SECRET, "callback_url"),
        ("http://127.0.0.1/" + "a" * 2048, SECRET, "callback_url"),
        ("javascript:alert(1)", SECRET, "callback_url"),
        ("http://127.0.0.1/hook", None, "callback_secret"),
        ("http://127.0.0.1/hook", "short", "callback_secret"),
        ("http://127.0.0.1/hook", "x" * 20 + "\n", "callback_secret"),
    ],
)
def test_bad_callbacks_are_refused(
    tmp_path: Path, url: str, secret: str | None, field: str
) -> None:
    svc = _svc(tmp_path)
    with pytest.raises(InvalidRequest) as exc:
        svc.register([_req(None, None), _req(url, secret)])
    assert exc.value.field == field
    assert exc.value.index == 1
    assert svc.registry.list_tasks(TaskFilter())[1] == 0  # all or none


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPROC_STATE_DIR": str(state), "GPROC_HTCONDOR__INSTANCE": "callbacks"}
    return subprocess.run(
        [str(GPROC), "task", "register", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_register_with_a_callback(tmp_path: Path, receiver: Receiver) -> None:
    image = tmp_path / "in.tif"
    image.write_bytes(b"tiff")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    state = tmp_path / "state"
    args = ("band", "-i", f"image={image}", "--callback-secret-file", str(secret_file))
    ok = _cli(state, *args, "--callback", receiver.url, "--json")
    assert ok.returncode == 0, ok.stderr
    (task,) = json.loads(ok.stdout)["tasks"]
    deliverer = task_deliverer(make_engine(f"sqlite:///{state / 'gproc.db'}"))
    assert deliverer.deliver_due() == 1
    ((headers, body),) = receiver.received
    assert json.loads(body)["task_id"] == task["id"]
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Gproc-Signature"] == want
    bad = _cli(state, *args, "--callback", "http://u:p@127.0.0.1/hook")
    assert bad.returncode != 0 and "callback_url" in bad.stdout + bad.stderr


def test_soap_task_spec_carries_the_callback() -> None:
    spec = w.TaskSpec(tool="band", callback_url="http://127.0.0.1/hook", callback_secret=SECRET)
    spec.inputs = [w.InputData(name="image", location="gateway:///home/in.tif")]
    req = convert.task_request(spec, OWNER)
    assert (req.callback_url, req.callback_secret) == ("http://127.0.0.1/hook", SECRET)
    old = convert.task_request(w.TaskSpec(tool="band", inputs=spec.inputs), OWNER)
    assert old.callback_url is None and old.callback_secret is None  # old clients
