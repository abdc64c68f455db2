"""``GET /metrics`` on every gproc front, on real HTTPS servers with test-PKI proxies:
the scrape parses with prometheus_client's own parser, the request figures move by
exactly the requests made (per service, operation, status and fault code), task and
workflow state counts come from the registry at scrape time; a plain member gets
403, a grid administrator (bob) or a configured scraper DN reads them."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.service import Catalogue
from gproc.security.attribute_authority import AttributeAuthority
from gproc.security.pki import TestPKI
from gproc.security.tls import GridServer, TLSConfig
from gproc.services.catalogue.app import make_catalogue_server, make_stac_server
from gproc.services.chassis.metrics import MetricsEndpoint, Operators
from gproc.services.voms_server import VomsServer
from gproc.services.workflow.app import build_context, make_workflow_server
from gproc.settings import ServiceSettings, Settings
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.wrappers.htcondor.dag import HTCondorDagRunner
from tests.fixtures.gateway import GatewayServer, posix_namespace
from tests.fixtures.ogc import OgcServer
from tests.fixtures.soap import POLICY, SoapServer
from tests.fixtures.vo import VoStack
from tests.service.soap_helpers import client, envelope, fault_of, post

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TIF = b"II*\x00fake raster bytes"


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(session: requests.Session, base: str) -> Samples:
    resp = session.get(base + "/metrics", timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return parse(resp.text)


def settled(session: requests.Session, base: str, done: Any) -> Samples:
    """Scrape until ``done(samples)``: a request is counted when the server has closed
    its answer, which may be just after the client read it (bounded wait)."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(session, base)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def _session(pki: TestPKI, ca_file: Path, who: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.cert = str(pki.proxies[who])
    s.verify = str(ca_file)
    return s


def requests_of(samples: Samples, service: str, operation: str) -> float:
    """All answers of one operation, whatever their status and fault."""
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "gproc_requests_total"
        and ("service", service) in labels
        and ("operation", operation) in labels
    )


# ---- the processing service -------------------------------------------------------------
def test_processing_counts_operations_faults_and_tasks(soap_offline: SoapServer) -> None:
    bob, base = soap_offline.session("bob-voms"), soap_offline.server.url
    before = scrape(bob, base)
    alice = client(soap_offline)
    alice.service.GetServiceInfo()
    alice.service.GetServiceInfo()
    spec = {"tool": "ndvi", "inputs": [{"name": p, "content": TIF} for p in ("red", "nir")]}
    alice.service.RegisterTask(tasks=[spec])
    code, _ = fault_of(post(soap_offline, envelope("NoSuchOperation")))
    ok = {"service": "processing", "operation": "GetServiceInfo", "status": "200", "fault": ""}
    bad = {"service": "processing", "operation": "-", "status": "500", "fault": code}
    total = "gproc_requests_total"

    def counted(s: Samples) -> bool:
        return (
            value(s, total, **bad) > value(before, total, **bad)
            and value(s, total, **ok) >= value(before, total, **ok) + 2
        )

    after = settled(bob, base, counted)
    assert value(after, total, **ok) - value(before, total, **ok) == 2
    hist = {"service": "processing", "operation": "GetServiceInfo"}
    count = "gproc_request_duration_seconds_count"
    assert value(after, count, **hist) - value(before, count, **hist) == 2
    assert value(after, "gproc_request_duration_seconds_bucket", le="+Inf", **hist) >= 2
    assert value(after, total, **bad) - value(before, total, **bad) == 1
    reg = ("gproc_tasks", frozenset({("state", "registered")}))
    assert after[reg] - before[reg] == 1
    assert value(after, "gproc_registry_up") == 1
    # the scrape itself is counted (operation "metrics")
    assert (
        requests_of(after, "processing", "metrics")
        >= requests_of(before, "processing", "metrics") + 1
    )


def test_member_and_unknown_callers_may_not_scrape(soap_offline: SoapServer) -> None:
    resp = soap_offline.session("alice-voms").get(soap_offline.server.url + "/metrics", timeout=30)
    assert resp.status_code == 403
    assert "may not read metrics" in resp.json()["error"] and "scrapers" in resp.json()["error"]
    revoked = soap_offline.session("mallory").get(soap_offline.server.url + "/metrics", timeout=30)
    assert revoked.status_code == 401


def test_scraper_dns_and_admins(test_pki: TestPKI) -> None:
    """The access rule itself on validated identities of the test PKI."""
    from gproc.security.chain import Validator
    from gproc.security.truststore import TrustStore
    from gproc.security.voms import VomsTrust

    validator = Validator(TrustStore(test_pki.ca_dir), VomsTrust(test_pki.vomsdir))

    def ident(who: str) -> Any:
        pem = test_pki.proxies[who].read_bytes()
        return validator.validate(tuple(x509.load_pem_x509_certificates(pem)))

    alice, bob = ident("alice-voms"), ident("bob-voms")
    plain = Operators.of("VO-Admin")
    assert plain.may_scrape(bob) and plain.is_admin(bob)
    assert not plain.may_scrape(alice) and not plain.may_scrape(None)
    scraper = Operators.of("VO-Admin", scrapers=[alice.subject_grid.replace("CN=", "cn=")])
    assert scraper.may_scrape(alice) and not scraper.is_admin(alice)  # metrics, not the dashboard
    other_role = Operators.of("Operator")
    assert not other_role.may_scrape(bob)
    assert Operators.of("Operator", admins=[bob.subject_grid]).is_admin(bob)


# ---- the other fronts -------------------------------------------------------------------
def _grows(session_admin: requests.Session, base: str, service: str, op: str, call: Any) -> Samples:
    before = scrape(session_admin, base)
    call()
    after = settled(
        session_admin,
        base,
        lambda s: requests_of(s, service, op) > requests_of(before, service, op),
    )
    assert requests_of(after, service, op) == requests_of(before, service, op) + 1, service
    return after


def test_ogc(ogc_offline: OgcServer) -> None:
    base = ogc_offline.server.url
    after = _grows(
        ogc_offline.session("bob-voms"), base, "ogc", "landing",
        lambda: ogc_offline.session().get(base + "/", timeout=30).raise_for_status(),
    )  # fmt: skip
    assert ("gproc_tasks", frozenset({("state", "registered")})) in after
    assert ogc_offline.session().get(base + "/metrics", timeout=30).status_code == 403


def test_vo_admin(vo_stack: VoStack) -> None:
    base = vo_stack.admin_server.url
    _grows(
        vo_stack.session("bob-voms"), base, "vo_admin", "-",
        lambda: vo_stack.session("alice-voms").get(base + "/?wsdl", timeout=30).raise_for_status(),
    )  # fmt: skip
    assert vo_stack.session("alice-voms").get(base + "/metrics", timeout=30).status_code == 403


def test_gateway(gateway_posix: GatewayServer) -> None:
    base = gateway_posix.server.url
    _grows(
        gateway_posix.session("bob-voms"), base, "gateway", "-",
        lambda: gateway_posix.session().get(base + "/public/", timeout=30),
    )  # fmt: skip
    assert gateway_posix.session().get(base + "/metrics", timeout=30).status_code == 403


@dataclass
class Fronts:
    workflow: GridServer
    catalogue: GridServer
    stac: GridServer
    ca_file: Path


@pytest.fixture(scope="module")
def fronts(test_pki: TestPKI, pki_validator: Any, tmp_path_factory: Any) -> Iterator[Fronts]:
    """The workflow, catalogue and STAC fronts without a pool (the metrics need none)."""
    root = tmp_path_factory.mktemp("metrics-fronts")
    tls = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    settings = Settings(state_dir=root, service=ServiceSettings(policy=POLICY))
    gp = build_context(settings, runner=HTCondorDagRunner("offline", collector="127.0.0.1:1"))
    workflow = make_workflow_server(gp, pki_validator, tls, host="127.0.0.1", port=0).start()
    engine = SqliteEngine(f"sqlite:///{root / 'cat.db'}")
    engine.create_schema()
    cat = Catalogue(engine, StorageGateway(Namespace.from_dict(posix_namespace(root))), root / "q")
    gaz = Gazetteer(engine)
    catalogue = make_catalogue_server(cat, gaz, pki_validator, tls, port=0).start()
    stac = make_stac_server(cat, gaz, pki_validator, tls, port=0).start()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    try:
        yield Fronts(workflow, catalogue, stac, ca_file)
    finally:
        for srv in (workflow, catalogue, stac):
            srv.stop()
        gp.core.store.engine.dispose()


@pytest.mark.parametrize(
    ("front", "service", "path"),
    [
        ("workflow", "workflow", "/?wsdl"),
        ("catalogue", "catalogue", "/?wsdl"),
        ("stac", "stac", "/"),
    ],
)
def test_workflow_catalogue_stac(
    fronts: Fronts, test_pki: TestPKI, front: str, service: str, path: str
) -> None:
    base = getattr(fronts, front).url
    alice = _session(test_pki, fronts.ca_file, "alice-voms")
    after = _grows(
        _session(test_pki, fronts.ca_file, "bob-voms"), base, service, "-",
        lambda: alice.get(base + path, timeout=30).raise_for_status(),
    )  # fmt: skip
    if service == "workflow":
        assert value(after, "gproc_registry_up") == 1
        assert ("gproc_workflows", frozenset({("state", "running")})) in after
    assert alice.get(base + "/metrics", timeout=30).status_code == 403


# ---- the VOMS endpoint (raw TLS, not WSGI) ----------------------------------------------
def _raw(port: int, pki: TestPKI, ca_file: Path, who: str, request: bytes) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki.proxies[who]))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        ctx.wrap_socket(raw) as conn,
    ):
        conn.sendall(request)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out


def test_voms_endpoint(vo_stack: VoStack) -> None:
    pki = vo_stack.pki
    aa = AttributeAuthority(vo_stack.store, pki.voms, host="vm", port=0)
    tls = TLSConfig(pki.voms_cert, pki.voms_key, pki.ca_dir)
    srv = VomsServer(
        aa, vo_stack.validator, tls, "metricsvo", port=0,
        metrics=MetricsEndpoint(Operators.of("VO-Admin")),
    ).start()  # fmt: skip
    try:

        def metrics(who: str) -> bytes:
            return _raw(srv.port, pki, vo_stack.ca_file, who, b"GET /metrics HTTP/1.0\r\n\r\n")

        def samples() -> Samples:
            head, _, body = metrics("bob-voms").partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            return parse(body.decode())

        before = samples()
        ac = _raw(srv.port, pki, vo_stack.ca_file, "alice-voms",
                  b"0GET /generate-ac?fqans=/metricsvo&lifetime=60 HTTP/1.0\n\n")  # fmt: skip
        assert b"<voms>" in ac
        after = samples()
        assert requests_of(after, "voms", "rest") == requests_of(before, "voms", "rest") + 1
        assert metrics("alice-voms").startswith(b"HTTP/1.1 403")
    finally:
        srv.stop()
