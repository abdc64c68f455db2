"""OGC API - Processes vs the SOAP API: async execute + status polling, same run.

Each front runs N small tasks (NDVI, two 2 KiB inline inputs) the way a client
drives an asynchronous job: one execute per task (OGC: ``POST
/processes/ndvi/execution`` with ``Prefer: respond-async``; SOAP: ``RegisterTask``
+ ``SubmitTask`` of one task), then P status polls per task (OGC: ``GET
/jobs/{id}``; SOAP: ``GetTaskStatus``). Both fronts are served by one server
process on one core (shared registry and policy, tracker running, as ``gproc
serve`` + ``gproc ogc serve`` on one registry); clients are one keep-alive HTTPS
session each with alice's VOMS proxy: plain ``requests`` for OGC, zeep for SOAP.
Jobs go to the personal pool but never run (they ask for 100 TB of memory);
they are removed at the end. Fronts alternate, OGC first on odd repetitions.

Run: GPROC_STATE_DIR=<dir with the personal pool> .venv/bin/python bench/bench_ogc.py
     [--tasks 100] [--polls 3] [--reps 3] [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import base64
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
import zeep  # noqa: E402
from zeep.transports import Transport  # noqa: E402

from bench.bench_soap import TIF, _settings, _wms  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from gproc.settings import OgcSettings  # noqa: E402

BODY = {"inputs": {p: {"value": base64.b64encode(TIF).decode()} for p in ("red", "nir")}}


def serve(state: Path, pki_root: Path, instance: str, host: str, port: int) -> None:
    from gproc.app import build_tracker
    from gproc.security.tls import TLSConfig
    from gproc.services.ogc.api_processes import make_ogc_server
    from gproc.services.soap.app import build_context, build_validator, make_soap_server

    settings = _settings(state, pki_root, instance)
    svc = settings.service
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator, wms=_wms(settings))
    tls = TLSConfig(svc.cert, svc.key, svc.ca_dir)  # type: ignore[arg-type]
    soap = make_soap_server(gp, validator, tls)
    ogc = make_ogc_server(gp, OgcSettings(host=host, port=port, threads=32), validator, tls)
    tracker = build_tracker(gp.core, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    soap.start()
    ogc.start()
    tracker.start()
    print(soap.url + "/", ogc.url, flush=True)
    stop.wait()
    ogc.stop()
    soap.stop()
    tracker.stop()
    wms = _wms(settings)
    jobs = wms.find_jobs()
    if jobs:
        ids = [j.job_id for j in jobs.values()]
        wms.cancel(ids, "benchmark done")
        wms.forget(ids)


def run_ogc(url: str, s: requests.Session, tasks: int, polls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(tasks):
        r = s.post(
            f"{url}/processes/ndvi/execution",
            json=BODY,
            headers={"Prefer": "respond-async"},
            timeout=60,
        )
        assert r.status_code == 201, r.text[:300]
        loc = r.headers["Location"]
        for _ in range(polls):
            assert s.get(loc, timeout=60).json()["status"] == "accepted"
    return time.perf_counter() - t0


def run_soap(client: zeep.Client, tasks: int, polls: int) -> float:
    spec = {"tool": "ndvi", "inputs": [{"name": p, "content": TIF} for p in ("red", "nir")]}
    t0 = time.perf_counter()
    for _ in range(tasks):
        (reg,) = client.service.RegisterTask(tasks=[spec])
        client.service.SubmitTask(task_ids=[reg.task_id])
        for _ in range(polls):
            (st,) = client.service.GetTaskStatus(task_ids=[reg.task_id])
            assert st.state in {"submitted", "idle"}, st.state
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--polls", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--host", default="127.0.0.1", help="OGC front address")
    ap.add_argument("--port", type=int, default=0, help="OGC front port (0: any)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ogc-") as tmp:
        root = Path(tmp)
        pki = make_test_pki(root / "pki")
        ca_file = root / "ca.pem"
        ca_file.write_bytes(pki.ca.cert_pem())
        state = root / "state"
        state.mkdir()
        cmd = [sys.executable, __file__, "serve", str(state), str(pki.root)]
        cmd += [f"bogc{uuid.uuid4().hex[:8]}", args.host, str(args.port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None
        soap_url, ogc_url = proc.stdout.readline().split()
        try:
            s = requests.Session()
            s.trust_env = False
            s.cert, s.verify = str(pki.proxies["alice-voms"]), str(ca_file)
            client = zeep.Client(soap_url + "?wsdl", transport=Transport(session=s))
            run_ogc(ogc_url, s, 5, 1)  # warm-up both fronts
            run_soap(client, 5, 1)
            ogc_t, soap_t = [], []
            for rep in range(args.reps):
                order = ("ogc", "soap") if rep % 2 == 0 else ("soap", "ogc")
                for front in order:
                    if front == "ogc":
                        ogc_t.append(run_ogc(ogc_url, s, args.tasks, args.polls))
                    else:
                        soap_t.append(run_soap(client, args.tasks, args.polls))
                print(
                    f"rep {rep + 1}: OGC {args.tasks / ogc_t[-1]:.1f} tasks/s "
                    f"({ogc_t[-1]:.2f} s), SOAP {args.tasks / soap_t[-1]:.1f} tasks/s "
                    f"({soap_t[-1]:.2f} s), ratio {soap_t[-1] / ogc_t[-1]:.2f}"
                )
            o, p = statistics.median(ogc_t), statistics.median(soap_t)
            print(
                f"median: OGC API - Processes {args.tasks / o:.1f} tasks/s, SOAP "
                f"{args.tasks / p:.1f} tasks/s; ratio OGC/SOAP {p / o:.2f} (goal >= 0.8); "
                f"{args.tasks} tasks x (1 execute + {args.polls} polls) per run"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main()
