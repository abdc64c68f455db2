"""``gproc serve`` as a process: serves the WSDL over HTTPS with client proxies on the
real pool, writes one JSON access line per call with its request id, and stops
gracefully on SIGTERM."""

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
import zeep
from lxml import etree
from zeep.transports import Transport

from gproc.security.pki import TestPKI
from tests.fixtures.soap import POLICY, REPO


def _wait_for_url(out: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving (https://\S+/) ", out.read_text())
        if m:
            return m.group(1)
        assert proc.poll() is None, "gproc serve exited early"
        time.sleep(0.2)
    raise AssertionError("gproc serve did not report its address")


def test_gproc_serve_runs_and_stops_gracefully(
    pool: object, test_pki: TestPKI, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "GPROC_STATE_DIR": str(tmp_path / "state"),
        "GPROC_HTCONDOR__CONDOR_CONFIG": str(pool.client_config),  # type: ignore[attr-defined]
        "GPROC_HTCONDOR__INSTANCE": "servetest",
    }
    out, err = tmp_path / "serve.out", tmp_path / "serve.log"
    cmd = [
        str(Path(sys.executable).with_name("gproc")),
        "serve",
        "--port",
        "0",
        "--cert",
        str(test_pki.host_cert),
        "--key",
        str(test_pki.host_key),
        "--ca-dir",
        str(test_pki.ca_dir),
        "--vomsdir",
        str(test_pki.vomsdir),
        "--policy",
        str(POLICY),
    ]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=env, cwd=REPO)
    try:
        url = _wait_for_url(out, proc)
        session = requests.Session()
        session.trust_env = False
        session.cert = str(test_pki.proxies["alice-voms"])
        session.verify = str(test_pki.ca_dir)
        client = zeep.Client(url + "?wsdl", transport=Transport(session=session))
        info = client.service.GetServiceInfo()
        assert info.caller_dn == test_pki.users["alice"].dn and info.wms_reachable
        resp = session.post(url, data=b"<broken", headers={"Content-Type": "text/xml"}, timeout=30)
        rid = resp.headers["X-Request-Id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0
    lines = [json.loads(x) for x in err.read_text().splitlines() if x.startswith("{")]
    calls = {x["request_id"]: x for x in lines if x.get("logger") == "gproc.soap.access"}
    assert calls[rid]["fault"] == "Client.MalformedRequest" and calls[rid]["status"] == 500
    assert any(
        x.get("operation") == "GetServiceInfo" and x["dn"] == info.caller_dn for x in calls.values()
    )
    assert "gproc: stopping" in err.read_text()


def test_gproc_vo_serve_answers_in_its_own_namespace_and_stops(
    test_pki: TestPKI, tmp_path: Path
) -> None:
    """``gproc vo serve`` on the same chassis: JSON access lines under its own logger,
    faults of ``urn:gproc:vo-admin:1``, graceful stop."""
    env = {
        **os.environ,
        "GPROC_STATE_DIR": str(tmp_path / "state"),
        "GPROC_VO__DATABASE_URL": f"sqlite:///{tmp_path / 'vo.db'}",
        "GPROC_VO__VO": "testvo",
        "GPROC_VO__AA_CERT": str(test_pki.voms_cert),
        "GPROC_VO__AA_KEY": str(test_pki.voms_key),
        "GPROC_VO__ADMIN_PORT": "0",
        "GPROC_VO__VOMS_PORT": "0",
    }
    out, err = tmp_path / "vo.out", tmp_path / "vo.log"
    cmd = [
        str(Path(sys.executable).with_name("gproc")),
        *("vo", "serve", "--cert", str(test_pki.host_cert), "--key", str(test_pki.host_key)),
        *("--ca-dir", str(test_pki.ca_dir), "--vomsdir", str(test_pki.vomsdir)),
    ]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"admin (https://\S+/)\?wsdl", out.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.2)
        session = requests.Session()
        session.trust_env = False
        session.cert = str(test_pki.proxies["alice-voms"])
        session.verify = str(test_pki.ca_dir)
        resp = session.post(m.group(1), data=b"<broken", headers={"Content-Type": "text/xml"})
        detail = etree.fromstring(resp.content).find(".//detail")[0]  # type: ignore[index]
        assert etree.QName(detail).text == "{urn:gproc:vo-admin:1}MalformedRequestFault"
        rid = resp.headers["X-Request-Id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, err.read_text()[-2000:]
    lines = [json.loads(x) for x in err.read_text().splitlines() if x.startswith("{")]
    calls = {x["request_id"]: x for x in lines if x.get("logger") == "gproc.vo_admin.access"}
    assert calls[rid]["fault"] == "Client.MalformedRequest" and calls[rid]["status"] == 500
    assert "gproc vo: stopping" in err.read_text()
