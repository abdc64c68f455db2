"""Task directories, input staging and output checksums.

Each task owns ``<tasks_dir>/<task_id>/``, which holds the staged inputs under
connector-chosen sandbox names (never user strings), and ``out/`` (made when the
job ends) the retrieved outputs. A registered task is therefore self-contained:
it can be submitted, resubmitted or recovered without the caller's files.
Staging costs one directory and one file per input (no ``in/`` level: tasks
staged that way by earlier versions are still read from there).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from gproc.domain import InvalidTaskRequest, LimitExceeded

SAFE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
OUT_DIR = "out"
LEGACY_IN_DIR = "in"
RESERVED_NAMES = frozenset({OUT_DIR, LEGACY_IN_DIR})  # sub-names of a task directory

InputResolver = Callable[[str, Path], None]
"""Copies the data a source reference names into the given file, or raises."""


def check_sandbox_name(name: str) -> str:
    """Sandbox file names come from connectors; refuse anything that is not a plain name."""
    if not name or name.startswith(".") or not set(name) <= SAFE_NAME_CHARS or len(name) > 128:
        raise ValueError(f"unsafe sandbox file name {name!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"sandbox file name {name!r} is reserved in task directories")
    return name


class TaskDirs:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def task(self, task_id: str) -> Path:
        return self.root / task_id

    def inputs(self, task_id: str) -> Path:
        """The task directory itself; ``in/`` for tasks staged by earlier versions."""
        task = self.task(task_id)
        legacy = task / LEGACY_IN_DIR
        return legacy if legacy.is_dir() else task

    def outputs(self, task_id: str) -> Path:
        return self.task(task_id) / OUT_DIR

    def remove(self, task_id: str) -> None:
        shutil.rmtree(self.task(task_id), ignore_errors=True)


def local_file_resolver(allowed_roots: tuple[Path, ...] | None) -> InputResolver:
    """Resolve ``file://`` URLs and absolute paths, optionally only below some roots.

    The CLI acts for the local user and allows any readable file; network
    entry points pass ``allowed_roots=()`` so no caller can read server files.
    """

    def resolve(source: str, dest: Path) -> None:
        path = _local_path(source)
        real = path.resolve(strict=False)
        if allowed_roots is not None and not any(real.is_relative_to(r) for r in allowed_roots):
            raise InvalidTaskRequest("inputs", f"local path {source!r} is not allowed here")
        try:
            copy_file(real, dest)
        except (IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError) as exc:
            raise InvalidTaskRequest("inputs", f"input {source!r} is not a readable file") from exc

    return resolve


def copy_file(src: Path, dest: Path) -> None:
    """Copy a regular file into a new file ``dest``, in the kernel (copy_file_range,
    which may share blocks; else sendfile): one open each, no extra stat calls."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd_in)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(f"{src} is not a regular file")
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _copy_fds(fd_in, fd_out, info.st_size)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_fds(fd_in: int, fd_out: int, size: int) -> None:
    copied = 0
    try:
        while copied < size or size == 0:
            n = os.copy_file_range(fd_in, fd_out, max(size - copied, 1 << 20))
            if n == 0:
                return
            copied += n
    except OSError:  # across filesystems on older kernels, or unsupported
        while n := os.sendfile(fd_out, fd_in, copied, 1 << 20):
            copied += n


def _local_path(source: str) -> Path:
    if "\x00" in source:
        raise InvalidTaskRequest("inputs", "input reference contains a NUL byte")
    if source.startswith("file://"):
        parsed = urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidTaskRequest("inputs", f"file URL with a host is not local: {source!r}")
        return Path(unquote(parsed.path))
    if "://" in source or source.startswith("dataset:") or source.startswith("gql:"):
        scheme = source.split(":", 1)[0]
        raise InvalidTaskRequest(
            "inputs",
            f"input {source[:200]!r}: this service does not resolve {scheme} references "
            "(gateway URLs need the gateway configured, dataset: and gql: need "
            "[catalogue] tasks)",
        )
    path = Path(source)
    if not path.is_absolute():
        raise InvalidTaskRequest("inputs", f"input {source!r} must be an absolute path or URL")
    return path


def stage_inputs(
    dest_dir: Path,
    staging: Sequence[tuple[str, str]],
    inline: Mapping[str, bytes],
    resolve: InputResolver,
    max_inline: int,
) -> None:
    """Put the plan's (source reference, sandbox name) pairs into ``dest_dir``; a
    source found in ``inline`` (by its reference) is written from the request."""
    try:
        dest_dir.mkdir(exist_ok=True)  # the tasks root exists: one mkdir per task
    except FileNotFoundError:
        dest_dir.mkdir(parents=True, exist_ok=True)
    for source, name in staging:
        dest = dest_dir / check_sandbox_name(name)
        data = inline.get(source)
        if data is None:
            resolve(source, dest)
            continue
        if len(data) > max_inline:
            raise LimitExceeded(f"inline input {source!r} exceeds {max_inline} bytes")
        dest.write_bytes(data)


def checksums(path: Path) -> tuple[int, str, str]:
    """(size, adler32 as 8 hex digits — the grid convention, sha256 hex)."""
    adler = 1
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            adler = zlib.adler32(chunk, adler)
            sha.update(chunk)
            size += len(chunk)
    return size, f"{adler & 0xFFFFFFFF:08x}", sha.hexdigest()


def tail(path: Path, max_bytes: int = 16384) -> str:
    """The last ``max_bytes`` of a text file, decoded leniently."""
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")
