"""POSIX backend: a local (or NFS/FUSE-mounted) directory tree.

Every path is resolved openat-style from a descriptor of the root, one component
at a time with ``O_NOFOLLOW``, so no symlink -- final, intermediate, or swapped in
while a transfer runs -- can lead outside the root: an open descriptor keeps
pointing at the directory it was resolved to, and the final rename happens
relative to that descriptor. Renames that must not replace use renameat2's
RENAME_NOREPLACE (atomic), falling back to link+unlink for files.

The checksums computed while a file is uploaded are kept in an extended attribute
of the file (``user.gproc.sums``) together with the size and modification time
(ns) they belong to; :meth:`PosixBackend.checksum` serves them while both still
match, so any other write (in place, truncation, another program) invalidates them
and the file is hashed again (and the result kept). A writer that restores the
old size and mtime on purpose defeats this, as it defeats rsync and make. A file
system without user xattrs simply hashes every time.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as st
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

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
    StorageError,
    WriteOptions,
    from_oserror,
    metered,
    temp_name,
    verify,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
SUMS_XATTR = "user.gproc.sums"
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


class PosixBackend(Backend):
    """A directory tree; nothing outside ``root`` is ever opened."""

    kind = "posix"

    def __init__(self, root: str | Path, *, create: bool = False, fsync: bool = True) -> None:
        """``fsync=False`` publishes uploads without flushing them to disk first: still
        atomic for readers, but a crash of the machine may leave an empty or short
        file under the final name (what stock sftp-server and nginx do)."""
        self.root = Path(root)
        self.fsync = fsync
        if not self.root.is_absolute():
            raise ValueError(f"POSIX backend root must be absolute: {root}")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    # -- resolution ---------------------------------------------------------------
    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise BackendUnavailable(f"storage root unavailable: {exc.strerror}") from None

    @contextmanager
    def _dir(self, parts: tuple[str, ...], display: str) -> Iterator[int]:
        """A descriptor of the directory ``parts`` below the root (no symlinks crossed)."""
        with ExitStack() as stack:
            fd = self._open_root()
            stack.callback(os.close, fd)
            for name in parts:
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise self._walkfrom_oserror(exc, fd, name, display) from None
                stack.callback(os.close, fd)
            yield fd

    @staticmethod
    def _walkfrom_oserror(exc: OSError, dir_fd: int, name: str, display: str) -> StorageError:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except OSError:
                mode = 0
            if st.S_ISLNK(mode):
                return InvalidPath(f"{display}: crosses a symbolic link")
            return Conflict(f"{display}: a path component is not a directory")
        return from_oserror(exc, display)

    @contextmanager
    def _parent(self, path: str) -> Iterator[tuple[int, str]]:
        parts = paths.split(path)
        if not parts:
            raise InvalidPath("the root has no parent")
        with self._dir(parts[:-1], path) as fd:
            yield fd, parts[-1]

    @staticmethod
    def _lstat(fd: int, name: str, display: str) -> os.stat_result:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            raise from_oserror(exc, display) from None
        if st.S_ISLNK(info.st_mode):
            raise InvalidPath(f"{display}: is a symbolic link")
        if not (st.S_ISREG(info.st_mode) or st.S_ISDIR(info.st_mode)):
            raise InvalidPath(f"{display}: not a regular file or directory")
        return info

    @staticmethod
    def _entry(name: str, info: os.stat_result) -> Entry:
        is_dir = st.S_ISDIR(info.st_mode)
        return Entry(name, is_dir, 0 if is_dir else info.st_size, info.st_mtime)

    # -- operations -----------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        if not paths.split(path):
            with self._dir((), path) as fd:
                return self._entry("", os.fstat(fd))
        with self._parent(path) as (fd, name):
            return self._entry(name, self._lstat(fd, name, path))

    def listdir(self, path: str) -> list[Entry]:
        with self._dir(paths.split(path), path) as fd:
            out = []
            for item in os.scandir(fd):
                if item.name.startswith(paths.RESERVED_PREFIX) or item.is_symlink():
                    continue
                try:
                    paths.check_component(item.name)
                    info = item.stat(follow_symlinks=False)
                except (InvalidPath, OSError):
                    continue  # names users could not address anyway
                if st.S_ISREG(info.st_mode) or st.S_ISDIR(info.st_mode):
                    out.append(self._entry(item.name, info))
        return sorted(out, key=lambda e: e.name)

    def _open(self, path: str) -> int:
        """A read descriptor of the file or directory at ``path`` (no symlinks)."""
        if not paths.split(path):
            return self._open_root()
        with self._parent(path) as (dfd, name):
            try:
                return os.open(name, _OPEN_FLAGS, dir_fd=dfd)
            except OSError as exc:
                raise self._walkfrom_oserror(exc, dfd, name, path) from None

    def _open_file(self, path: str) -> int:
        fd = self._open(path)
        if not st.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Conflict(f"{path}: not a regular file")
        return fd

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidRange(f"bad range offset={offset} length={length}")
        return self._pread(self._open_file(path), offset, length)

    def checksum(self, path: str) -> Checksums:
        """The checksums stored at upload while they still match the file, else
        computed by reading it (and stored for the next time)."""
        fd = self._open_file(path)
        try:
            info = os.fstat(fd)
            sums = _stored_sums(fd, info)
            if sums is None:
                hasher = Hasher()
                offset = 0
                while data := os.pread(fd, CHUNK, offset):
                    hasher.update(data)
                    offset += len(data)
                sums = hasher.result()
                _store_sums(fd, info, sums)  # stamped with the stat taken before reading
            return sums
        except OSError as exc:
            raise from_oserror(exc, path) from None
        finally:
            os.close(fd)

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        fd = self._open(path)
        try:
            before = os.fstat(fd)
            sums = _stored_sums(fd, before) if st.S_ISREG(before.st_mode) else None
            os.utime(fd, ns=(int(atime * 1e9), int(mtime * 1e9)))
            if sums is not None:  # the content did not change: keep its checksums valid
                _store_sums(fd, os.fstat(fd), sums)
        except OSError as exc:
            raise from_oserror(exc, path) from None
        finally:
            os.close(fd)

    @staticmethod
    def _pread(fd: int, offset: int, length: int | None) -> Iterator[bytes]:
        try:
            left = length
            while left is None or left > 0:
                want = CHUNK if left is None else min(CHUNK, left)
                data = os.pread(fd, want, offset)
                if not data:
                    return
                offset += len(data)
                if left is not None:
                    left -= len(data)
                yield data
        finally:
            os.close(fd)

    def write_stream(
        self, path: str, chunks: Iterable[bytes], options: WriteOptions = DEFAULT_WRITE
    ) -> Checksums:
        with self._parent(path) as (dfd, name):
            self._check_target(dfd, name, options.overwrite, path)
            tmp = temp_name()
            try:
                fd = os.open(
                    tmp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dfd,
                )
            except OSError as exc:
                raise from_oserror(exc, path) from None
            try:
                sums = self._fill(fd, chunks, options, path)
                self._publish(dfd, tmp, name, options.overwrite, path)
            except BaseException:
                _unlink_quietly(dfd, tmp)
                raise
            return sums

    def _fill(
        self, fd: int, chunks: Iterable[bytes], options: WriteOptions, path: str
    ) -> Checksums:
        hasher = Hasher()
        try:  # errors raised by the source itself (client gone...) pass through as they are
            for data in metered(chunks, hasher, options.max_bytes):
                _write_all(fd, data, path)
            sums = verify(hasher, options.expected)
            _store_sums(fd, os.fstat(fd), sums)
            if self.fsync:
                _fsync(fd, path)
        finally:
            os.close(fd)
        return sums

    def _check_target(self, dfd: int, name: str, overwrite: bool, path: str) -> None:
        """Refuse early (before any data is read) what publishing would refuse."""
        try:
            info = self._lstat(dfd, name, path)
        except NotFound:
            return
        if not overwrite:
            raise AlreadyExists(f"{path}: already exists")
        if not st.S_ISREG(info.st_mode):
            raise Conflict(f"{path}: exists and is not a regular file")

    def _publish(self, dfd: int, tmp: str, name: str, overwrite: bool, path: str) -> None:
        if not overwrite:
            _rename_noreplace(dfd, tmp, dfd, name, path)
            return
        self._check_target(dfd, name, True, path)
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            raise from_oserror(exc, path) from None

    def delete(self, path: str) -> None:
        with self._parent(path) as (fd, name):
            info = self._lstat(fd, name, path)
            try:
                if st.S_ISDIR(info.st_mode):
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError as exc:
                raise from_oserror(exc, path) from None

    def mkdir(self, path: str, parents: bool = False) -> None:
        parts = paths.split(path)
        if not parts:
            if parents:
                return
            raise AlreadyExists("/: already exists")
        if parents:
            for i in range(1, len(parts)):
                self._mkdir_one(parts[:i], exist_ok=True)
        self._mkdir_one(parts, exist_ok=parents)

    def _mkdir_one(self, parts: tuple[str, ...], exist_ok: bool) -> None:
        display = paths.join(parts)
        with self._dir(parts[:-1], display) as fd:
            try:
                os.mkdir(parts[-1], 0o755, dir_fd=fd)
            except FileExistsError:
                if not exist_ok:
                    raise AlreadyExists(f"{display}: already exists") from None
                if not st.S_ISDIR(self._lstat(fd, parts[-1], display).st_mode):
                    raise Conflict(f"{display}: exists and is not a directory") from None
            except OSError as exc:
                raise from_oserror(exc, display) from None

    def rename(self, src: str, dst: str) -> None:
        sp, dp = paths.split(src), paths.split(dst)
        if not sp or not dp:
            raise InvalidPath("cannot rename the root")
        if paths.is_within(dp, sp):
            raise Conflict(f"{dst}: cannot move a directory into itself")
        with self._parent(src) as (sfd, sname), self._parent(dst) as (dfd, dname):
            self._lstat(sfd, sname, src)
            _rename_noreplace(sfd, sname, dfd, dname, dst)


def _stored_sums(fd: int, info: os.stat_result) -> Checksums | None:
    """The checksums kept on the file if they belong to its current size and mtime."""
    try:
        raw = os.getxattr(fd, SUMS_XATTR).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = raw.split()
    if len(fields) != 5 or fields[0] != "1":
        return None
    if fields[1:3] != [str(info.st_size), str(info.st_mtime_ns)]:
        return None
    return Checksums(fields[3], fields[4])


def _store_sums(fd: int, info: os.stat_result, sums: Checksums) -> None:
    """Keep ``sums`` on the file, valid for the size and mtime in ``info``."""
    value = f"1 {info.st_size} {info.st_mtime_ns} {sums.adler32} {sums.sha256}"
    with suppress(OSError):  # no user xattrs here: checksums are computed each time
        os.setxattr(fd, SUMS_XATTR, value.encode("ascii"))


def _write_all(fd: int, data: bytes, display: str) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise from_oserror(exc, display) from None


def _fsync(fd: int, display: str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_oserror(exc, display) from None


def _unlink_quietly(dfd: int, name: str) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=dfd)


def _rename_noreplace(sfd: int, sname: str, dfd: int, dname: str, display: str) -> None:
    """Atomic rename that fails with AlreadyExists instead of replacing ``dname``."""
    if _renameat2 is not None:
        rc = _renameat2(sfd, os.fsencode(sname), dfd, os.fsencode(dname), _RENAME_NOREPLACE)
        if rc == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise from_oserror(OSError(code, os.strerror(code)), display)
    try:  # filesystems without RENAME_NOREPLACE: link() never replaces
        os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        os.unlink(sname, dir_fd=sfd)
    except OSError as exc:
        raise from_oserror(exc, display) from None
