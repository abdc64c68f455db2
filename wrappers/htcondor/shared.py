"""Job directories for the shared-filesystem mode: the schedd reads and writes them.

Without spooling, the schedd's shadow (running as the job's owner account) reads
the executable, the inputs and the proxy at their submit-side paths and writes the
output into the job's ``initialdir`` when the job ends. So everything a job names
must be readable by that account at the same path, and its ``initialdir`` writable:

* one directory per job attempt, ``<root>/<task id>.<attempt>``, made fresh at
  submission (an older attempt's files never mix with a newer one's) and given to
  ``owner`` (uid, gid) when gproc runs as root and the jobs run as another account
  (the personal pool: root on the host, ``gproc`` in the pool's root);
* executables copied once per content into ``<root>/_exec/`` (the payload script
  may live where the schedd cannot see it, e.g. outside a chroot's shared dirs;
  a job also keeps the executable it was submitted with);
* the proxy copied into the job directory, readable by the owner only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from gproc.wrappers.base import TASK_ID_RE, JobSpec

EXEC_DIR = "_exec"
PROXY_NAME = "_gproc.proxy"


def job_dir(root: Path, task_id: str, attempt: object) -> Path:
    """``<root>/<task id>.<attempt>``; refuses anything but a task id and an attempt >= 1."""
    if not TASK_ID_RE.fullmatch(task_id) or type(attempt) is not int or attempt < 1:
        raise ValueError(f"no job directory for task {task_id!r} attempt {attempt!r}")
    return root / f"{task_id}.{attempt}"


class SharedDirs:
    """The job directories under ``root``, which the schedd sees at the same path."""

    def __init__(self, root: Path, owner: tuple[int, int] | None = None) -> None:
        self.root = root
        self.owner = owner if owner is not None and os.geteuid() == 0 else None
        self._staged: dict[tuple[str, int, int, int], Path] = {}  # (path, ino, size, mtime)
        self._lock = threading.Lock()

    def job_dir(self, task_id: str, attempt: int) -> Path:
        return job_dir(self.root, task_id, attempt)

    def prepare(self, spec: JobSpec) -> JobSpec:
        """Make the attempt's empty directory; the spec with the paths the schedd reads."""
        job_dir = self.job_dir(spec.task_id, spec.attempt)
        try:
            job_dir.mkdir()
        except FileExistsError:  # a submission of this attempt whose outcome was lost
            shutil.rmtree(job_dir)
            job_dir.mkdir()
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            job_dir.mkdir()
        self._give(job_dir)
        proxy = spec.x509_proxy
        if proxy is not None:
            proxy = self._copy_private(proxy, job_dir / PROXY_NAME)
        return replace(spec, executable=self.executable(spec.executable), x509_proxy=proxy)

    def executable(self, path: Path) -> Path:
        """A copy of ``path`` under ``_exec/``, named by its content; made once."""
        st = os.stat(path)
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            staged = self._staged.get(key)
        if staged is not None and staged.is_file():
            return staged
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:32]
        staged = self.root / EXEC_DIR / f"{digest}-{Path(path).name}"
        if not staged.is_file():
            staged.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=staged.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o755)  # noqa: S103 - the job owner runs it
            os.replace(tmp, staged)
        with self._lock:
            self._staged[key] = staged
        return staged

    def _copy_private(self, src: Path, dest: Path) -> Path:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Path(src).read_bytes())
        self._give(dest)
        return dest

    def _give(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner)
