"""SOAP RegisterTask + SubmitTask throughput against raw spooled htcondor2, in one run.

Each "call" is what one client does for a batch: RegisterTask of B ``ndvi`` tasks
(two 2 KiB inline inputs each) and SubmitTask of their ids, over HTTPS with a VOMS
proxy (zeep, one keep-alive client). The service runs in its own process (as
``gproc serve`` does, tracker included) on ``--host/--port``. The baseline is the
same batch submitted with the htcondor2 bindings alone: one ``Submit`` with
itemdata for B jobs of the same executable with two input files,
``Schedd.submit(spool=True)`` + ``Schedd.spool`` — what any spooling client must do.
The core in-process (``TaskService.register`` + ``submit``, no SOAP) is printed too.
Modes alternate per repetition; the ratio is of the medians.

Jobs ask for more memory than any slot has, so they never run; every job of the
run is removed at the end. ``--profile FILE`` writes a cProfile of the service's
request handling (requests are sequential with one client) and prints its top.

Run: GPROC_STATE_DIR=<pool state dir> [GPROC_POOL_PORT=...] \\
     .venv/bin/python bench/bench_soap_submit.py [--tasks 200] [--batch 10] [--reps 3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import classad2  # noqa: E402
import htcondor2  # noqa: E402
import requests  # noqa: E402
import zeep  # noqa: E402
from zeep.transports import Transport  # noqa: E402

from gproc.app import build_service, build_tracker  # noqa: E402
from gproc.connectors import ToolRequest  # noqa: E402
from gproc.domain import Owner, TaskRequest  # noqa: E402
from gproc.lifecycle import plan_request  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from gproc.settings import HTCondorSettings, ServiceSettings, Settings  # noqa: E402
from gproc.wrappers.base import JobSpec  # noqa: E402
from gproc.wrappers.htcondor.pool import PersonalPool, activate_client_config  # noqa: E402
from gproc.wrappers.htcondor.schedd import HTCondorWMS  # noqa: E402

TIF = b"II*\x00" + bytes(2048)
NEVER_MATCHES_MB = 10**8


class IdleWMS(HTCondorWMS):
    """Submits exactly as the service does, but no slot ever matches the jobs."""

    def _description(self, spec: JobSpec) -> dict[str, str]:
        return {**super()._description(spec), "request_memory": str(NEVER_MATCHES_MB)}


def _pool(state_dir: Path) -> PersonalPool:
    pool = PersonalPool(state_dir)
    if not pool.is_up():
        sys.exit(f"the personal pool under {state_dir} is not up (gproc pool up)")
    activate_client_config(pool.client_config)
    return pool


def _settings(
    state: Path, pool: PersonalPool, pki: Path, instance: str, host: str, port: int
) -> Settings:
    return Settings(
        state_dir=state,
        htcondor=HTCondorSettings(
            condor_config=pool.client_config, event_log=pool.event_log, instance=instance
        ),
        service=ServiceSettings(
            host=host,
            port=port,
            cert=pki / "hostcert.pem",
            key=pki / "hostkey.pem",
            ca_dir=pki / "certificates",
            vomsdir=pki / "vomsdir",
            policy=REPO / "etc/policy.toml",
            threads=8,
        ),
    )


def _wms(settings: Settings) -> IdleWMS:
    return IdleWMS(
        settings.htcondor.instance,
        event_log=settings.htcondor.event_log,
        sandbox_root=settings.state_dir.resolve() / "sandboxes",
    )


# ---- the server process ------------------------------------------------------------
class Profiled:
    """WSGI wrapper: every request (body iteration included) under one cProfile."""

    def __init__(self, app: Callable[..., Iterable[bytes]], path: Path) -> None:
        self.app, self.path = app, path
        self.prof = cProfile.Profile()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        with self.lock:  # one client: no contention; keeps the profiler single-threaded
            self.prof.enable()
            try:
                body = self.app(environ, start)
                out = list(body)
                if hasattr(body, "close"):
                    body.close()
                return out
            finally:
                self.prof.disable()

    def dump(self) -> None:
        self.prof.dump_stats(str(self.path))


def serve(args: argparse.Namespace) -> None:
    from gproc.security.tls import TLSConfig, make_server
    from gproc.services.chassis import build_validator
    from gproc.services.soap.app import build_context, build_wsgi

    pool = _pool(Path(args.state_dir))
    settings = _settings(
        Path(args.serve), pool, Path(args.pki), args.instance, args.host, args.port
    )
    svc = settings.service
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator, wms=_wms(settings))
    app: Any = build_wsgi(gp)
    profiled = Profiled(app, Path(args.profile)) if args.profile else None
    server = make_server(
        profiled or app,
        svc.host,
        svc.port,
        TLSConfig(svc.cert, svc.key, svc.ca_dir),  # type: ignore[arg-type]
        validator,
        require_identity=False,
        threads=svc.threads,
    )
    tracker = build_tracker(gp.core, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    if not args.no_tracker:
        tracker.start()
    print(f"https://{svc.host}:{server.port}/", flush=True)
    stop.wait()
    server.stop()
    tracker.stop()
    if profiled:
        profiled.dump()


class Server:
    def __init__(self, args: argparse.Namespace, state: Path, pki: Path, instance: str) -> None:
        argv = [sys.executable, __file__, "--serve", str(state), "--pki", str(pki)]
        argv += ["--instance", instance, "--host", args.host, "--port", str(args.port)]
        argv += ["--state-dir", args.state_dir]
        if args.profile:
            argv += ["--profile", args.profile]
        if args.no_tracker:
            argv.append("--no-tracker")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("https://"):
            raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


# ---- the modes ----------------------------------------------------------------------
def soap_calls(client: zeep.Client, calls: int, size: int) -> float:
    spec = {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
    }
    t0 = time.perf_counter()
    for _ in range(calls):
        tasks = client.service.RegisterTask(tasks=[spec] * size)
        states = {t.state for t in client.service.SubmitTask(task_ids=[t.task_id for t in tasks])}
        assert states <= {"submitted", "idle"}, states
    return time.perf_counter() - t0


def core_calls(settings: Settings, calls: int, size: int, owner: Owner) -> float:
    core = build_service(settings, wms=_wms(settings), local_roots=())
    req = TaskRequest(
        ToolRequest("ndvi", {"red": "inline:red", "nir": "inline:nir"}),
        owner,
        inline_inputs={"red": TIF, "nir": TIF},
    )
    t0 = time.perf_counter()
    for _ in range(calls):
        views = core.register([req] * size)
        results = core.submit([v.id for v in views])
        assert all(r.task and r.task.job_id for r in results)
    elapsed = time.perf_counter() - t0
    core.registry.close()
    return elapsed


def raw_calls(work: Path, instance: str, calls: int, size: int) -> float:
    """The same jobs with the bindings alone: one spooled itemdata cluster per call."""
    plan = plan_request(ToolRequest("ndvi", {"red": "x", "nir": "y"}))
    names = [str(n) for n in plan.inputs.values()]
    inputs = []
    for name in names:
        (work / name).write_bytes(TIF)
        inputs.append(str(work / name))
    schedd = htcondor2.Schedd()
    template = {
        "universe": "vanilla",
        "executable": str(plan.executable),
        "arguments": '"' + " ".join(plan.arguments) + '"',
        "initialdir": str(work),
        "output": "$(ProcId).out",
        "error": "$(ProcId).err",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": ",".join(inputs),
        "request_memory": str(NEVER_MATCHES_MB),
        "MY.GprocInstance": classad2.quote(instance),
        "MY.GprocTaskId": "$(tid)",
    }
    t0 = time.perf_counter()
    for _ in range(calls):
        items = [{"tid": classad2.quote(uuid.uuid4().hex)} for _ in range(size)]
        result = schedd.submit(htcondor2.Submit(template), spool=True, itemdata=iter(items))
        schedd.spool(result)
    return time.perf_counter() - t0


def clean(instance: str) -> int:
    schedd = htcondor2.Schedd()
    mine = f"GprocInstance == {classad2.quote(instance)}"
    ads = schedd.query(mine, ["ClusterId"])
    if ads:
        schedd.edit(mine, "GprocRetrieved", classad2.ExprTree("true"))
        schedd.act(htcondor2.JobAction.Remove, f"({mine}) && JobStatus != 3", "benchmark cleanup")
    return len(ads)


def _client(url: str, pki: Any, ca_file: Path) -> zeep.Client:
    s = requests.Session()
    s.trust_env = False
    s.cert = str(pki.proxies["alice-voms"])
    s.verify = str(ca_file)
    return zeep.Client(url + "?wsdl", transport=Transport(session=s))


def main(args: argparse.Namespace) -> None:
    pool = _pool(Path(args.state_dir))
    calls = args.tasks // args.batch
    n = calls * args.batch
    instance = f"benchsub{uuid.uuid4().hex[:8]}"
    times: dict[str, list[float]] = {"raw": [], "core": [], "soap": []}
    with tempfile.TemporaryDirectory(prefix="gproc-bench-") as tmp:
        root = Path(tmp)
        pki = make_test_pki(root / "pki")
        ca_file = root / "ca.pem"
        ca_file.write_bytes(pki.ca.cert_pem())
        owner = Owner(pki.users["alice"].dn, "testvo", ("/testvo",), "group_testvo")
        (root / "server").mkdir()
        (root / "raw").mkdir()
        local = _settings(root / "core", pool, root / "pki", instance, args.host, 0)
        server = Server(args, root / "server", root / "pki", instance)
        try:
            client = _client(server.url, pki, ca_file)
            soap_calls(client, 1, args.batch)  # warm-up: WSDL, TLS, first imports
            for rep in range(args.reps):
                order = ("raw", "core", "soap") if rep % 2 == 0 else ("soap", "core", "raw")
                for mode in order:
                    if mode == "raw":
                        t = raw_calls(root / "raw", instance, calls, args.batch)
                    elif mode == "core":
                        t = core_calls(local, calls, args.batch, owner)
                    else:
                        t = soap_calls(client, calls, args.batch)
                    times[mode].append(t)
                    print(f"rep {rep + 1} {mode:4s}: {n / t:7.1f} tasks/s", flush=True)
        finally:
            server.stop()
            removed = clean(instance)
    _report(n, args.batch, times, removed)
    if args.profile:
        _print_profile(Path(args.profile))


def _report(n: int, batch: int, times: dict[str, list[float]], removed: int) -> None:
    med = {m: statistics.median(t) for m, t in times.items()}
    raw = n / med["raw"]
    print(f"\nregister+submit, {n} tasks per mode and rep, {batch} per call, 2 inline inputs")
    for mode, label in (
        ("raw", "raw htcondor2 spooled"),
        ("core", "core in-process"),
        ("soap", "SOAP, 1 client"),
    ):
        runs = ", ".join(f"{n / t:.0f}" for t in times[mode])
        rate = n / med[mode]
        print(f"  {label:22s}: {rate:7.1f} tasks/s  x{rate / raw:.2f} of raw  (runs {runs})")
    ratio = med["raw"] / med["soap"]
    print(f"ratio SOAP/raw: {ratio:.2f}; goal >= 0.6: {'met' if ratio >= 0.6 else 'NOT met'}")
    print(f"jobs removed at the end: {removed}")


def _print_profile(path: Path) -> None:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    print(out.getvalue())


def _args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200, help="tasks per mode and repetition")
    ap.add_argument("--batch", type=int, default=10, help="tasks per call")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--host", default="127.0.0.1", help="service listen address")
    ap.add_argument("--port", type=int, default=0, help="service port (0: a free one)")
    ap.add_argument("--state-dir", default=os.environ.get("GPROC_STATE_DIR", ".state"))
    ap.add_argument("--profile", help="write a cProfile of the service's requests here")
    ap.add_argument(
        "--no-tracker", action="store_true", help="run the service without its tracker thread"
    )
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--pki", help=argparse.SUPPRESS)
    ap.add_argument("--instance", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    parsed = _args(sys.argv[1:])
    if parsed.serve:
        serve(parsed)
    else:
        main(parsed)
