"""``gproc ogc serve`` as a process: serves the landing page and processes over HTTPS
with client proxies, logs JSON access lines with request ids, stops on SIGTERM. Its
WMS points at a pool that is not there: no job is executed here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from gproc.security.pki import TestPKI
from tests.fixtures.soap import POLICY, REPO


def _url(out: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving (https://\S+)/ ", out.read_text())
        if m:
            return m.group(1)
        assert proc.poll() is None, "gproc ogc serve exited early"
        time.sleep(0.2)
    raise AssertionError("gproc ogc serve did not report its address")


def test_gproc_ogc_serve(test_pki: TestPKI, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GPROC_STATE_DIR": str(tmp_path / "state"),
        "GPROC_HTCONDOR__COLLECTOR": "127.0.0.1:1",
        "GPROC_SERVICE__CERT": str(test_pki.host_cert),
        "GPROC_SERVICE__KEY": str(test_pki.host_key),
        "GPROC_SERVICE__CA_DIR": str(test_pki.ca_dir),
        "GPROC_SERVICE__VOMSDIR": str(test_pki.vomsdir),
        "GPROC_SERVICE__POLICY": str(POLICY),
    }
    out, err = tmp_path / "serve.out", tmp_path / "serve.log"
    cmd = [str(Path(sys.executable).with_name("gproc")), "ogc", "serve", "--port", "0"]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([*cmd, "--no-tracker"], stdout=o, stderr=e, env=env, cwd=REPO)
    try:
        url = _url(out, proc)
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = str(test_pki.proxies["alice-voms"]), str(test_pki.ca_dir)
        assert "ndvi" in {
            p["id"] for p in s.get(url + "/processes", timeout=30).json()["processes"]
        }
        missing = s.get(url + "/processes/nope", timeout=30)
        assert missing.status_code == 404
        rid = missing.headers["X-Request-Id"]
        caps = s.get(url + "/wps?service=WPS&request=GetCapabilities", timeout=30)
        assert caps.status_code == 200 and b"wps/2.0" in caps.content  # WPS on the same server
        wps_rid = caps.headers["X-Request-Id"]
        odd = s.get(url + "/wps?service=WPS&version=2.0.0&request=Odd<script>", timeout=30)
        odd_rid = odd.headers["X-Request-Id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0
    lines = [json.loads(x) for x in err.read_text().splitlines() if x.startswith("{")]
    calls = {x["request_id"]: x for x in lines if x.get("logger") == "gproc.ogc.access"}
    assert calls[rid]["status"] == 404 and calls[rid]["fault"] == "Client.NoSuchProcess"
    assert calls[rid]["operation"] == "process"
    assert calls[rid]["dn"] == test_pki.users["alice"].dn
    assert calls[wps_rid]["operation"] == "wps2.GetCapabilities"
    assert calls[odd_rid]["operation"] == "wps2.unknown"  # never a user string
    assert calls[odd_rid]["fault"] == "Client.OperationNotSupported"
