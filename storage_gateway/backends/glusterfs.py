"""GlusterFS backend over libgfapi (PyPI ``gfapi``, ctypes over libgfapi.so.0).

No FUSE mount is needed: the gateway talks to glusterd/bricks directly. Notes:

* ``Volume.umount()`` blocks about 10 s, so each volume is mounted once per process
  and shared (libgfapi is thread-safe); a failed mount is retried at most every few
  seconds, so a dead volume answers BackendUnavailable fast.
* The binding predates GlusterFS 6, whose ``glfs_fsync``/``glfs_ftruncate``/
  ``glfs_pread`` gained two ``struct glfs_stat *`` arguments: calling the binding's
  ``File.fsync`` crashes the process. fsync is therefore called here with the
  current prototype, and reads use lseek + read.
* libgfapi has no ``openat``: each component below the area root is ``lstat``-ed and
  must be a real directory, and files are opened with ``O_NOFOLLOW``. A symlink
  created (through some FUSE mount) between the check and the use is not caught for
  intermediate components -- unlike the POSIX backend, which resolves by descriptor.
* Publishing without replacing uses ``link()`` (fails atomically when the name
  exists) then ``unlink()`` of the hidden upload.
"""

from __future__ import annotations

import collections
import collections.abc
import ctypes
import os
import stat as st
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any

from gproc.storage_gateway import paths
from gproc.storage_gateway.backends.base import (
    CHUNK,
    DEFAULT_WRITE,
    AlreadyExists,
    Backend,
    BackendUnavailable,
    Checksums,
    Conflict,
    Entry,
    Hasher,
    InvalidPath,
    InvalidRange,
    NotFound,
    WriteOptions,
    from_oserror,
    metered,
    temp_name,
    verify,
)

RETRY_MOUNT_S = 5.0
_lock = threading.Lock()
_mounted: dict[tuple[str, int, str], Any] = {}
_failed: dict[tuple[str, int, str], float] = {}


def _gfapi() -> Any:
    """Import the binding (it still uses ``collections.Iterator``, gone in Python 3.10)."""
    if not hasattr(collections, "Iterator"):
        collections.Iterator = collections.abc.Iterator  # type: ignore[attr-defined]
    from gluster.gfapi import gfapi

    return gfapi


def _glfs_fsync(fd: int) -> int:
    from gluster.gfapi import api

    func = api.client.glfs_fsync
    func.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    func.restype = ctypes.c_int
    return int(func(fd, None, None))


def volume(host: str, name: str, port: int = 24007) -> Any:
    """The process-wide mounted ``gfapi.Volume`` (mounting it on first use)."""
    key = (host, port, name)
    with _lock:
        if key in _mounted:
            return _mounted[key]
        if time.monotonic() - _failed.get(key, -RETRY_MOUNT_S) < RETRY_MOUNT_S:
            raise BackendUnavailable(f"GlusterFS volume {name} on {host} unavailable")
        gfapi = _gfapi()
        vol = gfapi.Volume(host, name, port=port)
        try:
            vol.mount()
        except Exception as exc:  # LibgfapiException, OSError
            _failed[key] = time.monotonic()
            raise BackendUnavailable(
                f"GlusterFS volume {name} on {host} unavailable: {type(exc).__name__}"
            ) from None
        _mounted[key] = vol
        return vol


class GlusterBackend(Backend):
    """A directory tree inside one GlusterFS volume."""

    kind = "glusterfs"

    def __init__(self, host: str, volume_name: str, root: str = "/", *, port: int = 24007) -> None:
        self.host, self.volume_name, self.port = host, volume_name, port
        self.root = paths.split(root)

    @property
    def _vol(self) -> Any:
        return volume(self.host, self.volume_name, self.port)

    # -- resolution -----------------------------------------------------------------
    def _full(self, parts: tuple[str, ...]) -> str:
        return "/" + "/".join(self.root + parts)

    def _lstat(self, parts: tuple[str, ...], display: str) -> Any:
        try:
            return self._vol.lstat(self._full(parts))
        except OSError as exc:
            raise from_oserror(exc, display) from None

    def _resolve(self, path: str, *, final: bool = True) -> tuple[tuple[str, ...], Any]:
        """Check every component below the root is a real directory (no symlinks).

        Returns the components and the stat of the final one (None when ``final`` is
        False: only the parents are checked)."""
        parts = paths.split(path)
        upto = len(parts) if final else len(parts) - 1
        info = None
        for i in range(upto + 1):
            info = self._lstat(parts[:i], path)
            if st.S_ISLNK(info.st_mode):
                raise InvalidPath(f"{path}: crosses a symbolic link")
            last = i == len(parts)
            if not last and not st.S_ISDIR(info.st_mode):
                raise Conflict(f"{path}: a path component is not a directory")
            if last and not (st.S_ISDIR(info.st_mode) or st.S_ISREG(info.st_mode)):
                raise InvalidPath(f"{path}: not a regular file or directory")
        return parts, info if final else None

    @staticmethod
    def _entry(name: str, info: Any) -> Entry:
        is_dir = st.S_ISDIR(info.st_mode)
        mtime = info.st_mtime + info.st_mtimensec / 1e9
        return Entry(name, is_dir, 0 if is_dir else int(info.st_size), mtime)

    def _lookup(self, parts: tuple[str, ...], display: str) -> Any | None:
        try:
            info = self._lstat(parts, display)
        except NotFound:
            return None
        if st.S_ISLNK(info.st_mode):
            raise InvalidPath(f"{display}: is a symbolic link")
        return info

    # -- operations -----------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        parts, info = self._resolve(path)
        return self._entry(parts[-1] if parts else "", info)

    def listdir(self, path: str) -> list[Entry]:
        parts, info = self._resolve(path)
        if not st.S_ISDIR(info.st_mode):
            raise Conflict(f"{path}: not a directory")
        try:
            raw = self._vol.listdir_with_stat(self._full(parts))
        except OSError as exc:
            raise from_oserror(exc, path) from None
        out = []
        for name, child in raw:
            try:
                paths.check_component(name)
            except InvalidPath:
                continue
            if st.S_ISREG(child.st_mode) or st.S_ISDIR(child.st_mode):
                out.append(self._entry(name, child))
        return sorted(out, key=lambda e: e.name)

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidRange(f"bad range offset={offset} length={length}")
        parts, info = self._resolve(path)
        if not st.S_ISREG(info.st_mode):
            raise Conflict(f"{path}: not a regular file")
        gfapi = _gfapi()
        try:
            handle = gfapi.File(self._vol.open(self._full(parts), os.O_RDONLY | os.O_NOFOLLOW))
            handle.lseek(offset, os.SEEK_SET)
        except OSError as exc:
            raise from_oserror(exc, path) from None
        return self._read(handle, length, path)

    @staticmethod
    def _read(handle: Any, length: int | None, display: str) -> Iterator[bytes]:
        try:
            left = length
            while left is None or left > 0:
                data = handle.read(CHUNK if left is None else min(CHUNK, left))
                if not data:
                    return
                if left is not None:
                    left -= len(data)
                yield data
        except OSError as exc:
            raise from_oserror(exc, display) from None
        finally:
            with suppress(OSError, ValueError):
                handle.close()

    def write_stream(
        self, path: str, chunks: Iterable[bytes], options: WriteOptions = DEFAULT_WRITE
    ) -> Checksums:
        parts, _ = self._resolve(path, final=False)
        if not parts:
            raise InvalidPath("cannot write the root")
        self._check_target(parts, options.overwrite, path)
        tmp = self._full(parts[:-1]) + "/" + temp_name()
        try:
            sums = self._fill(tmp, chunks, options, path)
            self._publish(tmp, parts, options.overwrite, path)
        except BaseException:
            with suppress(Exception):
                self._vol.unlink(tmp)
            raise
        return sums

    def _check_target(self, parts: tuple[str, ...], overwrite: bool, display: str) -> None:
        info = self._lookup(parts, display)
        if info is None:
            return
        if not overwrite:
            raise AlreadyExists(f"{display}: already exists")
        if not st.S_ISREG(info.st_mode):
            raise Conflict(f"{display}: exists and is not a regular file")

    def _fill(
        self, tmp: str, chunks: Iterable[bytes], options: WriteOptions, display: str
    ) -> Checksums:
        gfapi = _gfapi()
        hasher = Hasher()
        try:
            fd = self._vol.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise from_oserror(exc, display) from None
        handle = gfapi.File(fd)
        try:  # errors raised by the source itself (client gone...) pass through as they are
            for data in metered(chunks, hasher, options.max_bytes):
                self._write_all(handle, data, display)
            if _glfs_fsync(fd) < 0:
                err = ctypes.get_errno()
                raise from_oserror(OSError(err, os.strerror(err)), display)
        finally:
            with suppress(OSError, ValueError):
                handle.close()
        return verify(hasher, options.expected)

    @staticmethod
    def _write_all(handle: Any, data: bytes, display: str) -> None:
        try:
            while data:
                data = data[handle.write(data) :]
        except OSError as exc:
            raise from_oserror(exc, display) from None

    def _publish(self, tmp: str, parts: tuple[str, ...], overwrite: bool, display: str) -> None:
        final = self._full(parts)
        try:
            if overwrite:
                self._check_target(parts, True, display)
                self._vol.rename(tmp, final)
            else:
                self._vol.link(tmp, final)
                self._vol.unlink(tmp)
        except OSError as exc:
            raise from_oserror(exc, display) from None

    def delete(self, path: str) -> None:
        parts, info = self._resolve(path)
        if not parts:
            raise InvalidPath("cannot delete the root")
        try:
            if st.S_ISDIR(info.st_mode):
                self._vol.rmdir(self._full(parts))
            else:
                self._vol.unlink(self._full(parts))
        except OSError as exc:
            raise from_oserror(exc, path) from None

    def mkdir(self, path: str, parents: bool = False) -> None:
        parts = paths.split(path)
        if not parts:
            if parents:
                return
            raise AlreadyExists("/: already exists")
        if parents:
            for i in range(1, len(parts) + 1):
                info = self._lookup(parts[:i], path)
                if info is None:
                    self._mkdir_one(parts[:i], path, exist_ok=True)
                elif not st.S_ISDIR(info.st_mode):
                    raise Conflict(f"{path}: a path component is not a directory")
            return
        self._resolve(path, final=False)
        self._mkdir_one(parts, path, exist_ok=False)

    def _mkdir_one(self, parts: tuple[str, ...], display: str, exist_ok: bool) -> None:
        try:
            self._vol.mkdir(self._full(parts), 0o755)
        except OSError as exc:
            err = from_oserror(exc, display)
            if not (exist_ok and isinstance(err, AlreadyExists)):
                raise err from None

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        parts, _info = self._resolve(path)
        try:
            self._vol.utime(self._full(parts), (atime, mtime))
        except OSError as exc:
            raise from_oserror(exc, path) from None

    def rename(self, src: str, dst: str) -> None:
        sparts, info = self._resolve(src)
        dparts, _ = self._resolve(dst, final=False)
        if not sparts or not dparts:
            raise InvalidPath("cannot rename the root")
        if paths.is_within(dparts, sparts):
            raise Conflict(f"{dst}: cannot move a directory into itself")
        if self._lookup(dparts, dst) is not None:
            raise AlreadyExists(f"{dst}: already exists")
        try:
            if st.S_ISDIR(info.st_mode):
                self._vol.rename(self._full(sparts), self._full(dparts))
            else:
                self._vol.link(self._full(sparts), self._full(dparts))
                self._vol.unlink(self._full(sparts))
        except OSError as exc:
            raise from_oserror(exc, dst) from None
