"""TLS stream fixes for cheroot's pyOpenSSL adapter, applied to every gproc server.

cheroot's reader fails request bodies that arrive in a later TLS record than the
headers and polls with 10 ms sleeps; its writer drops the connection when the
socket buffer fills in the middle of a large response. These classes replace the
adapter's stream classes (see ``security.tls``).
"""

from __future__ import annotations

import select
import time
from typing import Any

from cheroot.ssl.pyopenssl import SSLFileobjectStreamReader, SSLFileobjectStreamWriter
from OpenSSL import SSL


class PatientReader(SSLFileobjectStreamReader):
    """Two fixes to cheroot's pyOpenSSL reader. It retries WantReadError in
    recv/readline but not in read(), so a body arriving in a later TLS record than the
    headers (what most HTTP clients send) failed: read() now uses read1 (one raw read
    at a time, so a retry never loses buffered bytes) under the retry loop. And it
    retried by sleeping 10 ms, adding up to 10 ms per wait to every call: it now waits
    for the socket to become readable instead. The request gate (``security.tls_gate``)
    sets ``_gproc_deadline`` on a request that came too late: reads then stop
    waiting at that moment."""

    _gproc_deadline: float | None = None

    def _safe_call(self, is_reader: bool, call: Any, *args: Any, **kwargs: Any) -> Any:
        return super()._safe_call(is_reader, self._patient(call), *args, **kwargs)  # type: ignore[misc]

    def _patient(self, call: Any) -> Any:
        sock = self.raw._sock  # type: ignore[attr-defined]  # the SSL connection
        limit = float(self.ssl_timeout or 30)  # type: ignore[attr-defined]

        def run(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + limit
            if self._gproc_deadline is not None:
                deadline = min(deadline, self._gproc_deadline)
            while True:
                try:
                    return call(*args, **kwargs)
                except (SSL.WantReadError, SSL.WantWriteError) as exc:
                    left = deadline - time.monotonic()
                    reading = isinstance(exc, SSL.WantReadError)
                    if left <= 0 or not any(
                        select.select(
                            [sock] if reading else [], [] if reading else [sock], [], left
                        )
                    ):
                        raise TimeoutError("TLS read timed out") from None

        return run

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self._read_some(1 << 16), b""))
        out = bytearray()
        while len(out) < size:
            try:
                chunk = self._read_some(size - len(out))
            except TimeoutError:
                if out:  # a short read: what arrived is returned, the next read fails
                    break
                raise
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _read_some(self, size: int) -> bytes:
        chunk: bytes = self._safe_call(True, super().read1, size)
        return chunk


class PatientWriter(SSLFileobjectStreamWriter):
    """cheroot's TLS writer hands pyOpenSSL's WantWriteError (a full socket buffer on
    the non-blocking socket) straight up, which drops the connection in the middle
    of any large response. This writer waits for the socket to become writable and
    resends the rest (pyOpenSSL enables partial and moving-buffer writes)."""

    _gproc_timeout = 60.0

    def _flush_unlocked(self) -> None:
        self._checkClosed("flush of closed file")  # type: ignore[call-arg]
        if not self._write_buf:  # type: ignore[attr-defined]
            return
        data = bytes(self._write_buf)  # type: ignore[attr-defined]
        self._write_buf.clear()  # type: ignore[attr-defined]
        sock = self.raw._sock  # type: ignore[attr-defined]
        view, offset = memoryview(data), 0
        deadline = time.monotonic() + self._gproc_timeout
        while offset < len(data):
            try:
                offset += sock.send(view[offset:])
                deadline = time.monotonic() + self._gproc_timeout
            except (SSL.WantWriteError, SSL.WantReadError) as exc:
                left = deadline - time.monotonic()
                writing = isinstance(exc, SSL.WantWriteError)
                if left <= 0 or not any(
                    select.select([] if writing else [sock], [sock] if writing else [], [], left)
                ):
                    raise TimeoutError("TLS write timed out") from None
            except SSL.SysCallError as exc:
                raise ConnectionError(f"client went away: {exc}") from None
            except SSL.Error as exc:
                raise ConnectionError(f"TLS error: {exc}") from None
