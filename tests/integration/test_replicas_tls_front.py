"""Two replicas behind a TLS-terminating HAProxy that forwards the client chain in a
header (the replicas serve plain HTTP to the front only and trust it by address,
``[service] trusted_proxies``), on one PostgreSQL registry.

What HAProxy 2.6 does here: it forwards the client's chain as base64 DER
(``ssl_c_der``, ``ssl_c_chain_der``; it has no PEM converter, so the header is read
by ``chain_from_header``'s DER form), and a caller with a plain certificate is seen
by every replica as themselves; a chain header the client sends itself is dropped by
the front; a caller without a certificate is refused. But HAProxy refuses RFC 3820
proxy certificates at the handshake ("certificate verify failed", alert 46) even
with ``verify optional crt-ignore-err all ca-ignore-err all``: grid proxies need
TLS passthrough (test_replicas_haproxy.py) or a front that accepts proxies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from zeep.transports import Transport

from gproc.security.pki import TestPKI
from gproc.security.wsgi_auth import DEFAULT_CHAIN_HEADER
from gproc.services.soap.app import build_context, build_validator, make_soap_server
from gproc.settings import ServiceSettings, Settings
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.haproxy import free_port, terminating_config
from tests.fixtures.soap import POLICY


@pytest.fixture
def front(
    test_pki: TestPKI,
    pg_database: Callable[[], str],
    haproxy_factory: Callable[[str], int],
    tmp_path: Path,
) -> Iterator[tuple[str, Path, list[Any]]]:
    url = pg_database()
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    servers, contexts = [], []
    for i in range(2):
        settings = Settings(
            state_dir=tmp_path / "state",
            service=ServiceSettings(
                host="127.0.0.1", port=0, policy=POLICY, trusted_proxies=["127.0.0.1"]
            ),
        )
        settings.database.url = url
        settings.tracker.replica_name = f"r{i}"
        wms = HTCondorWMS(
            instance=f"tf{uuid.uuid4().hex[:8]}",
            collector="127.0.0.1:1",
            sandbox_root=tmp_path / "sandboxes",
        )
        gp = build_context(settings, validator, wms=wms)
        contexts.append(gp)
        servers.append(make_soap_server(gp, validator, None).start())  # plain HTTP
    pem = tmp_path / "host.pem"
    pem.write_bytes(test_pki.host_cert.read_bytes() + test_pki.host_key.read_bytes())
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    port = free_port()
    config = terminating_config(
        port, [s.port for s in servers], cert_pem=pem, ca_file=ca_file, header=DEFAULT_CHAIN_HEADER
    )
    haproxy_factory(config)
    try:
        yield f"https://127.0.0.1:{port}/", ca_file, servers
    finally:
        for s in servers:
            s.stop()
        for gp in contexts:
            gp.core.registry.close()


def _session(ca_file: Path, cert: tuple[Path, Path] | Path | None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(ca_file)
    if isinstance(cert, tuple):
        s.cert = (str(cert[0]), str(cert[1]))
    elif cert is not None:
        s.cert = str(cert)
    return s


def _service(url: str, session: requests.Session) -> Any:
    client = zeep.Client(url + "?wsdl", transport=Transport(session=session, timeout=30))
    return client.create_service(next(iter(client.wsdl.bindings)), url)


def _alice(pki: TestPKI) -> tuple[Path, Path]:
    return pki.user_cert["alice"], pki.user_key["alice"]


def test_a_tls_terminating_front_forwards_the_client_chain(
    front: tuple[str, Path, list[Any]], test_pki: TestPKI
) -> None:
    url, ca_file, _servers = front
    svc = _service(url, _session(ca_file, _alice(test_pki)))
    seen = [svc.GetServiceInfo() for _ in range(4)]  # round robin: both replicas
    assert {i.caller_dn for i in seen} == {test_pki.users["alice"].dn}


def test_the_front_drops_a_chain_header_the_client_sends(
    front: tuple[str, Path, list[Any]], test_pki: TestPKI
) -> None:
    url, ca_file, _servers = front
    forged = test_pki.proxies["bob-voms"].read_text()
    session = _session(ca_file, _alice(test_pki))
    session.headers[DEFAULT_CHAIN_HEADER] = requests.utils.quote(forged)
    info = _service(url, session).GetServiceInfo()
    assert info.caller_dn == test_pki.users["alice"].dn


def test_a_caller_without_a_certificate_is_refused_through_the_front(
    front: tuple[str, Path, list[Any]],
) -> None:
    url, ca_file, _servers = front
    with pytest.raises(zeep.exceptions.Fault) as info:
        _service(url, _session(ca_file, None)).GetServiceInfo()
    assert "NotAuthenticated" in str(info.value.code)


def test_haproxy_refuses_a_proxy_certificate_at_the_handshake(
    front: tuple[str, Path, list[Any]], test_pki: TestPKI
) -> None:
    """The limit found: grid proxies cannot go through a TLS-terminating HAProxy."""
    url, ca_file, _servers = front
    session = _session(ca_file, test_pki.proxies["alice-voms"])
    with pytest.raises(requests.exceptions.SSLError, match="certificate unknown"):
        session.get(url + "?wsdl", timeout=30)
