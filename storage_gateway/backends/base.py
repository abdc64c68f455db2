"""The storage backend contract (modelled on rucio's RSE protocols) and its errors.

A backend serves one tree rooted at a configured location; every method takes a
canonical absolute path *inside* that tree (``/`` is the backend root) and
re-validates it, so a caller bug can never address anything outside. Uploads are
atomic: ``write_stream`` writes to a hidden sibling, verifies size/checksum and only
then renames; any failure (client gone, quota, checksum, backend error) removes the
partial data and the final name never shows a partial file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gproc import errors

CHUNK = 1024 * 1024


class StorageError(errors.GprocError):
    """Base of every storage error; ``str()`` is safe to show to the client. Each
    subclass also derives from its :mod:`gproc.errors` category (and takes its code)."""


class NotFound(StorageError, errors.NotFound):
    """The path (or its parent) does not exist, or is invisible to the caller."""


class AlreadyExists(StorageError, errors.Conflict):
    """The target exists and the operation would replace it."""


class Conflict(StorageError, errors.Conflict):
    """Wrong kind of object: a directory where a file is needed, non-empty directory..."""


class PermissionDenied(StorageError, errors.NotAuthorised):
    """The caller may not do this here (access rules or backend permissions)."""


class BackendUnavailable(StorageError, errors.Unavailable):
    """The backend cannot be reached; other areas keep working."""


class QuotaExceeded(StorageError, errors.LimitExceeded):
    """The write would take the area over its quota (nothing was kept)."""


class InvalidPath(StorageError, errors.InvalidRequest):
    """The path is not canonical, escapes its root or crosses a symlink."""


class InvalidRange(StorageError, errors.InvalidRequest):
    """A read range with a negative offset or length."""


class ChecksumMismatch(StorageError, errors.InvalidRequest):
    """Uploaded data did not match the checksum the client announced (nothing was kept)."""


class NotSupported(StorageError, errors.InvalidRequest):
    """The backend cannot do this (e.g. store file modes); nothing was changed."""


@dataclass(frozen=True)
class Entry:
    """One file or directory as a backend reports it."""

    name: str
    is_dir: bool
    size: int
    mtime: float


@dataclass(frozen=True)
class Checksums:
    """adler32 (the grid convention, 8 lower-case hex digits) and sha256 (hex)."""

    adler32: str
    sha256: str


class Hasher:
    """Incremental adler32 + sha256 + byte count, fed while data streams through."""

    def __init__(self) -> None:
        self._adler = 1
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._adler = zlib.adler32(data, self._adler)
        self._sha.update(data)
        self.size += len(data)

    def result(self) -> Checksums:
        return Checksums(f"{self._adler & 0xFFFFFFFF:08x}", self._sha.hexdigest())


@dataclass(frozen=True)
class WriteOptions:
    """Options of one upload: replace an existing file, byte budget, announced checksums."""

    overwrite: bool = False
    max_bytes: int | None = None
    expected: Checksums | None = None


DEFAULT_WRITE = WriteOptions()


def temp_name() -> str:
    """Hidden sibling name of an in-flight upload (reserved: users cannot address it)."""
    return f".gw-upload-{secrets.token_hex(8)}"


def metered(chunks: Iterable[bytes], hasher: Hasher, max_bytes: int | None) -> Iterator[bytes]:
    """Pass chunks through, hashing them; stop with QuotaExceeded past ``max_bytes``."""
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("upload chunks must be bytes")
        data = bytes(chunk)
        if max_bytes is not None and hasher.size + len(data) > max_bytes:
            raise QuotaExceeded(f"upload exceeds the {max_bytes}-byte allowance")
        hasher.update(data)
        if data:
            yield data


def verify(hasher: Hasher, expected: Checksums | None) -> Checksums:
    """The upload's checksums; raise ChecksumMismatch against an announced value."""
    got = hasher.result()
    if expected is not None:
        if expected.adler32 and expected.adler32.lower() != got.adler32:
            raise ChecksumMismatch(f"adler32 {got.adler32} != announced {expected.adler32}")
        if expected.sha256 and expected.sha256.lower() != got.sha256:
            raise ChecksumMismatch("sha256 differs from the announced value")
    return got


def from_oserror(exc: OSError, path: str) -> StorageError:
    """Translate an OSError into the backend error hierarchy (message names the path)."""
    code = exc.errno
    if code is None:
        return StorageError(f"{path}: {exc}")
    if code == errno.ENOENT:
        return NotFound(f"{path}: no such file or directory")
    if code == errno.EEXIST:
        return AlreadyExists(f"{path}: already exists")
    if code == errno.ELOOP:
        return InvalidPath(f"{path}: crosses a symbolic link")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(f"{path}: permission denied by the storage")
    if code in (errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR, errno.EINVAL):
        return Conflict(f"{path}: {os.strerror(code or 0).lower()}")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return QuotaExceeded(f"{path}: storage full")
    if code in (errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN):
        return BackendUnavailable(f"{path}: storage unavailable ({os.strerror(code or 0)})")
    return StorageError(f"{path}: {os.strerror(code or 0)}")


class Backend(ABC):
    """One storage system, rooted at a configured location."""

    kind: str = "abstract"

    @abstractmethod
    def stat(self, path: str) -> Entry:
        """The entry at ``path`` (NotFound when absent; symlinks are refused)."""

    @abstractmethod
    def listdir(self, path: str) -> list[Entry]:
        """Entries of a directory, sorted by name, without in-flight uploads."""

    @abstractmethod
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (all when None) of a file from ``offset``."""

    @abstractmethod
    def write_stream(
        self, path: str, chunks: Iterable[bytes], options: WriteOptions = DEFAULT_WRITE
    ) -> Checksums:
        """Atomically create (or with ``overwrite`` replace) a file from ``chunks``."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove a file or an empty directory."""

    @abstractmethod
    def mkdir(self, path: str, parents: bool = False) -> None:
        """Create a directory (AlreadyExists if present unless ``parents``)."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``; never replaces an existing ``dst``."""

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        """Set a file's or directory's access and modification times (seconds)."""
        raise NotSupported(f"{path}: this storage cannot set times")

    def checksum(self, path: str) -> Checksums:
        """adler32 + sha256 of a file, computed by streaming it once (backends that
        keep the checksums computed at upload serve those instead)."""
        hasher = Hasher()
        for chunk in self.open_read(path):
            hasher.update(chunk)
        return hasher.result()

    def usage(self, path: str = "/") -> int:
        """Total bytes of files below ``path`` (for quotas); backends may do better."""
        entry = self.stat(path)
        if not entry.is_dir:
            return entry.size
        total = 0
        for child in self.listdir(path):
            sub = path.rstrip("/") + "/" + child.name
            total += self.usage(sub) if child.is_dir else child.size
        return total

    def exists(self, path: str) -> bool:
        """True when ``path`` exists (a symlink counts as absent)."""
        try:
            self.stat(path)
        except (NotFound, InvalidPath):
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""
