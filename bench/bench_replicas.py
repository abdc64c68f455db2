"""Register+submit and GetTaskStatus throughput with 1, 2 and 3 replicas behind
HAProxy (TLS passthrough) on one PostgreSQL, in one run, with the CPU each part used.

The bench starts its own PostgreSQL (initdb in a temporary directory), HAProxy and
the replicas (this script's ``--serve`` mode: the SOAP service as ``gproc serve``
builds it, tracker leadership included, with jobs that ask for more memory than any
slot has, so they stay idle and are removed at the end). Per step: C client threads
(zeep, one keep-alive connection each) send RegisterTask of B ndvi tasks (two 2 KiB
inline inputs) + SubmitTask, then GetTaskStatus of B ids. CPU per part is read from
/proc (utime+stime of the replicas, HAProxy, every PostgreSQL backend, the schedd)
over each phase. The ratio is against the 1-replica step of the same run.

Run: GPROC_STATE_DIR=<pool state dir> .venv/bin/python bench/bench_replicas.py \\
        [--tasks 400] [--batch 20] [--clients 8] [--host 127.0.0.1] [--port 0]
(``--port``: the first replica's port, the others follow; 0: free ports.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_soap_submit import TIF, IdleWMS, _pool, _settings  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
STATUS_ROUNDS = 5  # GetTaskStatus passes over the step's tasks (a phase long enough to time)
PARTS = ("replicas", "haproxy", "postgres", "schedd", "clients")


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- one replica (the --serve mode) ---------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    from gproc.app import build_tracker
    from gproc.security.tls import TLSConfig
    from gproc.services.chassis import build_validator
    from gproc.services.soap.app import build_context, make_soap_server

    pool = _pool(Path(args.state_dir))
    settings = _settings(
        Path(args.serve), pool, Path(args.pki), args.instance, args.host, args.port
    )
    settings.database.url = args.db
    settings.tracker.replica_name = f"bench-{args.port}"
    svc = settings.service
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    wms = IdleWMS(
        args.instance,
        event_log=settings.htcondor.event_log,
        sandbox_root=settings.state_dir.resolve() / "sandboxes",
    )
    gp = build_context(settings, validator, wms=wms)
    server = make_soap_server(gp, validator, TLSConfig(svc.cert, svc.key, svc.ca_dir))  # type: ignore[arg-type]
    tracker = build_tracker(gp.core, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    tracker.start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    tracker.stop()


# ---- the parts and their CPU ---------------------------------------------------------
def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def _pids(match: Callable[[str], bool]) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if match(cmd):
                out.append(int(p.name))
    return out


class Parts:
    def __init__(self, replicas: list[int], haproxy: int, pg_data: Path) -> None:
        self.groups: dict[str, Callable[[], list[int]]] = {
            "replicas": lambda: replicas,
            "haproxy": lambda: [haproxy],
            "postgres": lambda: _pg_pids(pg_data),
            "schedd": lambda: _pids(lambda c: "condor_schedd" in c),
            "clients": lambda: [os.getpid()],  # the zeep clients: this process
        }

    def sample(self) -> dict[str, dict[int, float]]:
        return {k: {p: _cpu(p) for p in f()} for k, f in self.groups.items()}

    @staticmethod
    def delta(a: dict[str, dict[int, float]], b: dict[str, dict[int, float]]) -> dict[str, float]:
        return {k: sum(v - a[k].get(p, 0.0) for p, v in b[k].items()) for k in b}


def _pg_pids(data: Path) -> list[int]:
    main = _pids(lambda c: f"-D {data}" in c)
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in main:
                kids.append(int(p.name))
    return main + kids


# ---- PostgreSQL, HAProxy ------------------------------------------------------------
def _as_pg(argv: list[str]) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def start_postgres(base: Path) -> tuple[str, Path]:
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data = base / "data"
    _as_pg([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "gproc", "--no-sync"])
    port = _free()
    opts = f"-h 127.0.0.1 -p {port} -k {base} -F -c max_connections=300"
    _as_pg(
        [str(pg / "pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o", opts, "start"]
    )
    _as_pg([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "gproc", "bench"])
    return f"postgresql+psycopg://gproc@127.0.0.1:{port}/bench", data


def stop_postgres(data: Path) -> None:
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    with contextlib.suppress(subprocess.CalledProcessError):
        _as_pg([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def start_haproxy(root: Path, front: int, ports: list[int]) -> subprocess.Popen[bytes]:
    sys.path.insert(0, str(REPO))
    from tests.fixtures.haproxy import passthrough_config

    cfg = root / f"haproxy-{len(ports)}.cfg"
    cfg.write_text(passthrough_config(front, ports))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", front)) == 0:
                return proc
        time.sleep(0.05)
    raise RuntimeError("haproxy did not start")


# ---- the clients --------------------------------------------------------------------
def _client(url: str, pki: Any, ca_file: Path) -> Any:
    import requests
    import zeep
    from zeep.transports import Transport

    s = requests.Session()
    s.trust_env = False
    s.cert = str(pki.proxies["alice-voms"])
    s.verify = str(ca_file)
    client = zeep.Client(url + "?wsdl", transport=Transport(session=s, timeout=120))
    return client.create_service(next(iter(client.wsdl.bindings)), url)


def run_clients(
    clients: list[Any], tasks: int, batch: int, tag: str, parts: Parts | None = None
) -> tuple[float, float, list[dict[str, float]]]:
    """(register+submit seconds, status seconds, CPU per part of each phase) for
    ``tasks`` over all clients."""
    per = tasks // len(clients)
    spec = {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
    }
    ids: list[list[str]] = [[] for _ in clients]

    def submit(k: int) -> None:
        for b in range(0, per, batch):
            n = min(batch, per - b)
            specs = [{**spec, "client_request_id": f"{tag}-{k}-{b + i}"} for i in range(n)]
            got = [t.task_id for t in clients[k].RegisterTask(tasks=specs)]
            clients[k].SubmitTask(task_ids=got)
            ids[k].extend(got)

    def status(k: int) -> None:
        for _ in range(STATUS_ROUNDS):
            for b in range(0, len(ids[k]), batch):
                clients[k].GetTaskStatus(task_ids=ids[k][b : b + batch])

    marks = [parts.sample()] if parts else []
    sub_s = _timed(submit, len(clients))
    marks += [parts.sample()] if parts else []
    st_s = _timed(status, len(clients))
    marks += [parts.sample()] if parts else []
    cpu = [Parts.delta(a, b) for a, b in zip(marks, marks[1:], strict=False)]
    return sub_s, st_s, cpu


def _timed(fn: Callable[[int], None], n: int) -> float:
    threads = [threading.Thread(target=fn, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


# ---- main ---------------------------------------------------------------------------
def main(args: argparse.Namespace) -> None:
    from gproc.security.pki import make_test_pki

    pool = _pool(Path(args.state_dir))
    root = Path(tempfile.mkdtemp(prefix="gproc-bench-replicas-"))
    os.chmod(root, 0o755)
    pki = make_test_pki(root / "pki")
    ca_file = root / "ca.pem"
    ca_file.write_bytes(pki.ca.cert_pem())
    pgbase = root / "pg"
    pgbase.mkdir()
    db, pg_data = start_postgres(pgbase)
    instance = f"benchrep{uuid.uuid4().hex[:8]}"
    base = args.port or 0
    ports = [base + i if base else _free() for i in range(3)]
    procs: list[subprocess.Popen[str]] = []
    rows = []
    try:
        for n in (1, 2, 3):
            while len(procs) < n:
                port = ports[len(procs)]
                argv = [
                    sys.executable,
                    __file__,
                    "--serve",
                    str(root / "state"),
                    "--pki",
                    str(root / "pki"),
                ]
                argv += ["--instance", instance, "--host", args.host, "--port", str(port)]
                argv += ["--state-dir", args.state_dir, "--db", db]
                p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
                procs.append(p)
            front = _free()
            hap = start_haproxy(root, front, ports[:n])
            try:
                url = f"https://127.0.0.1:{front}/"
                clients = [_client(url, pki, ca_file) for _ in range(args.clients)]
                parts = Parts([p.pid for p in procs], hap.pid, pg_data)
                run_clients(clients, args.batch * args.clients, args.batch, f"warm{n}")
                sub_s, st_s, cpu = run_clients(clients, args.tasks, args.batch, f"s{n}", parts)
                rows.append((n, sub_s, st_s, cpu[0], cpu[1]))
            finally:
                hap.terminate()
                hap.wait(10)
        _report(rows, args.tasks)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(60)
        removed = _clean(instance)
        stop_postgres(pg_data)
        print(f"removed {removed} idle jobs; pool {pool.state_dir}")
        shutil.rmtree(root, ignore_errors=True)


def _clean(instance: str) -> int:
    import classad2
    import htcondor2

    schedd = htcondor2.Schedd()
    constraint = f"GprocInstance == {classad2.quote(instance)}"
    n = len(schedd.query(constraint, ["ClusterId"]))
    schedd.act(htcondor2.JobAction.Remove, constraint)
    return n


def _report(rows: list[Any], tasks: int) -> None:
    base_sub = tasks / rows[0][1]
    base_st = tasks * STATUS_ROUNDS / rows[0][2]
    print(f"\n{tasks} tasks per step; CPU seconds per part during the phase")
    cpu = "CPU s " + "/".join(PARTS)
    print(f"replicas | register+submit tasks/s (ratio) | {cpu}", end="")
    print(f" | GetTaskStatus tasks/s (ratio) | {cpu}")
    for n, sub_s, st_s, c1, c2 in rows:
        cpu1 = "/".join(f"{c1[k]:.1f}" for k in PARTS)
        cpu2 = "/".join(f"{c2[k]:.1f}" for k in PARTS)
        print(
            f"{n} | {tasks / sub_s:.0f} ({tasks / sub_s / base_sub:.2f}) | {cpu1}"
            f" | {tasks * STATUS_ROUNDS / st_s:.0f} ({tasks * STATUS_ROUNDS / st_s / base_st:.2f})"
            f" | {cpu2}"
        )


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=400)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="first replica port (0: free ports)")
    p.add_argument("--state-dir", default=os.environ.get("GPROC_STATE_DIR", ".state"))
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--pki", help=argparse.SUPPRESS)
    p.add_argument("--instance", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    a = _args()
    serve(a) if a.serve else main(a)
