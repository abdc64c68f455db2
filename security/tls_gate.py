"""A request gate for cheroot: worker threads only ever see requests that have arrived.

Stock cheroot hands every new connection straight to a worker thread, which then
waits for the TLS handshake, the headers and the body: a few clients that connect
and send slowly (or nothing) hold every worker and starve the service. Here the
selector thread does that waiting instead, without blocking: it reads what each
connection has sent (non-blocking; the TLS handshake happens on the way) into the
connection's read buffer, and passes the connection to a worker only once the
headers and up to ``prefetch_bytes`` of the body are there. A request that is not
there within ``read_timeout_s`` of its first byte is refused: with its headers
in, it goes to a worker whose reads no longer wait (the application answers a
short body with its own 400); without them, the connection gets a 408 and is closed.
Connections that send nothing are closed by cheroot's idle expiry as before.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import time
from typing import Any

from cheroot import connections
from OpenSSL import SSL

log = logging.getLogger("gproc.tls")
MAX_HEADER_BYTES = 64 * 1024
_LENGTH = re.compile(rb"^content-length:[ \t]*(\d{1,18})[ \t]*\r?$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.I | re.M)
_EXPECT = re.compile(rb"^expect:[ \t]*100-continue", re.I | re.M)
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n"
    b"Connection: close\r\n\r\nthe request did not arrive in time\n"
)


def wanted_bytes(buf: bytes, prefetch_bytes: int) -> int | None:
    """How many buffered bytes make ``buf``'s first request ready (None: headers not
    complete yet). Without a known length (chunked, Expect: 100-continue, no body)
    the headers are enough; bodies count up to ``prefetch_bytes``, and not at all
    beyond twice that (the application streams them, or refuses them unread)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return MAX_HEADER_BYTES if len(buf) >= MAX_HEADER_BYTES else None
    head = buf[: end + 4]
    if _CHUNKED.search(head) or _EXPECT.search(head):
        return len(head)
    m = _LENGTH.search(head)
    body = int(m.group(1)) if m else 0
    if body > 2 * prefetch_bytes:  # streamed (or refused unread) by the application
        return len(head)
    return len(head) + min(body, prefetch_bytes)


class GatedConnections(connections.ConnectionManager):  # type: ignore[misc]
    """cheroot's connection manager with the gate described in the module doc."""

    # cheroot's own (its stubs leave the private members out)
    _selector: Any
    _stop_requested: bool
    server: Any
    _remove_invalid_sockets: Any
    _from_server_socket: Any

    def __init__(self, server: Any, *, read_timeout_s: float, prefetch_bytes: int) -> None:
        super().__init__(server)
        self.read_timeout_s = read_timeout_s
        self.prefetch_bytes = prefetch_bytes

    # ---- cheroot's entry points ------------------------------------------------
    def put(self, conn: Any) -> None:
        """A connection back from a worker (keep-alive): wait for its next request."""
        conn.last_used = time.time()
        _reset(conn, _take(conn.rfile))
        if self._ready(conn):  # pipelined: the next request is there already
            self._hand_over(conn, expired=False)
            return
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)

    def _run(self, expiration_interval: float) -> None:
        last_check = time.time()
        tick = min(expiration_interval, 0.5)
        while not self._stop_requested:
            try:
                active = list(self._selector.select(timeout=tick))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for fd, conn in active:
                if conn is self.server:
                    new = self._from_server_socket(self.server.socket)
                    if new is not None:
                        new.last_used = time.time()
                        _reset(new, b"")
                        self._selector.register(new.socket.fileno(), selectors.EVENT_READ, new)
                else:
                    self._advance(fd, conn)
            now = time.time()
            try:
                self._refuse_late()
                if now - last_check > expiration_interval:
                    last_check = now
                    self._expire(threshold=now - self.server.timeout)
            except Exception:  # noqa: BLE001 - the selector thread must keep running
                log.exception("request gate: bookkeeping failed")

    def _expire(self, threshold: float) -> None:
        """Close idle connections; those in the middle of a request have their own bound."""
        idle = [
            (fd, c)
            for fd, c in list(self._selector.connections)
            if c is not self.server and c._gate_since is None and (c.last_used or 0) < threshold
        ]
        for fd, conn in idle:
            self._selector.unregister(fd)
            conn.close()

    # ---- the gate ------------------------------------------------------------------
    def _advance(self, fd: int, conn: Any) -> None:
        """Read what arrived; hand the connection over once its request is there."""
        try:
            got = self._read_available(conn)
        except (OSError, SSL.Error):
            got = -1
        except Exception:  # noqa: BLE001 - one odd client never stops the selector thread
            log.exception("request gate: dropping a connection")
            got = -1
        if got < 0:  # closed, reset or a TLS failure: nothing to answer
            self._selector.unregister(fd)
            conn.close()
            return
        if got:
            conn.last_used = time.time()
            if conn._gate_since is None:
                conn._gate_since = time.monotonic()
        if self._ready(conn):
            self._selector.unregister(fd)
            self._hand_over(conn, expired=False)

    def _read_available(self, conn: Any) -> int:
        """Move what the socket (and OpenSSL) hold into the gate's buffer, without
        waiting. Returns the bytes moved, -1 at end of stream."""
        sock, moved = conn.socket, 0
        while not self._ready(conn):
            try:
                data = sock.recv(65536)
            except (TimeoutError, SSL.WantReadError, SSL.WantWriteError, BlockingIOError):
                return moved
            except SSL.ZeroReturnError:
                return -1
            if not data:
                return moved or -1
            conn._gate_buf += data
            moved += len(data)
            if isinstance(sock, socket.socket):  # plain: one read per readiness event
                return moved
        return moved

    def _ready(self, conn: Any) -> bool:
        if conn._gate_want is None and conn._gate_buf:
            head = bytes(conn._gate_buf[:MAX_HEADER_BYTES])
            conn._gate_want = wanted_bytes(head, self.prefetch_bytes)
        return conn._gate_want is not None and len(conn._gate_buf) >= conn._gate_want

    def _refuse_late(self) -> None:
        limit = time.monotonic() - self.read_timeout_s
        late = [
            (fd, c)
            for fd, c in list(self._selector.connections)
            if c is not self.server and c._gate_since is not None and c._gate_since < limit
        ]
        for fd, conn in late:
            self._selector.unregister(fd)
            if conn._gate_want is not None:
                self._hand_over(conn, expired=True)  # the headers are in: the app answers
            else:
                with contextlib.suppress(OSError, SSL.Error):
                    conn.socket.send(_TIMEOUT_408)
                conn.close()

    def _hand_over(self, conn: Any, *, expired: bool) -> None:
        """To a worker, with what arrived in its read buffer; after the deadline its
        reads fail at once instead of waiting."""
        rfile = conn.rfile
        with rfile._read_lock:
            rfile._read_buf = bytes(conn._gate_buf)
            rfile._read_pos = 0
        rfile._gproc_deadline = time.monotonic() if expired else None
        _reset(conn, b"")
        self.server.process_conn(conn)


def _reset(conn: Any, data: bytes) -> None:
    conn._gate_buf = bytearray(data)
    conn._gate_want = None
    conn._gate_since = time.monotonic() if data else None


def _take(rfile: Any) -> bytes:
    """Empty a cheroot stream reader's buffer (a ``_pyio.BufferedReader``)."""
    with rfile._read_lock:
        data = bytes(rfile._read_buf[rfile._read_pos :])
        rfile._read_buf = b""
        rfile._read_pos = 0
    return data
