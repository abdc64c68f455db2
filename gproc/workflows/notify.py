"""Callback delivery: signed JSON events POSTed at least once, with retries and backoff.

The store writes an outbox row with every state change of a workflow that has a
callback URL (same transaction), so tracking only ever inserts rows; this deliverer
runs in its own thread and a slow or dead callback delays nothing but its own
deliveries. Each POST carries the event (``id``, ``workflow_id``, ``kind``, ``state``,
``time``, a per-state count of the nodes) as its JSON body, with headers
``X-Gproc-Event-Id`` (stable: a redelivery has the same id, so receivers
de-duplicate) and ``X-Gproc-Signature: sha256=<hex HMAC-SHA256 of the body with the
subscription's secret>``. A 2xx answer is a delivery; anything else is retried after
``backoff_s * 2**attempts`` (capped), up to ``max_attempts``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from datetime import timedelta

import requests

from gproc.models import utcnow
from gproc.workflow_models import NotificationRow
from gproc.workflows.store import WorkflowStore

log = logging.getLogger("gproc.workflows.notify")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(
        self,
        store: WorkflowStore,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 12,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gproc-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # the loop must survive anything
                log.exception("notification round failed")
            self._stop.wait(self.poll_s)

    def deliver_due(self) -> int:
        """One round over due deliveries; the number delivered."""
        delivered = 0
        for row in self.store.due_notifications(utcnow()):
            if self._stop.is_set():
                break
            delivered += self._deliver(row)
        return delivered

    def _deliver(self, row: NotificationRow) -> bool:
        body = row.body.encode()
        headers = {"Content-Type": "application/json", "X-Gproc-Event-Id": row.id}
        secret = self.store.secret(row.workflow_id)
        if secret:
            headers["X-Gproc-Signature"] = signature(secret, body)
        try:
            answer = self._http.post(
                row.url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if error is None:
            self.store.mark_notification(
                row.id, delivered_at=utcnow(), attempts=row.attempts + 1, last_error=None
            )
            return True
        attempts = row.attempts + 1
        delay = min(self.max_backoff_s, self.backoff_s * 2**row.attempts)
        fields = {
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
        }
        if attempts >= self.max_attempts:  # given up: kept, never retried
            fields["next_attempt_at"] = utcnow() + timedelta(days=36500)
            log.warning("notification %s to %s given up: %s", row.id, row.url, error)
        self.store.mark_notification(row.id, **fields)
        return False
