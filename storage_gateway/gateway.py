"""Storage operations on logical paths for an authenticated identity.

This is what the transfer fronts (HTTPS, SFTP) and task staging call: every
operation validates the path, resolves it through the namespace, checks the area
rules, applies quotas, and only then touches a backend. Virtual directories (``/``,
``/groups``, the bare ``/private``) are listed from the mount table and show only
what the caller may read; another user's private area is reported as NotFound.
A :class:`RemovalListener` given at construction hears of every delete and rename
(the data catalogue marks its entry at that location gone at once).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from gproc.security.identity import Identity
from gproc.storage_gateway import paths
from gproc.storage_gateway.access import ActingForOwner, AreaKind, Op, Principal, user_key
from gproc.storage_gateway.backends.base import (
    AlreadyExists,
    Checksums,
    Conflict,
    Entry,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    WriteOptions,
)
from gproc.storage_gateway.namespace import Area, Namespace, Resolved
from gproc.storage_gateway.usage import UsageMeter

_ROOT_CACHE_S = 60.0
log = logging.getLogger("gproc.gateway")


class RemovalListener(ABC):
    """Told, after the backend did it, that a path was deleted or renamed away."""

    @abstractmethod
    def on_removed(self, location: str) -> None:
        """``location``: the normalised logical path (a file, or a folder and all below it)."""


class StorageGateway:
    """Identity-aware facade over a :class:`Namespace` (thread-safe: its mutable state
    is a cache of area roots known to exist and the quota areas' running usage)."""

    def __init__(
        self,
        namespace: Namespace,
        usage: UsageMeter | None = None,
        removals: RemovalListener | None = None,
    ) -> None:
        self.namespace = namespace
        self.usage = usage or UsageMeter()
        self.removals = removals
        self._roots_made: dict[tuple[str, str], float] = {}

    # -- resolution + access --------------------------------------------------------
    def _target(self, identity: Principal, path: str, op: Op) -> Resolved:
        if isinstance(identity, ActingForOwner) and not identity.permits(paths.normalise(path), op):
            raise PermissionDenied(
                f"{path}: {identity.service} acting for {identity.subject_grid} may only "
                f"write and read below {identity.scope}"
            )
        resolved = self.namespace.resolve(path)
        if resolved is None:
            if op is Op.WRITE:
                raise PermissionDenied(f"{path}: virtual directory, not writable")
            raise Conflict(f"{path}: virtual directory")  # callers handle listing/stat
        rules = resolved.area.rules
        decision = rules.decide(identity, op, resolved.owner)
        if not decision:
            if resolved.area.kind is AreaKind.PRIVATE and resolved.owner is not None:
                raise NotFound(f"{path}: no such file or directory")
            raise PermissionDenied(f"{path}: denied by rule '{decision.rule}': {decision.message}")
        self._ensure_root(resolved)
        return resolved

    def _ensure_root(self, resolved: Resolved) -> None:
        """Create the area root (and a private area on its owner's first use)."""
        key = (resolved.area.backend, resolved.area_root)
        if time.monotonic() - self._roots_made.get(key, -_ROOT_CACHE_S) < _ROOT_CACHE_S:
            return
        resolved.backend.mkdir(resolved.area_root, parents=True)
        self._roots_made[key] = time.monotonic()

    def home(self, identity: Principal) -> str | None:
        """Logical path of the caller's private area (None when none is configured)."""
        for area in self.namespace.areas:
            if area.kind is AreaKind.PRIVATE and area.rules.members.covers(identity):
                return paths.join((*area.mount, user_key(identity)))
        return None

    # -- read operations -----------------------------------------------------------
    def stat(self, identity: Identity, path: str) -> Entry:
        parts = paths.split(path)
        if self.namespace.resolve(path) is None:
            if self._virtual_entries(identity, parts) is None:
                raise NotFound(f"{path}: no such file or directory")
            return Entry(parts[-1] if parts else "", True, 0, 0.0)
        resolved = self._target(identity, path, Op.READ)
        entry = resolved.backend.stat(resolved.backend_path)
        return Entry(parts[-1], entry.is_dir, entry.size, entry.mtime)

    def listdir(self, identity: Identity, path: str) -> list[Entry]:
        parts = paths.split(path)
        if self.namespace.resolve(path) is None:
            entries = self._virtual_entries(identity, parts)
            if entries is None:
                raise NotFound(f"{path}: no such file or directory")
            return entries
        resolved = self._target(identity, path, Op.READ)
        return resolved.backend.listdir(resolved.backend_path)

    def _virtual_entries(self, identity: Identity, parts: tuple[str, ...]) -> list[Entry] | None:
        """Entries of a virtual directory the caller can see (None: no such directory)."""
        area = self.namespace.find(parts)
        if area is not None and area.kind is AreaKind.PRIVATE and parts == area.mount:
            if not area.rules.members.covers(identity):
                return None
            return [Entry(user_key(identity), True, 0, 0.0)]
        children = self.namespace.children(parts)
        if not children:
            return None
        names = sorted({name for name, a in children if self._can_see(identity, a)})
        return [Entry(n, True, 0, 0.0) for n in names]

    @staticmethod
    def _can_see(identity: Identity, area: Area) -> bool:
        return bool(area.rules.decide(identity, Op.READ))

    def open_read(
        self, identity: Identity, path: str, offset: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        resolved = self._target(identity, path, Op.READ)
        return resolved.backend.open_read(resolved.backend_path, offset, length)

    def checksum(self, identity: Identity, path: str) -> Checksums:
        resolved = self._target(identity, path, Op.READ)
        return resolved.backend.checksum(resolved.backend_path)

    # -- write operations -------------------------------------------------------------
    def _writable(self, identity: Principal, path: str) -> Resolved:
        resolved = self._target(identity, path, Op.WRITE)
        if not resolved.rest:
            raise PermissionDenied(f"{path}: the area root itself cannot be changed")
        return resolved

    def write(
        self,
        identity: Principal,
        path: str,
        chunks: Iterable[bytes],
        *,
        overwrite: bool = False,
        expected: Checksums | None = None,
    ) -> Checksums:
        """Atomic upload; quota and announced checksums enforced while streaming."""
        resolved = self._writable(identity, path)
        if resolved.area.quota is None:
            return resolved.backend.write_stream(
                resolved.backend_path, chunks, WriteOptions(overwrite, None, expected)
            )
        replaced = self._size_of(resolved) if overwrite else 0
        budget = self._budget(resolved, replaced)
        counted = _Counted(chunks)
        sums = resolved.backend.write_stream(
            resolved.backend_path, counted, WriteOptions(overwrite, budget, expected)
        )
        self.usage.add(_usage_key(resolved), counted.size - replaced)
        return sums

    def check_write(self, identity: Identity, path: str, overwrite: bool = False) -> None:
        """Refuse now what :meth:`write` would refuse before reading any data (for fronts
        that open a file before the data arrives, like SFTP)."""
        resolved = self._writable(identity, path)
        if not overwrite and resolved.backend.exists(resolved.backend_path):
            raise AlreadyExists(f"{path}: already exists")
        if resolved.area.quota is not None:
            self._budget(resolved, self._size_of(resolved) if overwrite else 0)

    @staticmethod
    def _size_of(resolved: Resolved) -> int:
        """Bytes of the file at the target (0: absent or a directory)."""
        try:
            entry = resolved.backend.stat(resolved.backend_path)
        except NotFound:
            return 0
        return 0 if entry.is_dir else entry.size

    def _budget(self, resolved: Resolved, replaced: int) -> int:
        """Bytes this upload may still use in a quota area. Counted, not reserved:
        concurrent uploads to one area can overshoot by at most their own sizes."""
        quota = resolved.area.quota
        assert quota is not None
        key = _usage_key(resolved)
        used = self.usage.used(key, resolved.backend, resolved.area_root) - replaced
        if used >= quota:
            raise QuotaExceeded(f"{resolved.area.name}: quota of {quota} bytes used up")
        return quota - used

    def mkdir(self, identity: Principal, path: str, parents: bool = False) -> None:
        resolved = self._writable(identity, path)
        resolved.backend.mkdir(resolved.backend_path, parents)

    def delete(self, identity: Principal, path: str) -> None:
        _only_writes(identity, path)
        resolved = self._writable(identity, path)
        size = self._size_of(resolved) if resolved.area.quota is not None else 0
        resolved.backend.delete(resolved.backend_path)
        if size:
            self.usage.add(_usage_key(resolved), -size)
        self._removed(path)

    def _removed(self, path: str) -> None:
        """Tell the listener; the file is gone either way, so its failure is only logged."""
        if self.removals is None:
            return
        try:
            self.removals.on_removed(paths.normalise(path))
        except Exception as exc:  # noqa: BLE001 - never fail a done delete/rename
            log.warning("removal of %s not reported: %s", path, exc)

    def modifiable(self, identity: Identity, path: str) -> Entry:
        """The entry at ``path`` if the caller may change it (for attribute changes)."""
        resolved = self._writable(identity, path)
        return resolved.backend.stat(resolved.backend_path)

    def set_times(self, identity: Identity, path: str, atime: float, mtime: float) -> None:
        """Set access and modification times (the one attribute the gateway keeps)."""
        resolved = self._writable(identity, path)
        resolved.backend.set_times(resolved.backend_path, atime, mtime)

    def rename(self, identity: Principal, src: str, dst: str) -> None:
        """Rename within one area (and one private owner); never replaces ``dst``."""
        _only_writes(identity, src)
        source = self._writable(identity, src)
        target = self._writable(identity, dst)
        if (source.area, source.owner) != (target.area, target.owner):
            raise Conflict(f"{src} -> {dst}: renames cannot cross areas")
        if source.backend_path == target.backend_path:
            raise AlreadyExists(f"{dst}: already exists")
        source.backend.rename(source.backend_path, target.backend_path)
        self._removed(src)


def _only_writes(identity: Principal, path: str) -> None:
    """A service acting for an owner creates and writes; it never deletes or renames."""
    if isinstance(identity, ActingForOwner):
        raise PermissionDenied(f"{path}: {identity.service} may not delete or rename")


def _usage_key(resolved: Resolved) -> tuple[str, str]:
    return (resolved.area.backend, resolved.area_root)


class _Counted:
    """Upload chunks passed through, counting their bytes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk
