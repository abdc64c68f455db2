"""Extra execute nodes of the personal pool, each in a network namespace of its own.

A node is a ``condor_master`` + ``condor_startd`` with its own name, slots and
address, as if it were another machine: it runs in the network namespace
``gpn<port>-<name>``, joined to the host by a veth pair on the bridge
``gpnb<port>`` (host side ``10.A.B.1/24``, node ``10.A.B.<10+index>``, A.B derived
from the pool's port so pools beside each other never share a subnet). The node's
root is the pool's built root bind-mounted read-only, with its own ``/etc/condor``
(configuration, the pool's signing key and a daemon token), spool, execute, log,
run and tmp directories mounted over it, all under ``<pool>/nodes/<name>/``.

The central manager keeps listening on 127.0.0.1 only (nothing about the running
pool changes when nodes come and go): the node reaches it at its own
``127.0.0.1:<port>`` through :mod:`relay`, the central manager reaches the node on
the node's veth address. The node authenticates as ``condor@<uid domain>`` with an
IDTOKEN signed by the pool's key. Its ``FILESYSTEM_DOMAIN`` is its own, so jobs
that need the pool's shared filesystem never match it; ``instance`` dedicates it to
one gproc instance's jobs (``START`` and ``RANK`` on ``GprocInstance``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gproc.wrappers.htcondor import host
from gproc.wrappers.htcondor.host import PoolError

if TYPE_CHECKING:
    from gproc.wrappers.htcondor.pool import PersonalPool

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,15}")
INSTANCE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_NODES = 200
MAX_SLOTS = 16
NODE_PORT = 9620  # the node's own shared port (in its namespace); not the pool's
NODE_MEMORY_PER_SLOT_MB = 1024
NODE_DIRS = {  # node-own directory -> where it appears in the node's root
    "etc": "etc/condor",
    "lib": "var/lib/condor",
    "log": "var/log/condor",
    "spool": "var/spool/condor",
    "run": "run/condor",
    "lock": "run/lock/condor",  # the root's /var/lock is a symlink to /run/lock
    "tmp": "tmp",
}
NODE_FILES = {  # node-own file -> where it appears: no DNS is reachable from a node
    "hosts": "etc/hosts",
    "resolv.conf": "etc/resolv.conf",
}
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass
class Node:
    """What the state file records of one node."""

    name: str
    index: int
    slots: int
    instance: str | None = None
    master_pid: int | None = None
    relay_pid: int | None = None
    started: float = 0.0


def subnet(port: int) -> str:
    """``10.A.B`` of the pool on ``port`` (A.B are the port's two bytes)."""
    return f"10.{(port >> 8) & 255}.{port & 255}"


def checked_node_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"node name {name!r} must match {NAME_RE.pattern}")
    return name


class ExecuteNodes:
    """The extra execute nodes of one :class:`PersonalPool`."""

    def __init__(self, pool: PersonalPool) -> None:
        self.pool = pool
        self.dir = pool.dir / "nodes"
        self.state_file = pool.dir / "nodes.json"
        self.net = subnet(pool.port)
        self.bridge = f"gpnb{pool.port}"
        self.first_index = 1

    # ------------------------------------------------------------ names
    @property
    def host_address(self) -> str:
        return f"{self.net}.1"

    def address(self, node: Node) -> str:
        return f"{self.net}.{10 + node.index}"

    def netns(self, name: str) -> str:
        return f"gpn{self.pool.port}-{name}"

    def root(self, name: str) -> Path:
        return self.dir / name / "root"

    def hostname(self, name: str) -> str:
        return f"{name}.nodes.{self.pool_domain}"

    @property
    def pool_domain(self) -> str:
        from gproc.wrappers.htcondor.pool import UID_DOMAIN

        return UID_DOMAIN

    def _veth(self, node: Node) -> tuple[str, str]:
        return f"gpnh{self.pool.port}-{node.index}", f"gpnp{self.pool.port}-{node.index}"

    # ------------------------------------------------------------ public API
    def known(self) -> list[Node]:
        return sorted(self._read().values(), key=lambda n: n.index)

    def add(
        self, name: str, slots: int = 2, instance: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Start node ``name`` (or restart what of it is not running) and wait until its
        slots are in the collector. Idempotent."""
        checked_node_name(name)
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be 1..{MAX_SLOTS}, not {slots}")
        if instance is not None and not INSTANCE_RE.fullmatch(instance):
            raise ValueError(f"instance {instance!r} must match {INSTANCE_RE.pattern}")
        if not self.pool.is_up():
            raise PoolError("add-node: the pool is not up; run `gproc pool up` first")
        nodes = self._read()
        node = nodes.get(name)
        if node is not None and (node.slots, node.instance) != (slots, instance):
            self._stop(node)  # reconfigured: start afresh
            node.slots, node.instance = slots, instance
        if node is None:
            used = {n.index for n in nodes.values()}
            first = self.first_index
            free = [i for i in range(first, min(first + MAX_NODES, 245)) if i not in used]
            if not free:
                raise PoolError(f"add-node: at most {MAX_NODES} nodes")
            node = Node(name, free[0], slots, instance)
        nodes[name] = node
        self._write(nodes)
        self._network(node)
        self._mount(node)
        if self._configure(node) and self._alive(node.master_pid, "condor_master", self.root(name)):
            self._stop_processes(node)  # the configuration changed: restart the daemons
        if not self._alive(node.relay_pid, "python", None):
            node.relay_pid = self._start_relay(node)
        if not self._alive(node.master_pid, "condor_master", self.root(name)):
            node.master_pid = self._start_master(node)
            node.started = time.time()
        self._write({**self._read(), name: node})
        return self._wait_slots(node, timeout)

    def remove(self, name: str, timeout: float = 20.0) -> bool:
        """Stop node ``name`` and undo its namespace, veth, mounts. False: no such node."""
        checked_node_name(name)
        nodes = self._read()
        node = nodes.pop(name, None)
        leftovers = self.root(name).is_dir() or os.path.exists(f"/run/netns/{self.netns(name)}")
        if node is None and not leftovers:
            return False
        self._stop(node or Node(name, 0, 0), timeout)
        self._write(nodes)
        if not nodes:
            self._drop_bridge()
        return True

    def remove_all(self, timeout: float = 20.0) -> None:
        names = set(self._read())
        if self.dir.is_dir():
            names |= {p.name for p in self.dir.iterdir() if NAME_RE.fullmatch(p.name)}
        for name in sorted(names):
            self.remove(name, timeout)
        self._drop_bridge()

    def pids(self, name: str) -> list[int]:
        """Every process of the node (master, startd, starters, jobs)."""
        return host.pids_in_root(self.root(name))

    def status(self) -> list[dict[str, Any]]:
        """Each node: address, slots, whether its master runs, what the collector has."""
        ads = self._slot_ads()
        out = []
        for node in self.known():
            mine = [a for a in ads if a.get("GprocNode") == node.name]
            out.append(
                {
                    **asdict(node),
                    "address": self.address(node),
                    "netns": self.netns(node.name),
                    "running": self._alive(node.master_pid, "condor_master", self.root(node.name)),
                    "slots_advertised": len(mine),
                    "slots_busy": sum(1 for a in mine if a.get("State") == "Claimed"),
                }
            )
        return out

    # ------------------------------------------------------------ network
    def _network(self, node: Node) -> None:
        if not host.link_exists(self.bridge):
            host.ip("link", "add", self.bridge, "type", "bridge")
        addrs = host.ip("-o", "-4", "addr", "show", "dev", self.bridge).stdout
        if f" {self.host_address}/" not in addrs:
            host.ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        host.ip("link", "set", self.bridge, "up")
        ns = self.netns(node.name)
        if not os.path.exists(f"/run/netns/{ns}"):
            host.ip("netns", "add", ns)
        host.ip("-n", ns, "link", "set", "lo", "up")
        outer, inner = self._veth(node)
        if not host.link_exists(inner, ns):
            if host.link_exists(outer):
                host.ip("link", "del", outer)
            host.ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        host.ip("link", "set", outer, "master", self.bridge, "up")
        addrs = host.ip("-n", ns, "-o", "-4", "addr", "show", "dev", inner).stdout
        if f" {self.address(node)}/" not in addrs:
            host.ip("-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", inner)
        host.ip("-n", ns, "link", "set", inner, "up")

    def _drop_bridge(self) -> None:
        """Delete the bridge once nothing is attached to it (nodes and sites share it)."""
        if host.link_exists(self.bridge):
            attached = host.ip("-o", "link", "show", "master", self.bridge, check=False).stdout
            if not attached.strip():
                host.ip("link", "del", self.bridge, check=False)

    # ------------------------------------------------------------ file system
    def _mount(self, node: Node) -> None:
        base = self.dir / node.name
        root = self.root(node.name)
        uid, gid = self._condor_ids()
        for own in NODE_DIRS:
            path = base / own
            path.mkdir(parents=True, exist_ok=True)
            if own == "tmp":
                os.chmod(path, 0o1777)  # noqa: S103 - a /tmp, sticky
            elif own != "etc":
                os.chown(path, uid, gid)
        (base / "hosts").write_text(
            f"127.0.0.1 localhost\n{self.address(node)} {self.hostname(node.name)} "
            f"{node.name}\n{self.host_address} {socket.gethostname()}\n"
        )
        (base / "resolv.conf").write_text("options timeout:1 attempts:1\n")
        root.mkdir(parents=True, exist_ok=True)
        mounted = set(host.mounts_under(base))
        if str(root) not in mounted and not host.is_mount(root):
            self._do(["mount", "--bind", str(self.pool.root), str(root)], "bind the root")
            self._do(["mount", "-o", "remount,bind,ro", str(root)], "make the root read-only")
        steps = [
            ("proc", ["mount", "-t", "proc", "proc"]),
            ("sys", ["mount", "-t", "sysfs", "sys"]),
            ("dev", ["mount", "--bind", "/dev"]),
        ] + [
            (rel, ["mount", "--bind", str(base / own)])
            for own, rel in (NODE_DIRS | NODE_FILES).items()
        ]
        for rel, cmd in steps:
            target = root / rel
            if not os.path.realpath(target).startswith(str(root) + "/"):
                raise PoolError(f"add-node: {target} leads out of the node's root")
            if str(target) not in host.mounts_under(root):
                self._do([*cmd, str(target)], f"mount {rel}")

    def _unmount(self, name: str) -> None:
        base = self.dir / name
        for path in sorted(host.mounts_under(base), key=len, reverse=True):
            if subprocess.run(["umount", path], capture_output=True, timeout=30).returncode:
                subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)
        left = host.mounts_under(base)
        if left:
            raise PoolError(f"remove-node: could not unmount {', '.join(left)}")

    def _condor_ids(self) -> tuple[int, int]:
        for line in (self.pool.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == "condor":
                return int(fields[2]), int(fields[3])
        raise PoolError(f"no condor account in {self.pool.root}/etc/passwd")

    # ------------------------------------------------------------ configuration
    def _configure(self, node: Node) -> bool:
        """The node's /etc/condor: stock condor_config, node config, key and token.
        True when the node configuration changed."""
        etc = self.dir / node.name / "etc"
        shutil.copy2(self.pool.root / "etc/condor/condor_config", etc / "condor_config")
        (etc / "config.d").mkdir(exist_ok=True)
        conf = etc / "config.d/50-gproc-node.conf"
        text = self.config_text(node)
        changed = not conf.is_file() or conf.read_text() != text
        conf.write_text(text)
        for sub in ("passwords.d", "tokens.d"):
            (etc / sub).mkdir(mode=0o700, exist_ok=True)
        key = self.pool.root / "etc/condor/passwords.d/POOL"
        host.copy_secret(key, etc / "passwords.d/POOL")
        token = etc / "tokens.d/condor"
        if not token.is_file():
            res = self.pool.run_in_root(
                ["condor_token_create", "-identity", f"condor@{self.pool_domain}"], timeout=60
            )
            if res.returncode != 0 or not res.stdout.strip():
                raise PoolError(f"add-node: condor_token_create failed: {res.stderr.strip()}")
            host.write_secret(token, res.stdout.strip() + "\n")
        return changed

    def config_text(self, node: Node) -> str:
        port = self.pool.port
        if node.instance is None:
            start, rank = "True", "0"
        else:
            mine = f'(TARGET.GprocInstance =?= "{node.instance}")'
            start, rank = mine, f"ifThenElse({mine}, 1, 0)"
        return (
            "# gproc execute node (generated by wrappers/htcondor/nodes.py)\n"
            "use ROLE : Execute\n"
            "CONDOR_HOST = 127.0.0.1\n"
            f"COLLECTOR_HOST = 127.0.0.1:{port}\n"
            f"NETWORK_INTERFACE = {self.address(node)}\n"
            f"NETWORK_HOSTNAME = {self.hostname(node.name)}\n"
            "BIND_ALL_INTERFACES = False\n"
            "ENABLE_IPV6 = False\n"
            f"SHARED_PORT_PORT = {NODE_PORT if port != NODE_PORT else NODE_PORT + 1}\n"
            f"UID_DOMAIN = {self.pool_domain}\n"
            "TRUST_UID_DOMAIN = True\n"
            f"TRUST_DOMAIN = {self.pool_domain}\n"
            f"FILESYSTEM_DOMAIN = {self.hostname(node.name)}\n"
            "SEC_DEFAULT_AUTHENTICATION = REQUIRED\n"
            "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS\n"
            "SEC_READ_AUTHENTICATION = OPTIONAL\n"
            "SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS\n"
            "# The pool's daemons bind (and connect from) 127.0.0.1 and cannot reach the\n"
            "# node's address: they reach it by reverse connection through the collector's\n"
            "# CCB server, which the node keeps a connection open to (through the relay).\n"
            "CCB_ADDRESS = $(COLLECTOR_HOST)\n"
            f"PRIVATE_NETWORK_NAME = {self.netns(node.name)}\n"
            "# the collector is at 127.0.0.1 (the relay) but not of this master's family\n"
            "SEC_USE_FAMILY_SESSION = False\n"
            "ALLOW_READ = *\n"
            "ALLOW_WRITE = *@$(UID_DOMAIN), condor@*\n"
            "ALLOW_ADMINISTRATOR = root@$(UID_DOMAIN), condor@*\n"
            "ALLOW_NEGOTIATOR = condor@*\n"
            "ALLOW_DAEMON = condor@*, root@$(UID_DOMAIN)\n"
            "MOUNT_UNDER_SCRATCH =\n"
            "USE_PID_NAMESPACES = False\n"
            "BASE_CGROUP =\n"
            f"NUM_CPUS = {node.slots}\n"
            f"MEMORY = {node.slots * NODE_MEMORY_PER_SLOT_MB}\n"
            "# static slots, one core each: --slots is the number of jobs the node runs\n"
            f"NUM_SLOTS_TYPE_1 = {node.slots}\n"
            f"SLOT_TYPE_1 = cpus=1, memory={NODE_MEMORY_PER_SLOT_MB}\n"
            "SLOT_TYPE_1_PARTITIONABLE = False\n"
            "RUNBENCHMARKS = False\n"
            f"START = {start}\n"
            f"RANK = {rank}\n"
            "SUSPEND = False\nPREEMPT = False\nKILL = False\n"
            f'GprocNode = "{node.name}"\n'
            "STARTD_ATTRS = $(STARTD_ATTRS) GprocNode\n"
            "JOB_DEFAULT_LEASE_DURATION = 120\n"
            "UPDATE_INTERVAL = 5\nSTARTER_UPDATE_INTERVAL = 5\n"
        )

    # ------------------------------------------------------------ processes
    def _start_relay(self, node: Node) -> int:
        log = self.pool.logs / f"relay-{node.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        port = self.pool.port
        cmd = [sys.executable, "-m", "gproc.wrappers.htcondor.relay"]
        cmd += ["--netns", f"/run/netns/{self.netns(node.name)}"]
        cmd += ["--listen", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{port}"]
        with log.open("ab") as err:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline().decode().strip() if ready else ""
        proc.stdout.close()
        if line != "ready":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise PoolError(f"add-node {node.name}: the relay did not start; read {log}")
        return proc.pid

    def _start_master(self, node: Node) -> int:
        log = self.pool.logs / f"node-{node.name}.log"
        cmd = ["nsenter", f"--net=/run/netns/{self.netns(node.name)}", "--"]
        cmd += ["chroot", str(self.root(node.name)), "/usr/sbin/condor_master", "-f"]
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=ENV,
            )
        time.sleep(0.3)
        if proc.poll() is not None:
            raise PoolError(f"add-node {node.name}: condor_master exited at once; read {log}")
        return proc.pid

    def _alive(self, pid: int | None, comm: str, root: Path | None) -> bool:
        if pid is None or not host.comm(pid).startswith(comm[:15]):
            return False
        return root is None or host.in_root(pid, root)

    def _stop(self, node: Node, timeout: float = 20.0) -> None:
        self._stop_processes(node, timeout)
        if self._alive(node.relay_pid, "python", None):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.relay_pid or 0, signal.SIGTERM)
        node.relay_pid = None
        self._unmount(node.name)
        ns = self.netns(node.name)
        if os.path.exists(f"/run/netns/{ns}"):
            host.ip("netns", "del", ns, check=False)  # takes the veth pair with it
        if node.index:
            outer, _ = self._veth(node)
            if host.link_exists(outer):
                host.ip("link", "del", outer, check=False)

    def _stop_processes(self, node: Node, timeout: float = 20.0) -> None:
        """Fast shutdown of the node's master, then SIGKILL whatever is left in its root."""
        root = self.root(node.name)
        if self._alive(node.master_pid, "condor_master", root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.master_pid or 0, signal.SIGQUIT)
            host.wait(lambda: not self.pids(node.name), timeout, None)
        for pid in self.pids(node.name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        host.wait(lambda: not self.pids(node.name), 10.0, f"remove-node: {node.name} survived")
        node.master_pid = None

    def _wait_slots(self, node: Node, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self._alive(node.master_pid, "condor_master", self.root(node.name)):
                raise PoolError(
                    f"add-node {node.name}: condor_master died; read "
                    f"{self.dir / node.name / 'log'}/MasterLog"
                )
            try:
                ads = [a for a in self._slot_ads() if a.get("GprocNode") == node.name]
                fresh = [a for a in ads if int(a.get("DaemonStartTime", 0)) >= node.started - 5]
                if len(fresh) >= node.slots:
                    return {"name": node.name, "address": self.address(node), "slots": len(fresh)}
                last = f"{len(fresh)} of {node.slots} slots advertised"
            except Exception as exc:  # noqa: BLE001 - the collector may still be starting
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise PoolError(
            f"add-node {node.name}: not ready after {timeout:.0f}s ({last}); read "
            f"{self.dir / node.name / 'log'}/{{MasterLog,StartLog}}"
        )

    def _slot_ads(self) -> list[dict[str, Any]]:
        with host.client_env(self.pool.client_config) as htcondor2:
            coll = htcondor2.Collector(self.pool.collector)
            ads = coll.query(
                htcondor2.AdType.Startd,
                constraint="GprocNode =!= undefined",
                projection=["Name", "GprocNode", "State", "DaemonStartTime", "MyAddress"],
            )
            return [dict(a) for a in ads]

    # ------------------------------------------------------------ state
    def _do(self, cmd: list[str], step: str) -> None:
        host.run(cmd, step=f"add-node: {step}", log=self.pool.logs / "nodes.log", timeout=30)

    def _read(self) -> dict[str, Node]:
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: Node(**v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, nodes: dict[str, Node]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in nodes.items()}, indent=2))
        tmp.replace(self.state_file)
