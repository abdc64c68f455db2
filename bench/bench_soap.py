"""SOAP service throughput and latency, against baselines measured in the same run.

(a) register+submit throughput: raw spooled htcondor2 submission (the WMS layer),
    the core (TaskService.register + submit) and the SOAP service over HTTPS with a
    VOMS proxy (zeep, one client); ratios SOAP/raw and SOAP/core.
(b) the same through SOAP with 16 concurrent clients.
(c) GetTaskStatus latency (one id per call, keep-alive HTTPS) with 100,000 tasks in
    the registry: p50/p99 over many calls, against a raw schedd query of one job
    (``Schedd.query`` by ClusterId/ProcId, the WMS's projection) in the same run.
(d) ListTasks latency at growing registry sizes (default 1k, 10k, 100k tasks of
    the caller): the first page and a deep page (the middle of the list), each by
    continuation token without a total (the service's paging) and the old way, by
    offset with a total count (what every page cost before keyset paging).

The service runs in its own process (as `gproc serve` does, tracker included) so
client and server do not share an interpreter. Every mode submits the same batches
(B tasks per call, two small inline inputs each) to the personal pool; the jobs are
never matched (they ask for 100 TB of memory) so the benchmark does not load the
execute slots; they are removed at the end.

Run: GPROC_STATE_DIR=<dir with the personal pool> .venv/bin/python bench/bench_soap.py
     [tasks-per-mode] [batch] [registry-size] [--host H --port P]
     [--only submit,status,list] [--list-sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
import zeep  # noqa: E402
from zeep.transports import Transport  # noqa: E402

from gproc.app import build_service, build_tracker  # noqa: E402
from gproc.connectors import ToolRequest  # noqa: E402
from gproc.domain import Owner, TaskRequest  # noqa: E402
from gproc.models import TaskRow  # noqa: E402
from gproc.registry import Registry, TaskFilter  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from gproc.settings import HTCondorSettings, ServiceSettings, Settings  # noqa: E402
from gproc.wrappers.base import JobSpec  # noqa: E402
from gproc.wrappers.htcondor.pool import PersonalPool, activate_client_config  # noqa: E402
from gproc.wrappers.htcondor.schedd import INFO_ATTRS, HTCondorWMS  # noqa: E402

TIF = b"II*\x00" + bytes(2048)
ENVELOPE = (
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
    'envelope/" xmlns:g="urn:gproc:processing:1"><s:Body><g:GetTaskStatus>'
    "<g:task_ids>{}</g:task_ids></g:GetTaskStatus></s:Body></s:Envelope>"
)


class IdleWMS(HTCondorWMS):
    """Submits exactly as the service does, but asks for more memory than any slot has
    (spooled jobs cannot be submitted on hold): submission cost without runs."""

    def _description(self, spec: JobSpec) -> dict[str, str]:
        return {**super()._description(spec), "request_memory": str(10**8)}


def _pool() -> PersonalPool:
    pool = PersonalPool(Path(os.environ.get("GPROC_STATE_DIR", ".state")))
    if not pool.is_up():
        sys.exit("the personal pool is not up (gproc pool up)")
    activate_client_config(pool.client_config)
    return pool


def _settings(
    state: Path, pki_root: Path, instance: str, host: str = "127.0.0.1", port: int = 0
) -> Settings:
    pool = _pool()
    return Settings(
        state_dir=state,
        htcondor=HTCondorSettings(
            condor_config=pool.client_config, event_log=pool.event_log, instance=instance
        ),
        service=ServiceSettings(
            host=host,
            port=port,
            cert=pki_root / "hostcert.pem",
            key=pki_root / "hostkey.pem",
            ca_dir=pki_root / "certificates",
            vomsdir=pki_root / "vomsdir",
            policy=REPO / "etc/policy.toml",
            threads=32,
        ),
    )


def _wms(settings: Settings) -> IdleWMS:
    return IdleWMS(
        settings.htcondor.instance,
        event_log=settings.htcondor.event_log,
        sandbox_root=settings.state_dir / "sandboxes",
    )


# ---- the server process ------------------------------------------------------------
def serve(state: Path, pki_root: Path, instance: str, host: str, port: int) -> None:
    from gproc.security.tls import TLSConfig
    from gproc.services.soap.app import build_context, build_validator, make_soap_server

    settings = _settings(state, pki_root, instance, host, port)
    access = logging.getLogger("gproc.soap.access")
    access.addHandler(logging.FileHandler(state / "access.log"))
    access.setLevel(logging.INFO)
    access.propagate = False
    svc = settings.service
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator, wms=_wms(settings))
    server = make_soap_server(gp, validator, TLSConfig(svc.cert, svc.key, svc.ca_dir))  # type: ignore[arg-type]
    tracker = build_tracker(gp.core, settings)
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        server.server.wsgi_app, dump = _profiled(server.server.wsgi_app)
    pauses = _gc_pauses() if os.environ.get("BENCH_GC") else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    if os.environ.get("BENCH_TRACKER", "1") == "1":
        tracker.start()
    print(server.url + "/", flush=True)
    stop.wait()
    server.stop()
    tracker.stop()
    if profile:
        dump(profile)
    if pauses is not None:
        slow = sorted(pauses, reverse=True)
        print(
            f"server gc: {len(pauses)} collections, {sum(pauses):.0f} ms in all, "
            f"longest {', '.join(f'{p:.1f}' for p in slow[:5])} ms",
            file=sys.stderr,
        )


def _gc_pauses() -> list[float]:
    """Durations (ms) of the interpreter's garbage collections in this process."""
    import gc

    pauses: list[float] = []
    started: list[float] = [0.0]

    def callback(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)
    return pauses


def _profiled(app: Any) -> tuple[Any, Any]:
    """The WSGI app with every request profiled in its worker thread (cProfile is
    per thread), identity validation included; ``dump(path)`` merges the profiles."""
    import cProfile
    import pstats

    local = threading.local()
    profiles: list[cProfile.Profile] = []

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        prof = getattr(local, "prof", None)
        if prof is None:
            prof = local.prof = cProfile.Profile()
            profiles.append(prof)
        prof.enable()
        try:
            return list(app(environ, start_response))
        finally:
            prof.disable()

    def dump(path: str) -> None:
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(path)

    return wrapped, dump


class Server:
    def __init__(
        self, state: Path, pki_root: Path, instance: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        argv = [sys.executable, __file__, "serve", str(state), str(pki_root), instance]
        self.proc = subprocess.Popen(
            [*argv, host, str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("https://"):
            raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


# ---- measurements --------------------------------------------------------------------
def _session(pki: Any, ca_file: Path) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.cert = str(pki.proxies["alice-voms"])
    s.verify = str(ca_file)
    return s


def _spec() -> dict[str, Any]:
    return {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
    }


def soap_batches(url: str, session: requests.Session, batches: int, size: int) -> list[str]:
    client = zeep.Client(url + "?wsdl", transport=Transport(session=session))
    ids: list[str] = []
    for _ in range(batches):
        tasks = client.service.RegisterTask(tasks=[_spec() for _ in range(size)])
        batch = [t.task_id for t in tasks]
        states = {t.state for t in client.service.SubmitTask(task_ids=batch)}
        assert states <= {"submitted", "idle"}, states
        ids += batch
    return ids


def core_batches(settings: Settings, batches: int, size: int, owner: Owner) -> float:
    core = build_service(settings, wms=_wms(settings), local_roots=())
    req = TaskRequest(
        ToolRequest("ndvi", {"red": "inline:red", "nir": "inline:nir"}),
        owner,
        inline_inputs={"red": TIF, "nir": TIF},
    )
    t0 = time.perf_counter()
    for _ in range(batches):
        views = core.register([req] * size)
        results = core.submit([v.id for v in views])
        assert all(r.task and r.task.job_id for r in results)
    elapsed = time.perf_counter() - t0
    core.registry.close()
    return elapsed


def raw_batches(settings: Settings, batches: int, size: int, work: Path) -> float:
    wms = _wms(settings)
    red, nir = work / "red.tif", work / "nir.tif"
    red.write_bytes(TIF)
    nir.write_bytes(TIF)
    script = REPO / "connectors/payload/eotool.py"
    t0 = time.perf_counter()
    for _ in range(batches):
        specs = [
            JobSpec(
                task_id=uuid.uuid4().hex,
                executable=script,
                arguments=("ndvi", "--in-red=red.tif"),
                input_files=(red, nir),
                output_files=("out.tif",),
            )
            for _ in range(size)
        ]
        wms.submit(specs)
    return time.perf_counter() - t0


def fill_registry(url: str, n: int, dn: str) -> list[str]:
    reg = Registry(url)
    ids = [uuid.uuid4().hex for _ in range(n)]
    for i in range(0, n, 5000):
        reg.insert_tasks(
            [
                TaskRow(
                    id=t,
                    owner_dn=dn,
                    owner_vo="testvo",
                    tool="ndvi",
                    request_json="{}",
                    plan_json="{}",
                    state="completed",
                    exit_code=0,
                    attempt=1,
                )
                for t in ids[i : i + 5000]
            ]
        )
    reg.close()
    return ids


def status_latency(url: str, session: requests.Session, ids: list[str], calls: int) -> list[float]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    times: list[float] = []
    for i in range(calls + 50):
        body = ENVELOPE.format(random.choice(ids)).encode()
        t0 = time.perf_counter()
        r = session.post(url, data=body, headers=headers, timeout=30)
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200 and b"completed" in r.content, r.text[:300]
        if i >= 50:  # warm-up excluded
            times.append(elapsed * 1000)
    return times


def _cleanup(settings: Settings) -> None:
    wms = _wms(settings)
    jobs = wms.find_jobs()
    if jobs:
        ids = [j.job_id for j in jobs.values()]
        wms.cancel(ids, "benchmark cleanup")
        wms.forget(ids)


def main(args: argparse.Namespace) -> None:
    n, batch, registry_size = args.tasks, args.batch, args.registry_size
    only = set(args.only.split(","))
    batches = n // batch
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = make_test_pki(root / "pki")
        ca_file = root / "ca.pem"
        ca_file.write_bytes(pki.ca.cert_pem())
        instance = f"bench{uuid.uuid4().hex[:8]}"
        local = _settings(root / "core", root / "pki", instance)
        owner = Owner(pki.users["alice"].dn, "testvo", ("/testvo",), "group_testvo")
        server_state = root / "server"
        server_state.mkdir()
        settings = _settings(server_state, root / "pki", instance)
        dn = pki.users["alice"].dn
        Registry(settings.database_url).close()  # the schema, before the server opens it
        server = Server(server_state, root / "pki", instance, args.host, args.port)
        try:
            if "list" in only:
                list_latency(server.url, _session(pki, ca_file), settings, dn, args.list_sizes)
            t_fill = time.perf_counter()
            have = _count(settings.database_url)
            ids = fill_registry(settings.database_url, max(0, registry_size - have), dn)
            t_fill = time.perf_counter() - t_fill
            if "submit" in only:
                t_raw = raw_batches(local, batches, batch, root)
                t_core = core_batches(local, batches, batch, owner)
                t0 = time.perf_counter()
                soap_batches(server.url, _session(pki, ca_file), batches, batch)
                t_soap = time.perf_counter() - t0
                t_conc, n_conc = _concurrent(server.url, pki, ca_file, 16, batch)
                _report(n, batch, t_raw, t_core, t_soap, t_conc, n_conc)
            if "status" in only:
                ids = ids or _some_ids(settings.database_url, dn)
                raw = raw_job_query(local, root, 2000)
                lat = status_latency(server.url, _session(pki, ca_file), ids, 2000)
                _report_status(lat, raw, registry_size, t_fill)
        finally:
            server.stop()
            _cleanup(local)
        if "status" in only:
            served = _server_times(server_state / "access.log", "GetTaskStatus", len(lat))
            q = statistics.quantiles(served, n=100)
            print(
                f"  inside the service (access log, request read to response written): "
                f"p50 {q[49]:.2f} ms  p99 {q[98]:.2f} ms"
            )


# ---- ListTasks ------------------------------------------------------------------------
LIST = (
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
    'envelope/" xmlns:g="urn:gproc:processing:1"><s:Body><g:ListTasks>{}</g:ListTasks>'
    "</s:Body></s:Envelope>"
)
TOKEN = re.compile(rb"next_page_token>([^<]+)<")


def _list_call(
    session: requests.Session, url: str, *, offset: int = 0, token: str = "", total: bool = False
) -> tuple[float, bytes]:
    parts = [f"<g:offset>{offset}</g:offset>" if offset else "", "<g:limit>100</g:limit>"]
    if token:
        parts.append(f"<g:page_token>{token}</g:page_token>")
    if total:
        parts.append("<g:with_total>true</g:with_total>")
    body = LIST.format("".join(parts)).encode()
    t0 = time.perf_counter()
    r = session.post(url, data=body, headers={"Content-Type": "text/xml"}, timeout=60)
    elapsed = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200 and r.content.count(b"<tns:task_id>") == 100, r.text[:300]
    return elapsed, r.content


def list_latency(
    url: str, session: requests.Session, settings: Settings, dn: str, sizes: list[int]
) -> None:
    """Fills the registry to each size in turn and times pages of 100 (medians)."""
    print("ListTasks, pages of 100 of the caller's tasks, newest first (median of 30 calls each,")
    print("the four variants alternating)")
    print("  tasks    | first: token  offset+total | deep (middle): token  offset+total")
    rows: list[tuple[float, ...]] = []
    db: list[tuple[float, ...]] = []
    for size in sizes:
        fill_registry(settings.database_url, max(0, size - _count(settings.database_url)), dn)
        mid = size // 2
        _, body = _list_call(session, url, offset=mid - 100)  # a token into the middle
        match = TOKEN.search(body)
        assert match, body[:300]
        token = match.group(1).decode()

        variants: list[dict[str, Any]] = [
            {},
            {"total": True},
            {"token": token},
            {"offset": mid, "total": True},
        ]
        times: list[list[float]] = [[] for _ in variants]
        for i in range(33):  # the variants alternate, so load changes hit them alike
            for kw, out in zip(variants, times, strict=True):
                elapsed = _list_call(session, url, **kw)[0]
                if i >= 3:
                    out.append(elapsed)
        r = (size, *(statistics.median(t) for t in times))
        db.append((size, *_registry_pages(settings.database_url, dn, token, mid)))
        rows.append(r)
        print(f"  {r[0]:>8,} | {r[1]:8.2f} ms  {r[2]:8.2f} ms | {r[3]:8.2f} ms  {r[4]:8.2f} ms")
    _ratios(rows)
    print("  the same pages read from the registry in-process (the database's share):")
    for r in db:
        print(f"  {r[0]:>8,} | {r[1]:8.2f} ms  {r[2]:8.2f} ms | {r[3]:8.2f} ms  {r[4]:8.2f} ms")
    _ratios(db)


def _ratios(rows: list[tuple[float, ...]]) -> None:
    first, last = rows[0], rows[-1]
    print(
        f"  ratio {last[0]:,} / {first[0]:,} tasks: first page x{last[1] / first[1]:.2f}, "
        f"deep page x{last[3] / first[3]:.2f} (token); offset+total x{last[2] / first[2]:.2f}, "
        f"x{last[4] / first[4]:.2f}"
    )


def _registry_pages(url: str, dn: str, token: str, mid: int) -> list[float]:
    """The same four pages read from the registry in this process (no HTTP, no SOAP):
    the database's share of a page."""
    reg = Registry(url)
    flt = TaskFilter(owner_dn=dn)
    variants: list[dict[str, Any]] = [
        {},
        {"with_total": True},
        {"after": token},
        {"offset": mid, "with_total": True},
    ]
    times: list[list[float]] = [[] for _ in variants]
    try:
        for i in range(33):
            for kw, out in zip(variants, times, strict=True):
                t0 = time.perf_counter()
                assert len(reg.page(flt, limit=100, **kw).rows) == 100
                if i >= 3:
                    out.append((time.perf_counter() - t0) * 1000)
    finally:
        reg.close()
    return [statistics.median(t) for t in times]


def _count(url: str) -> int:
    reg = Registry(url)
    try:
        return reg.page(TaskFilter(), limit=1, with_total=True).total or 0
    finally:
        reg.close()


def _some_ids(url: str, dn: str) -> list[str]:
    reg = Registry(url)
    try:
        return [r.id for r in reg.page(TaskFilter(owner_dn=dn), limit=5000).rows]
    finally:
        reg.close()


# ---- GetTaskStatus against the schedd -------------------------------------------------
def raw_job_query(settings: Settings, work: Path, calls: int) -> list[float]:
    """Latency of the schedd's own answer for one job (the floor under any status)."""
    import htcondor2

    raw_batches(settings, 1, 10, work)
    schedd = htcondor2.Schedd()
    constraint = f'GprocInstance == "{settings.htcondor.instance}"'
    jobs = [
        (a["ClusterId"], a["ProcId"]) for a in schedd.query(constraint, ["ClusterId", "ProcId"])
    ]
    times = []
    for i in range(calls + 50):
        c, p = random.choice(jobs)
        t0 = time.perf_counter()
        ads = schedd.query(f"ClusterId == {c} && ProcId == {p}", INFO_ATTRS)
        elapsed = (time.perf_counter() - t0) * 1000
        assert len(ads) == 1
        if i >= 50:
            times.append(elapsed)
    return times


def _report_status(lat: list[float], raw: list[float], registry_size: int, t_fill: float) -> None:
    q, r = statistics.quantiles(lat, n=100), statistics.quantiles(raw, n=100)
    print(
        f"GetTaskStatus, 1 id per call over HTTPS, {registry_size:,} tasks in the registry "
        f"(filled in {t_fill:.0f} s), {len(lat)} calls"
    )
    print(f"  p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms  max {max(lat):.2f} ms")
    print(
        f"  raw Schedd.query of one job (baseline): p50 {r[49]:.2f} ms  p99 {r[98]:.2f} ms; "
        f"GetTaskStatus / raw: p50 x{q[49] / r[49]:.2f}, p99 x{q[98] / r[98]:.2f}"
    )


def _server_times(log: Path, operation: str, last: int) -> list[float]:
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [e["ms"] for e in lines if e["operation"] == operation][-last:]


def _concurrent(url: str, pki: Any, ca_file: Path, clients: int, batch: int) -> tuple[float, int]:
    done: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            done.append(len(soap_batches(url, _session(pki, ca_file), 2, batch)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0, sum(done)


def _report(
    n: int,
    batch: int,
    t_raw: float,
    t_core: float,
    t_soap: float,
    t_conc: float,
    n_conc: int,
) -> None:
    raw, core, soap, conc = n / t_raw, n / t_core, n / t_soap, n_conc / t_conc
    print(f"register+submit, {n} tasks per mode, {batch} tasks per call, 2 inline inputs each")
    print(f"  raw htcondor2 spooled submit : {raw:7.1f} tasks/s  (baseline)")
    print(f"  core register+submit         : {core:7.1f} tasks/s  x{core / raw:.2f} of raw")
    print(
        f"  SOAP, 1 client (zeep)        : {soap:7.1f} tasks/s  x{soap / raw:.2f} of raw, "
        f"x{soap / core:.2f} of core"
    )
    print(
        f"  SOAP, 16 clients             : {conc:7.1f} tasks/s  x{conc / raw:.2f} of raw "
        f"({n_conc} tasks)"
    )


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tasks", nargs="?", type=int, default=200, help="tasks per submit mode")
    ap.add_argument("batch", nargs="?", type=int, default=10, help="tasks per call")
    ap.add_argument("registry_size", nargs="?", type=int, default=100_000)
    ap.add_argument("--host", default="127.0.0.1", help="address of the service")
    ap.add_argument("--port", type=int, default=0, help="port of the service (0: any free)")
    ap.add_argument("--only", default="submit,status,list", help="parts to run")
    ap.add_argument("--list-sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    return ap.parse_args()


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main(_args())
