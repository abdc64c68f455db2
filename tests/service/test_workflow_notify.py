"""Workflow callbacks against a local HTTP server: signed, retried, never blocking tracking."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gproc.registry import make_engine
from gproc.workflow_models import WorkflowNodeRow, WorkflowRow
from gproc.workflows.notify import Notifier
from gproc.workflows.states import WorkflowState
from gproc.workflows.store import WorkflowStore

W = WorkflowState
SECRET = "s3cret-for-the-callback-subscription"


class Receiver:
    """An HTTP server recording POSTs; answers the statuses queued in ``answers``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.hold = threading.Event()  # while clear and ``stall`` set, requests wait
        self.arrived = threading.Event()
        self.stall = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.stall:
                    receiver.arrived.set()
                    receiver.hold.wait(30)
                receiver.received.append((dict(self.headers), body))
                code = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(make_engine(f"sqlite:///{tmp_path / 'wf.db'}"))


def _workflow(store: WorkflowStore, url: str, wid: str = "a" * 32) -> WorkflowRow:
    row = WorkflowRow(
        id=wid,
        name="w",
        owner_dn="/CN=x",
        form="silk",
        document="",
        compiled_json="{}",
        state=str(W.REGISTERED),
        callback_url=url,
        callback_secret=SECRET,
    )
    node = WorkflowNodeRow(
        workflow_id=wid, name="n0_A", node="A", tool="grayscale", state="waiting"
    )
    return store.insert(row, [node])


def _advance(store: WorkflowStore, wid: str) -> None:
    store.transition(wid, W.REGISTERED, W.SUBMITTING, attempt=1)
    store.transition(wid, W.SUBMITTING, W.SUBMITTED, job_id="vm#1.0#1")
    store.transition(wid, W.SUBMITTED, W.RUNNING)


def test_events_are_signed_json_with_stable_ids(tmp_path: Path, receiver: Receiver) -> None:
    store = _store(tmp_path)
    row = _workflow(store, receiver.url)
    _advance(store, row.id)
    notifier = Notifier(store, backoff_s=0.01)
    assert notifier.deliver_due() == 4
    states = []
    for headers, body in receiver.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Gproc-Signature"] == expected
        event = json.loads(body)
        assert headers["X-Gproc-Event-Id"] == event["id"]
        assert event["workflow_id"] == row.id and event["nodes"] == {"waiting": 1}
        states.append(event["state"])
    assert states == ["registered", "submitting", "submitted", "running"]
    assert len({json.loads(b)["id"] for _, b in receiver.received}) == 4
    assert notifier.deliver_due() == 0  # delivered once, not again


def test_failed_deliveries_are_retried_with_the_same_id(tmp_path: Path, receiver: Receiver) -> None:
    store = _store(tmp_path)
    row = _workflow(store, receiver.url)
    receiver.answers = [500, 503]
    notifier = Notifier(store, backoff_s=0.0)
    assert notifier.deliver_due() == 0
    assert notifier.deliver_due() == 0
    assert notifier.deliver_due() == 1
    ids = [h["X-Gproc-Event-Id"] for h, _ in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 1
    (note,) = store.notifications(row.id)
    assert note.attempts == 3 and note.delivered_at is not None


def test_dead_callback_is_given_up_after_max_attempts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    row = _workflow(store, "http://127.0.0.1:9/nobody-listens")
    notifier = Notifier(store, backoff_s=0.0, max_attempts=3, timeout_s=1)
    for _ in range(5):
        notifier.deliver_due()
    (note,) = store.notifications(row.id)
    assert note.attempts == 3 and note.delivered_at is None
    assert "ConnectionError" in (note.last_error or "")


def test_a_stalled_callback_does_not_block_tracking(tmp_path: Path, receiver: Receiver) -> None:
    store = _store(tmp_path)
    row = _workflow(store, receiver.url)
    receiver.stall = True
    notifier = Notifier(store, timeout_s=30, poll_s=0.05)
    notifier.start()
    try:
        assert receiver.arrived.wait(10)  # the first POST is in flight, and hangs
        _advance(store, row.id)  # the tracker's writes go through meanwhile
        assert not receiver.hold.is_set() and store.get(row.id).state == "running"
        assert len(store.notifications(row.id)) == 4
    finally:
        receiver.hold.set()
        notifier.stop()
