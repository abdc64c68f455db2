"""A real personal HTCondor pool for gproc, on 127.0.0.1.

Debian bookworm has no HTCondor package, trixie has: the pool's daemons run in a
debootstrapped trixie root with ``chroot``; the host talks to them with the PyPI
``htcondor2`` bindings through a client config that authenticates with an IDTOKEN
for the service identity ``gproc@<uid domain>`` (the schedd refuses root-owned jobs).

State lives under ``<state_dir>/pool/``: ``root/`` (the trixie root), ``client/``
(client config + token), ``pool.json`` (what is up), ``logs/``. Package downloads
are cached under ``<state_dir>/cache/`` so re-creating the root needs no download.

For gproc's shared-filesystem mode the root sees gproc's task and sandbox
directories at their host paths: ``<state_dir>/tasks`` and ``<state_dir>/sandboxes``
are bind-mounted into the root while the pool is up (:meth:`PersonalPool.share`
adds others). Jobs run as the root's ``gproc`` account (:meth:`PersonalPool.job_owner`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from gproc.wrappers.htcondor import host
from gproc.wrappers.htcondor.client import activate_client_config as activate_client_config
from gproc.wrappers.htcondor.external import ExternalPool as ExternalPool
from gproc.wrappers.htcondor.host import PoolError as PoolError
from gproc.wrappers.htcondor.host import client_env as _client_env
from gproc.wrappers.htcondor.nodes import ExecuteNodes
from gproc.wrappers.htcondor.site import RemoteSites

UID_DOMAIN = "gproc.pool"
SERVICE_USER = "gproc"
HOST = "127.0.0.1"
DEFAULT_PORT = 9618
READY_MARK = ".gproc-root-ready"
SHARED_DIRS = ("tasks", "sandboxes")  # under the state dir, as gproc lays it out
BUILD_TIMEOUT = 2400.0


class PersonalPool:
    """Life cycle of the personal pool kept under ``<state_dir>/pool``."""

    def __init__(self, state_dir: Path | str, port: int | None = None) -> None:
        """``port`` (default ``$GPROC_POOL_PORT`` or 9618) is the collector's and shared
        port's; another value lets a second pool run beside one on the default."""
        self.state_dir = Path(state_dir).resolve()
        self.port = port or int(os.environ.get("GPROC_POOL_PORT") or DEFAULT_PORT)
        self.dir = self.state_dir / "pool"
        self.root = self.dir / "root"
        self.client_dir = self.dir / "client"
        self.client_config = self.client_dir / "condor_config"
        self.token_dir = self.client_dir / "tokens.d"
        self.logs = self.dir / "logs"
        self.state_file = self.dir / "pool.json"
        self.cache = self.state_dir / "cache"
        self._master_proc: subprocess.Popen[bytes] | None = None
        self.nodes = ExecuteNodes(self)
        self.sites = RemoteSites(self)

    # ---------------------------------------------------------------- paths
    @property
    def event_log(self) -> Path:
        """Host-side path of the schedd-wide EVENT_LOG."""
        return self.root / "var/log/condor/EventLog"

    @property
    def condor_log_dir(self) -> Path:
        return self.root / "var/log/condor"

    @property
    def collector(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def identity(self) -> str:
        return f"{SERVICE_USER}@{UID_DOMAIN}"

    # ---------------------------------------------------------------- public API
    def is_up(self) -> bool:
        """True when our condor_master runs in our root and the collector port answers."""
        pid = self._master_pid()
        return pid is not None and host.port_open(HOST, self.port)

    def up(self, timeout: float = 120.0) -> dict[str, Any]:
        """Build the root if needed, start the daemons, wait until jobs can be submitted.

        Idempotent: when the pool is already up this only re-checks readiness.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self.is_up() and self.client_config.is_file():
                self._share_defaults()
                return self._wait_ready(min(timeout, 30.0))
            self._stop_daemons()
            self._unmount_all()
            self._ensure_root()
            self._write_pool_config()
            self._mount_all()
            self._share_defaults()
            self._prepare_run_dirs()
            pid = self._start_master()
            self._save_state({"master_pid": pid, "started": time.time()})
            self._install_token(timeout=min(timeout, 60.0))
            self._write_client_config()
            info = self._wait_ready(timeout)
            self._save_state({"master_pid": pid, "started": time.time(), **info})
            return info

    def down(self, timeout: float = 20.0) -> None:
        """Stop every daemon of the pool and unmount what the pool mounted. Idempotent."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self.nodes.remove_all(timeout)
            self.sites.remove_all(timeout)
            self._stop_daemons(timeout)
            self._unmount_all()
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()

    def status(self) -> dict[str, Any]:
        """What is running: master pid, collector/schedd reachability, slots, versions."""
        pid = self._master_pid()
        out: dict[str, Any] = {
            "up": False,
            "state_dir": str(self.state_dir),
            "root": str(self.root),
            "root_ready": (self.root / READY_MARK).is_file(),
            "client_config": str(self.client_config),
            "event_log": str(self.event_log),
            "collector": self.collector,
            "master_pid": pid,
            "collector_reachable": host.port_open(HOST, self.port),
        }
        if pid is None or not out["collector_reachable"] or not self.client_config.is_file():
            return out
        try:
            out.update(self._probe())
        except Exception as exc:  # report, never raise: status is diagnostic
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["up"] = bool(out.get("schedd_reachable")) and out.get("slots", 0) > 0
        if self.nodes.known():
            try:
                out["nodes"] = self.nodes.status()
            except Exception as exc:  # diagnostic, as above
                out["nodes_error"] = f"{type(exc).__name__}: {exc}"
        return out

    def add_node(
        self, name: str, slots: int = 2, instance: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Start the extra execute node ``name`` (see :mod:`nodes`); idempotent."""
        with self._lock():
            return self.nodes.add(name, slots, instance, timeout)

    def remove_node(self, name: str, timeout: float = 20.0) -> bool:
        """Stop node ``name`` and undo everything it set up; False if there was none."""
        with self._lock():
            return self.nodes.remove(name, timeout)

    def run_in_root(
        self, argv: Sequence[str], timeout: float = 120.0, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (no shell) inside the root, optionally as ``user``; capture output."""
        if not argv:
            raise ValueError("empty argv")
        cmd = ["chroot"]
        if user is not None:
            cmd.append(f"--userspec={host.checked_name(user)}")
        cmd += [str(self.root), *argv]
        home = "/root" if user in (None, "root") else f"/home/{user}"
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": home}
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )

    def activate_client(self) -> None:
        """Point this process's htcondor2 bindings at the pool's client config."""
        activate_client_config(self.client_config)

    # ---------------------------------------------------------------- sharing
    def share(self, path: Path | str) -> Path:
        """Make the host directory ``path`` visible in the root at the same path (a bind
        mount, until ``down``/``unshare``). Idempotent; the pool must be built."""
        source = Path(path).resolve()
        if not source.is_dir():
            raise PoolError(f"share: {source} is not a directory")
        if source.is_relative_to(self.root) or self.root.is_relative_to(source):
            raise PoolError(f"share: {source} contains or is inside the pool's root")
        target = self.root / source.relative_to("/")
        if str(target) in host.mounts_under(self.root):
            return target
        target.mkdir(parents=True, exist_ok=True)
        host.run(
            ["mount", "--bind", str(source), str(target)],
            step=f"share {source}",
            log=self._log("mount"),
            timeout=30,
        )
        return target

    def unshare(self, path: Path | str) -> None:
        """Undo :meth:`share` (a no-op if ``path`` is not shared)."""
        target = self.root / Path(path).resolve().relative_to("/")
        if str(target) in host.mounts_under(self.root):
            res = subprocess.run(["umount", str(target)], capture_output=True, timeout=30)
            if res.returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)

    def shared_dirs(self) -> list[Path]:
        """Host directories visible in the root at the same path right now."""
        prefix = len(str(self.root))
        shared = [Path(m[prefix:]) for m in host.mounts_under(self.root)]
        return [p for p in shared if p.parts[1:2] not in (("proc",), ("sys",), ("dev",))]

    def job_owner(self) -> tuple[int, int]:
        """(uid, gid) of the root's service account, which the schedd runs jobs as."""
        passwd = (self.root / "etc/passwd").read_text()
        for line in passwd.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == SERVICE_USER:
                return int(fields[2]), int(fields[3])
        raise PoolError(f"no {SERVICE_USER} account in {self.root}/etc/passwd")

    def _share_defaults(self) -> None:
        for name in SHARED_DIRS:
            path = self.state_dir / name
            path.mkdir(parents=True, exist_ok=True)
            self.share(path)

    # ---------------------------------------------------------------- steps
    def _log(self, step: str) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.logs / f"{step}.log"

    def _ensure_root(self) -> None:
        """Run build_root.sh unless the root is complete (minutes fresh, seconds cached)."""
        if (self.root / READY_MARK).is_file():
            return
        script = resources.files("gproc.wrappers.htcondor").joinpath("build_root.sh")
        log = self._log("build-root")
        try:
            host.run(
                ["bash", str(script), str(self.root), str(self.cache), SERVICE_USER],
                step="build root",
                log=log,
                timeout=BUILD_TIMEOUT,
            )
        except PoolError as exc:
            raise PoolError(f"{exc} (failing step: {host.last_step(log)})") from exc

    def _write_pool_config(self) -> None:
        text = resources.files("gproc.wrappers.htcondor").joinpath("pool.conf").read_text()
        conf_dir = self.root / "etc/condor/config.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        text = text.replace("@UID_DOMAIN@", UID_DOMAIN).replace("@PORT@", str(self.port))
        (conf_dir / "50-gproc.conf").write_text(text)

    def _mount_all(self) -> None:
        for target, cmd in (
            ("proc", ["mount", "-t", "proc", "proc"]),
            ("sys", ["mount", "-t", "sysfs", "sys"]),
            ("dev", ["mount", "--bind", "/dev"]),
        ):
            path = self.root / target
            if str(path) in host.mounts_under(self.root):
                continue
            path.mkdir(exist_ok=True)
            host.run([*cmd, str(path)], step=f"mount {target}", log=self._log("mount"), timeout=30)

    def _unmount_all(self) -> None:
        for path in sorted(host.mounts_under(self.root), key=len, reverse=True):
            res = subprocess.run(["umount", path], capture_output=True, timeout=30, check=False)
            if res.returncode != 0:
                subprocess.run(["umount", "-l", path], capture_output=True, timeout=30, check=False)
        left = host.mounts_under(self.root)
        if left:
            raise PoolError(f"down: could not unmount {', '.join(left)}")

    def _prepare_run_dirs(self) -> None:
        for rel in ("run/condor", "var/lock/condor", "var/log/condor", "var/lib/condor"):
            path = self.root / rel
            path.mkdir(parents=True, exist_ok=True)
            self.run_in_root(["chown", "condor:condor", "/" + rel], timeout=30)
        self.logs.mkdir(parents=True, exist_ok=True)

    def _start_master(self) -> int:
        if host.port_open(HOST, self.port):
            raise PoolError(
                f"start: {self.collector} is already in use by a process that is not this "
                f"pool's condor_master (another pool?); stop it first"
            )
        log = self._log("master")
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                ["chroot", str(self.root), "/usr/sbin/condor_master", "-f"],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            )
        self._master_proc = proc
        time.sleep(0.5)
        if proc.poll() is not None:
            raise PoolError(
                f"start: condor_master exited at once; read {log} and "
                f"{self.condor_log_dir / 'MasterLog'}"
            )
        return proc.pid

    def _install_token(self, timeout: float) -> None:
        """Mint an IDTOKEN for the service identity once the master made its signing key."""
        key = self.root / "etc/condor/passwords.d/POOL"
        host.wait(
            lambda: key.is_file(),
            timeout,
            f"token: signing key {key} never appeared; read {self.condor_log_dir / 'MasterLog'}",
        )
        res = self.run_in_root(["condor_token_create", "-identity", self.identity], timeout=60)
        token = res.stdout.strip()
        if res.returncode != 0 or not token:
            raise PoolError(f"token: condor_token_create failed: {res.stderr.strip()}")
        self.token_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.client_dir, 0o700)
        os.chmod(self.token_dir, 0o700)
        path = self.token_dir / SERVICE_USER
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        os.chmod(path, 0o600)

    def _write_client_config(self) -> None:
        self.client_dir.mkdir(parents=True, exist_ok=True)
        (self.client_dir / "log").mkdir(exist_ok=True)
        self.client_config.write_text(
            "# Host-side client config of the gproc personal pool (generated).\n"
            f"CONDOR_HOST = {HOST}\n"
            f"COLLECTOR_HOST = {self.collector}\n"
            f"SCHEDD_HOST = \n"
            f"NETWORK_INTERFACE = {HOST}\n"
            "BIND_ALL_INTERFACES = False\n"
            "ENABLE_IPV6 = False\n"
            "JOB_DEFAULT_LEASE_DURATION = 120\n"
            f"UID_DOMAIN = {UID_DOMAIN}\n"
            f"LOG = {self.client_dir / 'log'}\n"
            "SEC_CLIENT_AUTHENTICATION = REQUIRED\n"
            "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n"
            f"SEC_TOKEN_DIRECTORY = {self.token_dir}\n"
            f"EVENT_LOG_HOST_PATH = {self.event_log}\n"
        )

    def _wait_ready(self, timeout: float) -> dict[str, Any]:
        """Poll through the host bindings until a slot is advertised and the schedd answers."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | str = "no answer yet"
        while time.monotonic() < deadline:
            if self._master_pid() is None:
                raise PoolError(
                    f"wait: condor_master died; read {self.condor_log_dir}/MasterLog "
                    f"and {self._log('master')}"
                )
            try:
                info = self._probe()
                if info["slots"] > 0 and info["schedd_reachable"]:
                    return info
                last = info
            except Exception as exc:  # daemons still starting
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1.0)
        raise PoolError(
            f"wait: pool not ready after {timeout:.0f}s ({last}); read "
            f"{self.condor_log_dir}/{{CollectorLog,StartLog,SchedLog}}"
        )

    def _probe(self) -> dict[str, Any]:
        """Ask the pool, as the gproc service would, what it has (restores the caller's env)."""
        with _client_env(self.client_config) as htcondor2:
            coll = htcondor2.Collector(self.collector)
            slots = coll.query(htcondor2.AdType.Startd, projection=["Name", "State"])
            schedd_ad = coll.locate(htcondor2.DaemonType.Schedd)
            schedd = htcondor2.Schedd(schedd_ad)
            schedd.query(constraint="false", projection=["ClusterId"])
            return {
                "slots": len(slots),
                "slots_unclaimed": sum(1 for s in slots if s.get("State") == "Unclaimed"),
                "schedd_reachable": True,
                "schedd_name": str(schedd_ad.get("Name")),
                "condor_version": str(schedd_ad.get("CondorVersion", "")),
                "bindings_version": htcondor2.version(),
            }

    # ---------------------------------------------------------------- processes
    def _master_pid(self) -> int | None:
        state = self._read_state()
        pid = state.get("master_pid")
        if isinstance(pid, int) and self._in_root(pid) and host.comm(pid) == "condor_master":
            return pid
        return None

    def _in_root(self, pid: int) -> bool:
        return host.in_root(pid, self.root)

    def _root_pids(self) -> list[int]:
        """Every process whose filesystem root is our root (daemons, starters, jobs)."""
        return host.pids_in_root(self.root)

    def _stop_daemons(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGQUIT) of the master and its daemons, then SIGKILL what is left.

        Not the graceful SIGTERM: a starter that lost its shadow would hold it for the
        whole job lease; jobs killed here are re-run by the schedd after the next ``up``.
        """
        if not self.root.is_dir():
            return
        pid = self._master_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            host.wait(lambda: not self._root_pids(), timeout, None)
        for left in self._root_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(left, signal.SIGKILL)
        host.wait(
            lambda: not self._root_pids(), 10.0, "down: processes survived SIGKILL in the root"
        )
        if self._master_proc is not None:  # reap our own child
            self._master_proc.poll()
            self._master_proc = None

    # ---------------------------------------------------------------- state
    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self, data: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down/add-node between processes sharing this state dir."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
