"""Host-side helpers of the personal pool: build steps, processes, mounts, waits."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gproc.wrappers.htcondor.client import activate_client_config


class PoolError(RuntimeError):
    """A pool step failed; the message names the step and the log to read."""


def last_step(log: Path) -> str:
    steps = [
        ln[6:] for ln in log.read_text(errors="replace").splitlines() if ln.startswith("STEP: ")
    ]
    return steps[-1] if steps else "unknown"


def checked_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-" for c in name) or name[0] == "-":
        raise ValueError(f"not a valid account name: {name!r}")
    return name


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def in_root(pid: int, root: Path) -> bool:
    """True when process ``pid`` runs chrooted in ``root``."""
    try:
        return os.readlink(f"/proc/{pid}/root") == str(root)
    except OSError:
        return False


def pids_in_root(root: Path) -> list[int]:
    """Every process (but this one) whose filesystem root is ``root``."""
    me = os.getpid()
    return [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and int(e) != me and in_root(int(e), root)
    ]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefix):
            found.append(target)
    return found


def wait(pred: Any, timeout: float, error: str | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    if error:
        raise PoolError(error)
    return False


def run(
    cmd: Sequence[str], step: str, log: Path, timeout: float, env: dict[str, str] | None = None
) -> None:
    """Run a build step, appending its output to ``log``; raise naming the step on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        try:
            res = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PoolError(f"{step}: timed out after {timeout:.0f}s; read {log}") from exc
    if res.returncode != 0:
        raise PoolError(f"{step}: failed (exit {res.returncode}); read {log}")


@contextlib.contextmanager
def client_env(config: Path) -> Iterator[Any]:
    import htcondor2

    before = os.environ.get("CONDOR_CONFIG")
    activate_client_config(config)
    try:
        yield htcondor2
    finally:
        if before != str(config):
            if before is None:
                os.environ.pop("CONDOR_CONFIG", None)
            else:
                os.environ["CONDOR_CONFIG"] = before
            htcondor2.reload_config()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and res.returncode != 0:
        raise PoolError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


def link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ["-n", netns] if netns else []
    return ip(*prefix, "link", "show", name, check=False).returncode == 0


def is_mount(path: Path) -> bool:
    target = str(path)
    return any(ln.split()[1] == target for ln in Path("/proc/mounts").read_text().splitlines())


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def copy_secret(source: Path, dest: Path) -> None:
    write_secret(dest, "")
    dest.write_bytes(source.read_bytes())
