"""A portal talking to the G-PROC SOAP service with a stock SOAP client (zeep).

Runs an NDVI task end to end: register (inputs sent inline, base64), submit, poll
the status, read the log, retrieve the result and check its SHA-256. Authenticates
with an X.509 proxy (e.g. from voms-proxy-init) over HTTPS.

    python examples/portal_client.py --url https://127.0.0.1:8443/ \\
        --proxy /tmp/x509up_u1000 --ca /etc/grid-security/certificates \\
        --red red.tif --nir nir.tif --out ndvi.tif
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import requests
import zeep
from zeep.transports import Transport

FINAL = {"completed", "failed", "cancelled", "purged"}


def connect(url: str, proxy: str, ca: str) -> zeep.Client:
    """A client presenting the proxy (certificate, key and chain in one file)."""
    session = requests.Session()
    session.trust_env = False  # use exactly the CA given, not one from the environment
    session.cert = proxy
    session.verify = ca
    return zeep.Client(url.rstrip("/") + "/?wsdl", transport=Transport(session=session))


def run_ndvi(
    client: zeep.Client,
    red: bytes,
    nir: bytes,
    *,
    request_id: str | None = None,
    timeout: float = 600.0,
    poll: float = 2.0,
) -> dict[str, Any]:
    """Register + submit one NDVI task and follow it to the end."""
    spec = {
        "tool": "ndvi",
        "client_request_id": request_id,
        "inputs": [{"name": "red", "content": red}, {"name": "nir", "content": nir}],
    }
    task = client.service.RegisterTask(tasks=[spec])[0]
    print(f"registered {task.task_id} (accounting group {task.accounting_group})")
    client.service.SubmitTask(task_ids=[task.task_id])
    deadline = time.monotonic() + timeout
    while True:
        status = client.service.GetTaskStatus(task_ids=[task.task_id])[0]
        if status.state in FINAL:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task.task_id} still {status.state}")
        time.sleep(poll)
    print(
        f"task {status.task_id}: {status.state} (job {status.wms_job_id}, exit {status.exit_code})"
    )
    log = client.service.GetTaskLog(task_id=task.task_id)
    outputs = []
    if status.state == "completed":
        outputs = list(client.service.RetrieveTaskOutput(task_id=task.task_id).outputs)
    return {"task": task, "status": status, "log": log, "outputs": outputs}


def save_output(output: Any, dest: Path) -> Path:
    """Write an inline output after checking its SHA-256 against the service's."""
    if not output.inline:
        raise RuntimeError(
            f"{output.name} is {output.size} bytes: fetch it from "
            f"{output.location or 'the data gateway'}"
        )
    if hashlib.sha256(output.content).hexdigest() != output.sha256:
        raise RuntimeError(f"{output.name}: checksum mismatch")
    dest.write_bytes(output.content)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--proxy", required=True, help="X.509 proxy file")
    ap.add_argument("--ca", required=True, help="CA certificate file or hashed directory")
    ap.add_argument("--red", type=Path, required=True)
    ap.add_argument("--nir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="where to write the NDVI GeoTIFF")
    args = ap.parse_args()
    client = connect(args.url, args.proxy, args.ca)
    info = client.service.GetServiceInfo()
    print(
        f"G-PROC {info.version} as {info.caller_dn} {list(info.caller_fqans)}; "
        f"WMS {info.wms} reachable={info.wms_reachable}"
    )
    result = run_ndvi(client, args.red.read_bytes(), args.nir.read_bytes())
    for event in result["log"].events:
        print(f"  {event.time:%H:%M:%S} {event.kind:<12} {event.state or ''} {event.detail or ''}")
    if result["status"].state != "completed":
        print(result["log"].stderr or "", file=sys.stderr)
        return 1
    out = next(o for o in result["outputs"] if o.port == "output")
    save_output(out, args.out)
    print(
        f"output {out.name}: {out.size} bytes, sha256 {out.sha256[:16]}..., "
        f"adler32 {out.adler32} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
