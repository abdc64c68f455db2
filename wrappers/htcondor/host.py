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


def activate_client_config(config: Path | str) -> None:
    """Set CONDOR_CONFIG for this process and make htcondor2 re-read it."""
    import htcondor2

    os.environ["CONDOR_CONFIG"] = str(config)
    htcondor2.reload_config()


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
