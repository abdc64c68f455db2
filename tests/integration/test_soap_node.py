"""A full task round trip through the WSDL with Node's stock ``soap`` package, on the
real pool, over HTTPS with alice's VOMS proxy (tests/integration/node/roundtrip.js).

The Node dependencies come from ``npm ci`` in bin/setup (package-lock.json pins them)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.soap import SoapServer
from tests.integration.test_soap_zeep import _load

NODE_DIR = Path(__file__).parent / "node"


def test_node_soap_round_trip_on_the_pool(soap_on_pool: SoapServer, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "soap").is_dir():
        pytest.fail(
            "node and the npm client are installed by bin/setup (npm ci in "
            f"{NODE_DIR}); run it first"
        )
    sample = _load("ndvi_sample")
    sample.make(tmp_path)
    out = tmp_path / "ndvi.tif"
    cmd = [
        node,
        str(NODE_DIR / "roundtrip.js"),
        "--url",
        soap_on_pool.url,
        "--proxy",
        str(soap_on_pool.pki.proxies["alice-voms"]),
        "--ca",
        str(soap_on_pool.ca_file),
        "--red",
        str(tmp_path / "red.tif"),
        "--nir",
        str(tmp_path / "nir.tif"),
        "--out",
        str(out),
        "--timeout",
        "300",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=420, cwd=NODE_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["caller_dn"] == soap_on_pool.pki.users["alice"].dn
    assert summary["accounting_group"] == "group_testvo"
    assert (summary["state"], summary["exit_code"]) == ("completed", 0), summary
    assert summary["events"][0] == "REGISTERED" and summary["wms_job_id"]
    (output,) = [o for o in summary["outputs"] if o["port"] == "output"]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == output["sha256"]
    assert sample.check(tmp_path, out) == 0
    row = soap_on_pool.gp.core.registry.get(summary["task_id"])
    assert row.owner_dn == soap_on_pool.pki.users["alice"].dn and row.owner_vo == "testvo"
