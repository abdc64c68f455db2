"""The operations dashboard on the processing service (real HTTPS, test PKI proxies):
``GET /ops/summary`` for a grid administrator (bob: /testvo/Role=VO-Admin), refused
to a plain member (alice) with 403, to a revoked credential with 401 and to a
caller without a certificate at the TLS handshake; the page and its assets; the
portal's ``fetch_summary``; and the page drawn by headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests

from gproc import errors
from gproc.services.ops import asset, fetch_summary
from tests.fixtures.soap import SoapServer
from tests.service.soap_helpers import client

TIF = b"II*\x00fake raster bytes"


def _summary_url(srv: SoapServer, query: str = "") -> str:
    return srv.server.url + "/ops/summary" + (f"?{query}" if query else "")


def test_admin_gets_the_summary_and_it_follows_registrations(soap_offline: SoapServer) -> None:
    bob = soap_offline.session("bob-voms")
    before = bob.get(_summary_url(soap_offline), timeout=30).json()
    spec = {"tool": "ndvi", "inputs": [{"name": p, "content": TIF} for p in ("red", "nir")]}
    client(soap_offline).service.RegisterTask(tasks=[spec, spec])
    resp = bob.get(_summary_url(soap_offline, "window_s=3600&bucket_s=600"), timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    doc = resp.json()
    assert doc["version"] == 1 and doc["window"]["bucket_s"] == 600
    assert len(doc["window"]["buckets"]) == 6
    added = doc["tasks"]["by_state"]["registered"] - before["tasks"]["by_state"]["registered"]
    assert added == 2
    # registration is a state change recorded at the current time: the last bucket
    assert doc["tasks"]["over_time"]["registered"][-1] >= 2
    assert len(doc["throughput"]["completed"]) == 6
    vo = {(u["vo"], u["group"]): u for u in doc["usage"]}
    assert any(v == "testvo" and u["tasks"] >= 2 for (v, _), u in vo.items())
    assert all(u["cpu_s"] is None for u in doc["usage"])  # not recorded, not invented
    # the offline server's WMS points at 127.0.0.1:1: the pool is reported unavailable
    assert doc["pool"]["available"] is False and "HTCondor" in doc["pool"]["error"]
    assert doc["tracker"] is None and doc["services"] == []


def test_member_is_refused_with_a_clear_json_error(soap_offline: SoapServer) -> None:
    resp = soap_offline.session("alice-voms").get(_summary_url(soap_offline), timeout=30)
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/json"
    err = resp.json()
    assert err["status"] == 403 and "CN=alice is not a grid administrator" in err["error"]
    assert "VO-Admin" in err["error"]
    page = soap_offline.session("alice").get(soap_offline.server.url + "/ops/", timeout=30)
    assert page.status_code == 403  # the page too (a proxy without VOMS attributes)


def test_revoked_credential_gets_401_and_no_certificate_no_handshake(
    soap_offline: SoapServer,
) -> None:
    resp = soap_offline.session("mallory").get(_summary_url(soap_offline), timeout=30)
    assert resp.status_code == 401 and "not authenticated" in resp.json()["error"]
    anonymous = requests.Session()
    anonymous.trust_env = False
    anonymous.verify = str(soap_offline.ca_file)
    with pytest.raises(requests.exceptions.ConnectionError):
        anonymous.get(_summary_url(soap_offline), timeout=30)


@pytest.mark.parametrize(
    "query", ["window_s=10", "bucket_s=abc", "window_s=86400&bucket_s=10", "bucket_s=-5"]
)
def test_bad_window_is_a_400(soap_offline: SoapServer, query: str) -> None:
    resp = soap_offline.session("bob-voms").get(_summary_url(soap_offline, query), timeout=30)
    assert resp.status_code == 400, resp.text
    assert "window_s" in resp.json()["error"] or "bucket_s" in resp.json()["error"]


def test_page_and_assets(soap_offline: SoapServer) -> None:
    bob = soap_offline.session("bob-voms")
    page = bob.get(soap_offline.server.url + "/ops/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert 'src="dashboard.js"' in page.text and "//" not in page.text.split("<body>")[0]
    js = bob.get(soap_offline.server.url + "/ops/dashboard.js", timeout=30)
    assert js.status_code == 200 and "javascript" in js.headers["Content-Type"]
    assert js.content == asset("dashboard.js")[0]  # what a portal serves itself
    assert bob.get(soap_offline.server.url + "/ops/nope.js", timeout=30).status_code == 404
    with pytest.raises(KeyError):
        asset("../handler.py")
    post = bob.post(soap_offline.server.url + "/ops/summary", data=b"", timeout=30)
    assert post.status_code == 405


def test_fetch_summary_with_a_path_or_bytes(soap_offline: SoapServer) -> None:
    pki = soap_offline.pki
    proxy = pki.proxies["bob-voms"]
    url = _summary_url(soap_offline, "window_s=3600&bucket_s=900")
    doc = fetch_summary(url, proxy, pki.ca_dir)
    assert doc["window"]["bucket_s"] == 900 and "registered" in doc["tasks"]["by_state"]
    assert fetch_summary(url, proxy.read_bytes(), pki.ca_dir)["version"] == 1
    with pytest.raises(errors.NotAuthorised, match="not a grid administrator"):
        fetch_summary(url, pki.proxies["alice-voms"], pki.ca_dir)
    with pytest.raises(errors.InvalidRequest):
        fetch_summary(url.replace("https:", "http:"), proxy, pki.ca_dir)
    with pytest.raises(errors.CredentialRefused):
        fetch_summary(url, b"not a proxy", pki.ca_dir)


# ---- the page in a real browser -----------------------------------------------------------
class _Static(BaseHTTPRequestHandler):
    """The page's files and a fixed summary document, on plain HTTP (loopback)."""

    doc: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/ops/summary":
            body, ctype = json.dumps(self.doc).encode(), "application/json"
        else:
            name = path.removeprefix("/ops/") or "index.html"
            try:
                body = resources.files("gproc.services.ops").joinpath("static", name).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                self.send_error(404)
                return
            ctype = "text/html" if name.endswith(".html") else "text/javascript"
            ctype = "text/css" if name.endswith(".css") else ctype
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def page_server(soap_offline: SoapServer) -> Iterator[str]:
    doc = soap_offline.session("bob-voms").get(_summary_url(soap_offline), timeout=30).json()
    bad = {"kind": "task-failed", "reason": "<img src=x onerror=boom()>", "count": 3}
    doc["failures"].append(bad)
    doc["pool"] = {
        "available": True, "error": None, "schedd": "sched@vm",
        "slots": {"total": 3, "claimed": 2, "idle": 1, "other": 0, "cpus": 3},
        "nodes": [{"node": "vm", "total": 3, "claimed": 2, "idle": 1, "other": 0, "cpus": 3}],
        "jobs": {"idle": 4, "running": 2, "held": 1, "other": 0, "total": 7},
        "gproc_jobs": {"idle": 1, "running": 1, "held": 0, "other": 0, "total": 2},
    }  # fmt: skip
    handler = type("Handler", (_Static,), {"doc": doc})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ops/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_page_draws_the_summary_in_chromium(page_server: str, tmp_path: Any) -> None:
    argv = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-quic", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000",
        "--dump-dom", page_server,
    ]  # fmt: skip
    # its own session: nothing Chromium signals to its process group reaches pytest
    dom = subprocess.run(
        argv, capture_output=True, text=True, timeout=90, check=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    ).stdout  # fmt: skip
    assert 'data-state="ready"' in dom, dom[:2000]
    assert dom.count('data-key="registered"') >= 2  # bar of states now + columns over time
    assert "sched@vm" in dom and "<td>vm</td>" in dom
    # a reason holding markup is shown as text, never parsed as HTML
    assert "&lt;img src=x onerror=boom()&gt;" in dom and "<img" not in dom


def test_health_probes(soap_offline: SoapServer, gateway_posix: Any) -> None:
    """Up: a live service, whatever it answers below 500 (the gateway wants a client
    certificate: the probe presents the host's); down: nothing listening, or a peer
    whose certificate the CA directory does not trust."""
    import socket

    from gproc.services.ops.health import probe_all, probe_context

    pki = soap_offline.pki
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    targets = {
        "processing": soap_offline.server.url + "/?wsdl",
        "gateway": gateway_posix.server.url + "/",
        "nothing": f"https://127.0.0.1:{closed}/",
        "bad": "ftp://127.0.0.1/",
    }
    host = probe_context(pki.ca_dir, pki.host_cert, pki.host_key)
    got = {h.name: h for h in probe_all(targets, host, 5.0)}
    assert got["processing"].up and got["processing"].status == 200 and got["processing"].ms
    assert got["gateway"].up and got["gateway"].status is not None
    assert not got["nothing"].up and "Connection" in (got["nothing"].error or "")
    assert not got["bad"].up and "not an http(s) URL" in (got["bad"].error or "")
    stranger = probe_context(Path("/nonexistent-ca"), None, None)
    untrusted = probe_all({"processing": targets["processing"]}, stranger, 5.0)
    assert not untrusted[0].up and "CERTIFICATE_VERIFY_FAILED" in (untrusted[0].error or "")
