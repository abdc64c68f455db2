"""HTTPS with client certificates and proxies, plus the trusted reverse-proxy header.

Real servers (cheroot + pyOpenSSL) on 127.0.0.1, real proxies from the test PKI, the
real chain validator. One TLS server and one plain-HTTP "behind a proxy" server per
module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from gproc.security.chain import Validator
from gproc.security.pki import TestPKI, make_ca, make_proxy, make_user_cert
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust

TIMEOUT = 10


class Recorder:
    """WSGI app that echoes what it was told about the caller."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ident = environ["gproc.identity"]
        seen = {
            "dn": ident.subject_grid if ident else None,
            "fqans": [str(f) for f in ident.fqans] if ident else [],
            "proxy_type": ident.proxy_type.value if ident else None,
            "source": environ["gproc.identity_source"],
            "header_visible": "HTTP_X_SSL_CLIENT_CHAIN" in environ,
            "client_port": environ["REMOTE_PORT"],
        }
        with self.lock:
            self.calls.append(seen)
        body = json.dumps(seen).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


@pytest.fixture(scope="module")
def validator(test_pki: TestPKI) -> Validator:
    return Validator(TrustStore(test_pki.ca_dir), VomsTrust(test_pki.vomsdir))


@pytest.fixture(scope="module")
def app() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def tls_server(test_pki: TestPKI, validator: Validator, app: Recorder) -> Iterator[GridServer]:
    cfg = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    # The trusted proxy is some other host: headers from 127.0.0.1 must be ignored.
    server = make_server(app, "127.0.0.1", 0, cfg, validator, trusted_proxies=["10.9.8.7"])
    with server:
        yield server


@pytest.fixture(scope="module")
def front_server(validator: Validator, app: Recorder) -> Iterator[GridServer]:
    server = make_server(app, "127.0.0.1", 0, None, validator, trusted_proxies=["127.0.0.1/32"])
    with server:
        yield server


@pytest.fixture(scope="module")
def optional_server(test_pki: TestPKI, validator: Validator, app: Recorder) -> Iterator[GridServer]:
    """TLS where the certificate is optional: a TLS-speaking front proxy may connect
    without one and forward the client chain instead."""
    cfg = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir, client_cert="optional")
    with make_server(app, "127.0.0.1", 0, cfg, validator, trusted_proxies=["127.0.0.1"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def ca_file(test_pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    path.write_bytes(test_pki.ca.cert_pem())
    return str(path)


@pytest.fixture(scope="module")
def rogue_proxy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proxy whose user certificate comes from a CA the server does not trust."""
    ca = make_ca("Rogue CA", "rogue")
    user = make_user_cert(ca, "alice")  # same user name, other CA
    return make_proxy(user).write_proxy(tmp_path_factory.mktemp("rogue") / "proxy.pem")


def chain_header(proxy_file: Path) -> str:
    """URL-encoded PEM certificates of a proxy file (what the front proxy forwards)."""
    text = proxy_file.read_text()
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", text, re.S)
    return quote("".join(certs))


def get(server: GridServer, ca_file: str, cert: Any = None, **kw: Any) -> requests.Response:
    return requests.get(server.url + "/whoami", cert=cert, verify=ca_file, timeout=TIMEOUT, **kw)


def test_voms_proxy_identity_reaches_app(
    tls_server: GridServer, ca_file: str, test_pki: TestPKI
) -> None:
    r = get(tls_server, ca_file, str(test_pki.proxies["alice-voms"]))
    assert r.status_code == 200
    seen = r.json()
    assert seen["dn"] == test_pki.users["alice"].dn
    assert seen["fqans"] == ["/testvo", "/testvo/grid"]
    assert seen["proxy_type"] == "impersonation"
    assert seen["source"] == "tls"


def test_other_user_and_role(tls_server: GridServer, ca_file: str, test_pki: TestPKI) -> None:
    seen = get(tls_server, ca_file, str(test_pki.proxies["bob-voms"])).json()
    assert seen["dn"] == test_pki.users["bob"].dn
    assert seen["fqans"] == ["/testvo/Role=VO-Admin", "/testvo"]


def test_limited_proxy_is_identified_as_limited(
    tls_server: GridServer, ca_file: str, test_pki: TestPKI
) -> None:
    seen = get(tls_server, ca_file, str(test_pki.proxies["alice-limited"])).json()
    assert (seen["dn"], seen["proxy_type"]) == (test_pki.users["alice"].dn, "limited")


def test_plain_user_certificate(tls_server: GridServer, ca_file: str, test_pki: TestPKI) -> None:
    cert = (str(test_pki.user_cert["alice"]), str(test_pki.user_key["alice"]))
    seen = get(tls_server, ca_file, cert).json()
    assert (seen["dn"], seen["proxy_type"], seen["fqans"]) == (
        test_pki.users["alice"].dn,
        "none",
        [],
    )


def test_keep_alive_requests_share_connection(
    tls_server: GridServer, ca_file: str, test_pki: TestPKI
) -> None:
    with requests.Session() as s:
        s.trust_env = False  # else REQUESTS_CA_BUNDLE overrides the session's CA file
        s.cert, s.verify = str(test_pki.proxies["alice-voms"]), ca_file
        first = s.get(tls_server.url + "/a", timeout=TIMEOUT).json()
        second = s.get(tls_server.url + "/b", timeout=TIMEOUT).json()
    assert first == second  # same identity and same client port: one TLS connection
    assert first["dn"] == test_pki.users["alice"].dn


def test_no_client_certificate_is_refused(
    tls_server: GridServer, ca_file: str, app: Recorder
) -> None:
    before = len(app.calls)
    with pytest.raises(requests.exceptions.RequestException):
        get(tls_server, ca_file)
    assert len(app.calls) == before


def test_untrusted_ca_is_refused(
    tls_server: GridServer, ca_file: str, rogue_proxy: Path, app: Recorder
) -> None:
    before = len(app.calls)
    with pytest.raises(requests.exceptions.RequestException):
        get(tls_server, ca_file, str(rogue_proxy))
    assert len(app.calls) == before


def test_revoked_user_is_refused_by_validator(
    tls_server: GridServer, ca_file: str, test_pki: TestPKI, app: Recorder
) -> None:
    before = len(app.calls)
    r = get(tls_server, ca_file, str(test_pki.proxies["mallory"]))
    assert r.status_code == 403
    assert "revoked" in r.text
    assert len(app.calls) == before


def test_header_from_untrusted_address_is_ignored(
    tls_server: GridServer, ca_file: str, test_pki: TestPKI
) -> None:
    forged = {"X-SSL-Client-Chain": chain_header(test_pki.proxies["bob-voms"])}
    seen = get(tls_server, ca_file, str(test_pki.proxies["alice-voms"]), headers=forged).json()
    assert seen["dn"] == test_pki.users["alice"].dn
    assert seen["source"] == "tls"
    assert seen["header_visible"] is False


def test_header_from_trusted_proxy_gives_identity(
    front_server: GridServer, test_pki: TestPKI
) -> None:
    hdr = {"X-SSL-Client-Chain": chain_header(test_pki.proxies["bob-voms"])}
    r = requests.get(front_server.url + "/whoami", headers=hdr, timeout=TIMEOUT)
    assert r.status_code == 200
    seen = r.json()
    assert (seen["dn"], seen["source"]) == (test_pki.users["bob"].dn, "proxy-header")
    assert seen["fqans"] == ["/testvo/Role=VO-Admin", "/testvo"]
    assert seen["header_visible"] is False


def test_trusted_proxy_without_header_is_refused(front_server: GridServer) -> None:
    r = requests.get(front_server.url + "/whoami", timeout=TIMEOUT)
    assert r.status_code == 403
    assert "no client certificate" in r.text


@pytest.mark.parametrize("case", ["rogue", "garbage", "revoked"])
def test_bad_forwarded_chain_is_refused(
    front_server: GridServer, rogue_proxy: Path, test_pki: TestPKI, app: Recorder, case: str
) -> None:
    value = {
        "rogue": lambda: chain_header(rogue_proxy),
        "garbage": lambda: quote("not a pem"),
        "revoked": lambda: chain_header(test_pki.proxies["mallory"]),
    }[case]()
    before = len(app.calls)
    r = requests.get(
        front_server.url + "/whoami", headers={"X-SSL-Client-Chain": value}, timeout=TIMEOUT
    )
    assert r.status_code == 403
    assert len(app.calls) == before


def test_forwarded_private_key_is_not_needed(front_server: GridServer, test_pki: TestPKI) -> None:
    """The forwarded header carries certificates only; a key inside is simply ignored."""
    key = (
        test_pki.users["alice"]
        .key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    value = chain_header(test_pki.proxies["alice-voms"]) + quote(key)
    r = requests.get(
        front_server.url + "/whoami", headers={"X-SSL-Client-Chain": value}, timeout=TIMEOUT
    )
    assert r.json()["dn"] == test_pki.users["alice"].dn


@pytest.fixture(scope="module")
def fake_voms_proxy(test_pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proxy made by the real voms-proxy-fake, with long-form FQANs like a VOMS server."""
    out = tmp_path_factory.mktemp("vpf") / "proxy.pem"
    cmd = [
        "voms-proxy-fake",
        "-cert",
        str(test_pki.user_cert["alice"]),
        "-key",
        str(test_pki.user_key["alice"]),
        "-hostcert",
        str(test_pki.voms_cert),
        "-hostkey",
        str(test_pki.voms_key),
        "-certdir",
        str(test_pki.ca_dir),
        "-voms",
        "testvo",
        "-uri",
        test_pki.voms_uri,
        "-fqan",
        "/testvo/Role=NULL/Capability=NULL",
        "-fqan",
        "/testvo/grid/Role=NULL/Capability=NULL",
        "-hours",
        "2",
        "-newformat",
        "-rfc",
        "-out",
        str(out),
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **test_pki.env(), "RANDFILE": str(out) + ".rnd"},
    )
    assert done.returncode == 0, done.stderr
    return out


def test_curl_with_voms_proxy_fake_proxy(
    tls_server: GridServer, ca_file: str, fake_voms_proxy: Path, test_pki: TestPKI
) -> None:
    """Grid tools' proxy file + a non-Python client (curl sends the whole proxy chain)."""
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            str(TIMEOUT),
            "--cacert",
            ca_file,
            "--cert",
            str(fake_voms_proxy),
            f"https://localhost:{tls_server.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["dn"] == test_pki.users["alice"].dn
    assert seen["fqans"] == ["/testvo", "/testvo/grid"]


def test_optional_client_certificate(
    optional_server: GridServer, ca_file: str, test_pki: TestPKI, rogue_proxy: Path
) -> None:
    r = get(optional_server, ca_file)
    assert (r.status_code, "no client certificate" in r.text) == (403, True)
    seen = get(optional_server, ca_file, str(test_pki.proxies["bob-voms"])).json()
    assert (seen["dn"], seen["source"]) == (test_pki.users["bob"].dn, "tls")
    hdr = {"X-SSL-Client-Chain": chain_header(test_pki.proxies["alice-voms"])}
    seen = get(optional_server, ca_file, headers=hdr).json()
    assert (seen["dn"], seen["source"]) == (test_pki.users["alice"].dn, "proxy-header")
    with pytest.raises(requests.exceptions.RequestException):
        get(optional_server, ca_file, str(rogue_proxy))  # a presented bad chain still fails
