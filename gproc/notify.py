"""Signed callback delivery shared by workflows and tasks: an outbox drained at least once.

Stores write an outbox row with every state change of a subscribed workflow or task
(same transaction), so tracking only ever inserts rows; a :class:`Deliverer` runs in
its own thread and a slow or dead callback delays nothing but its own deliveries.
Each POST carries the event as its JSON body, with headers ``X-Gproc-Event-Id``
(stable: a redelivery has the same id, so receivers de-duplicate) and
``X-Gproc-Signature: sha256=<hex HMAC-SHA256 of the body with the subscription's
secret>``. A 2xx answer is a delivery; anything else is retried after
``backoff_s * 2**attempts`` (capped), up to ``max_attempts``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests

from gproc.errors import InvalidRequest
from gproc.models import utcnow

log = logging.getLogger("gproc.notify")

# scheme, a host without credentials (no "@" before the path), an optional path
CALLBACK_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[\x21-\x7e]*)?$")
SECRET_RE = re.compile(r"^[\x21-\x7e]{16,128}$")
MAX_URL = 2048
GIVEN_UP = timedelta(days=36500)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_callback(url: str | None, secret: str | None, *, secret_required: bool = False) -> None:
    """Refuse a callback URL that is not plain http(s) (credentials, other schemes,
    spaces, too long) and a secret that is not 16-128 printable ASCII characters."""
    if url is not None and (len(url) > MAX_URL or not CALLBACK_RE.fullmatch(url)):
        raise InvalidRequest(
            f"callback_url must be an http(s) URL of printable ASCII without credentials, "
            f"at most {MAX_URL} characters",
            field="callback_url",
        )
    if secret is not None and not SECRET_RE.fullmatch(secret):
        raise InvalidRequest(
            "callback_secret: 16-128 printable ASCII characters", field="callback_secret"
        )
    if secret_required and url is not None and secret is None:
        raise InvalidRequest("callback_url needs a callback_secret", field="callback_secret")


class OutboxItem(Protocol):
    id: str
    url: str
    body: str
    attempts: int


class Outbox(Protocol):
    """Where a deliverer finds due events and records what became of them."""

    def due(self, now: datetime) -> list[Any]: ...
    def secret(self, item: Any) -> str | None: ...
    def mark(self, event_id: str, **fields: Any) -> None: ...


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 12,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        poll_s: float = 1.0,
        name: str = "gproc-notify",
        gate: Callable[[], bool] | None = None,
    ) -> None:
        self.outbox = outbox
        # several replicas: only the tracker leader delivers (gproc.leader)
        self.gate = gate
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.gate is None or self.gate():
                    self.deliver_due()
            except Exception:  # the loop must survive anything
                log.exception("notification round failed")
            self._stop.wait(self.poll_s)

    def deliver_due(self) -> int:
        """One round over due deliveries; the number delivered."""
        delivered = 0
        for item in self.outbox.due(utcnow()):
            if self._stop.is_set():
                break
            delivered += self._deliver(item)
        return delivered

    def _deliver(self, item: OutboxItem) -> bool:
        body = item.body.encode()
        headers = {"Content-Type": "application/json", "X-Gproc-Event-Id": item.id}
        secret = self.outbox.secret(item)
        if secret:
            headers["X-Gproc-Signature"] = signature(secret, body)
        try:
            answer = self._http.post(
                item.url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        attempts = item.attempts + 1
        if error is None:
            self.outbox.mark(item.id, delivered_at=utcnow(), attempts=attempts, last_error=None)
            return True
        delay = min(self.max_backoff_s, self.backoff_s * 2**item.attempts)
        next_at = utcnow() + timedelta(seconds=delay)
        if attempts >= self.max_attempts:  # given up: kept, never retried
            next_at = utcnow() + GIVEN_UP
            log.warning("notification %s to %s given up: %s", item.id, item.url, error)
        self.outbox.mark(item.id, attempts=attempts, last_error=error, next_attempt_at=next_at)
        return False
