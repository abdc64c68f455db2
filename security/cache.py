"""LRU cache of validated identities, bounded by size and by each identity's expiry.

Keyed by SHA-256 of the whole chain DER plus the trust-store and vomsdir generations,
so a CA/CRL/LSC change invalidates every entry without any explicit purge."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from gproc.security.identity import Identity

CacheKey = tuple[bytes, int, int]


class IdentityCache:
    """Thread-safe LRU of Identity objects that drops entries past their not_after."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[CacheKey, Identity] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey, now: datetime) -> Identity | None:
        """The cached identity if present and still valid at `now`."""
        with self._lock:
            ident = self._data.get(key)
            if ident is None or ident.not_after <= now:
                if ident is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return ident

    def put(self, key: CacheKey, ident: Identity) -> None:
        """Insert, evicting the least recently used entries beyond max_entries."""
        if self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = ident
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
