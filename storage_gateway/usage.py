"""Running byte counts of the areas that have quotas.

Walking an area on every upload made each upload cost O(files in the area). The
meter walks an area once (its first use), then moves the count by what the
gateway's own writes and deletes change; a background recount every
``reconcile_s`` seconds catches changes made outside the gateway and the drift of
racing overwrites of one file. Changes counted while a recount walks are added to
its result, so a recount can briefly over-count a concurrent upload (a quota is
then stricter for a while, never looser).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from gproc.storage_gateway.backends.base import Backend, StorageError

log = logging.getLogger("gproc.gateway.usage")
Key = tuple[str, str]  # (backend name, area root inside it)


@dataclass
class _Count:
    used: int
    counted_at: float
    recounting: bool = False
    during: int = 0  # changes seen while a recount walks


class UsageMeter:
    """Thread-safe byte counts per (backend, area root)."""

    def __init__(self, reconcile_s: float = 300.0) -> None:
        self.reconcile_s = reconcile_s
        self._lock = threading.Lock()
        self._counts: dict[Key, _Count] = {}

    def used(self, key: Key, backend: Backend, root: str) -> int:
        """Bytes used below ``root``: walked on first use, then the running count."""
        with self._lock:
            count = self._counts.get(key)
            if count is not None:
                if self._due(count):
                    count.recounting, count.during = True, 0
                    threading.Thread(
                        target=self._recount,
                        args=(key, backend, root),
                        name="gateway-usage",
                        daemon=True,
                    ).start()
                return count.used
        walked = backend.usage(root)  # outside the lock: other areas go on
        with self._lock:
            return self._counts.setdefault(key, _Count(walked, time.monotonic())).used

    def _due(self, count: _Count) -> bool:
        return not count.recounting and time.monotonic() - count.counted_at >= self.reconcile_s

    def add(self, key: Key, delta: int) -> None:
        """Move a known count by ``delta`` bytes (unknown areas are walked when used)."""
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                return
            count.used = max(0, count.used + delta)
            if count.recounting:
                count.during += delta

    def _recount(self, key: Key, backend: Backend, root: str) -> None:
        try:
            walked: int | None = backend.usage(root)
        except StorageError as exc:  # keep the running count; try again later
            log.info("usage recount of %s failed: %s", root, exc)
            walked = None
        with self._lock:
            count = self._counts[key]
            if walked is not None:
                count.used = max(0, walked + count.during)
            count.recounting, count.during = False, 0
            count.counted_at = time.monotonic()
