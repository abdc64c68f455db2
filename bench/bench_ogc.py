"""The OGC fronts (OGC API - Processes, WPS 2.0, WPS 1.0.0) vs the SOAP API: async
execute + status polling, same run.

Each front runs N small tasks (NDVI, two 2 KiB inline inputs) the way a client
drives an asynchronous job: one execute per task (OGC API: ``POST
/processes/ndvi/execution`` with ``Prefer: respond-async``; WPS 2.0: ``POST /wps``
Execute ``mode="async"``; WPS 1.0.0: ``POST /wps`` Execute with
``storeExecuteResponse="true" status="true"``; SOAP: ``RegisterTask`` +
``SubmitTask`` of one task), then P status polls per task (OGC API: ``GET
/jobs/{id}``; WPS 2.0: KVP GetStatus; WPS 1.0.0: ``GET`` of the statusLocation;
SOAP: ``GetTaskStatus``). All fronts are served by one server process on one core
(shared registry and policy, tracker running, as ``gproc serve`` + ``gproc ogc
serve`` on one registry); clients are one keep-alive HTTPS session with alice's
VOMS proxy: plain ``requests`` (responses parsed: JSON, or lxml for WPS) for the
OGC fronts, zeep for SOAP. Jobs go to the personal pool but never run (they ask
for 100 TB of memory); they are removed at the end. The fronts are interleaved task
by task (the order rotating from one task to the next), so that a change of load on
the shared machine weighs on every front alike; each front's time is the sum of its
tasks' times within a repetition.

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
from lxml import etree  # noqa: E402
from zeep.transports import Transport  # noqa: E402

from bench.bench_soap import TIF, _settings, _wms  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from gproc.settings import OgcSettings  # noqa: E402

B64 = base64.b64encode(TIF).decode()
BODY = {"inputs": {p: {"value": B64} for p in ("red", "nir")}}
WPS2_NS, WPS1_NS = "http://www.opengis.net/wps/2.0", "http://www.opengis.net/wps/1.0.0"
OWS2_NS, OWS1_NS = "http://www.opengis.net/ows/2.0", "http://www.opengis.net/ows/1.1"
WPS2_EXECUTE = (
    f'<wps:Execute xmlns:wps="{WPS2_NS}" xmlns:ows="{OWS2_NS}" service="WPS" version="2.0.0" '
    'mode="async" response="document"><ows:Identifier>ndvi</ows:Identifier>'
    + "".join(
        f'<wps:Input id="{p}"><wps:Data mimeType="image/tiff" encoding="base64">{B64}'
        "</wps:Data></wps:Input>"
        for p in ("red", "nir")
    )
    + "</wps:Execute>"
).encode()
WPS1_EXECUTE = (
    f'<wps:Execute xmlns:wps="{WPS1_NS}" xmlns:ows="{OWS1_NS}" service="WPS" version="1.0.0">'
    "<ows:Identifier>ndvi</ows:Identifier><wps:DataInputs>"
    + "".join(
        f"<wps:Input><ows:Identifier>{p}</ows:Identifier><wps:Data>"
        f'<wps:ComplexData mimeType="image/tiff" encoding="base64">{B64}</wps:ComplexData>'
        "</wps:Data></wps:Input>"
        for p in ("red", "nir")
    )
    + '</wps:DataInputs><wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" '
    'status="true"><wps:Output asReference="true"><ows:Identifier>output</ows:Identifier>'
    "</wps:Output></wps:ResponseDocument></wps:ResponseForm></wps:Execute>"
).encode()
XML = {"Content-Type": "application/xml"}


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


def run_wps2(url: str, s: requests.Session, tasks: int, polls: int) -> float:
    status_tag = f"{{{WPS2_NS}}}Status"
    t0 = time.perf_counter()
    for _ in range(tasks):
        r = s.post(f"{url}/wps", data=WPS2_EXECUTE, headers=XML, timeout=60)
        assert r.status_code == 200, r.text[:300]
        job = etree.fromstring(r.content).findtext(f"{{{WPS2_NS}}}JobID")
        params = {"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": job}
        for _ in range(polls):
            doc = etree.fromstring(s.get(f"{url}/wps", params=params, timeout=60).content)
            assert doc.findtext(status_tag) == "Accepted"
    return time.perf_counter() - t0


def run_wps1(url: str, s: requests.Session, tasks: int, polls: int) -> float:
    accepted = f"{{{WPS1_NS}}}Status/{{{WPS1_NS}}}ProcessAccepted"
    t0 = time.perf_counter()
    for _ in range(tasks):
        r = s.post(f"{url}/wps", data=WPS1_EXECUTE, headers=XML, timeout=60)
        assert r.status_code == 200, r.text[:300]
        location = etree.fromstring(r.content).get("statusLocation")
        for _ in range(polls):
            doc = etree.fromstring(s.get(location, timeout=60).content)
            assert doc.find(accepted) is not None
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
            fronts = {
                "OGC API - Processes": lambda n, p: run_ogc(ogc_url, s, n, p),
                "WPS 2.0": lambda n, p: run_wps2(ogc_url, s, n, p),
                "WPS 1.0.0": lambda n, p: run_wps1(ogc_url, s, n, p),
                "SOAP": lambda n, p: run_soap(client, n, p),
            }
            for run in fronts.values():  # warm-up every front
                run(5, 1)
            times: dict[str, list[float]] = {name: [] for name in fronts}
            names = list(fronts)
            for rep in range(args.reps):
                spent = dict.fromkeys(names, 0.0)
                for task in range(args.tasks):
                    k = (task + rep) % len(names)
                    for name in names[k:] + names[:k]:
                        spent[name] += fronts[name](1, args.polls)
                for name in names:
                    times[name].append(spent[name])
                soap = times["SOAP"][-1]
                print(
                    f"rep {rep + 1}: "
                    + ", ".join(
                        f"{n} {args.tasks / t[-1]:.1f} tasks/s ({soap / t[-1]:.2f})"
                        for n, t in times.items()
                    )
                )
            soap_m = statistics.median(times["SOAP"])
            print(
                f"median of {args.reps}: SOAP {args.tasks / soap_m:.1f} tasks/s; "
                f"{args.tasks} tasks x (1 execute + {args.polls} polls) per run"
            )
            for name, t in times.items():
                if name != "SOAP":
                    m = statistics.median(t)
                    print(
                        f"  {name}: {args.tasks / m:.1f} tasks/s, ratio to SOAP "
                        f"{soap_m / m:.2f} (goal >= 0.8)"
                    )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main()
