"""Every SOAP service on the chassis answers only faults it declares, in its own
namespace: hostile bodies, spyne's own validation errors, refused credentials. Faults
carry their detail (code, request id, batch index, task, why an AC was ignored).
Real TLS servers: the processing service and the VO admin service."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import spyne.const
from lxml import etree

from gproc.security.pki import make_proxy, make_voms_ac
from gproc.services.vo_admin.app import MAX_MESSAGE_BYTES
from tests.fixtures.soap import SoapServer
from tests.fixtures.vo import VoStack
from tests.service.soap_helpers import SOAP_ENV, fault_of

WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XML = {"Content-Type": "text/xml; charset=utf-8"}
XSD = "http://www.w3.org/2001/XMLSchema"


@dataclass
class Front:
    """One SOAP service as a client sees it."""

    ns: str
    url: str
    session: Callable[[str], requests.Session]
    ok_op: str  # an operation without arguments
    bad_type: str  # an operation body whose value fails its declared type
    max_bytes: int


@pytest.fixture(scope="module", params=["processing", "vo-admin"])
def front(request: pytest.FixtureRequest) -> Front:
    if request.param == "processing":
        srv: SoapServer = request.getfixturevalue("soap_offline")
        return Front(
            "urn:gproc:processing:1",
            srv.url,
            srv.session,
            "ListTools",
            f"<g:GetTaskLog><g:task_id>{'0' * 32}</g:task_id><g:max_bytes>many</g:max_bytes>"
            "</g:GetTaskLog>",
            srv.gp.settings.service.max_message_bytes,
        )
    stack: VoStack = request.getfixturevalue("vo_stack")
    return Front(
        "urn:gproc:vo-admin:1",
        stack.admin_server.url + "/",
        stack.session,
        "ListVOs",
        "<g:GetAuditLog><g:vo>x</g:vo><g:limit>many</g:limit></g:GetAuditLog>",
        MAX_MESSAGE_BYTES,
    )


def _env(front: Front, body: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>{prolog}<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:g="{front.ns}">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


HOSTILE: dict[str, tuple[Callable[[Front], bytes], str]] = {
    "not-xml": (lambda f: b"<s:Envelope><unclosed>", "Client.MalformedRequest"),
    "not-an-envelope": (lambda f: b"<hello/>", "Client.MalformedRequest"),
    "doctype": (
        lambda f: _env(f, f"<g:{f.ok_op}/>", '<!DOCTYPE x [<!ENTITY a "b">]>'),
        "Client.MalformedRequest",
    ),
    "xxe": (
        lambda f: _env(f, f"<g:{f.ok_op}>&x;</g:{f.ok_op}>", _XXE),
        "Client.MalformedRequest",
    ),
    "too-deep": (
        lambda f: _env(f, f"<g:{f.ok_op}>{'<g:x>' * 60}{'</g:x>' * 60}</g:{f.ok_op}>"),
        "Client.LimitExceeded",
    ),
    "deeper-than-the-parser": (
        lambda f: _env(f, f"<g:{f.ok_op}>{'<g:x>' * 300}{'</g:x>' * 300}</g:{f.ok_op}>"),
        "Client.LimitExceeded",
    ),
    "unknown-operation": (lambda f: _env(f, "<g:FormatDisk/>"), "Client.UnknownOperation"),
    "foreign-namespace": (
        lambda f: _env(f, f'<o:{f.ok_op} xmlns:o="urn:other"/>'),
        "Client.UnknownOperation",
    ),
    "wrong-type": (lambda f: _env(f, f.bad_type), "Client.ValidationError"),
}
_XXE = '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'


def _declared(front: Front, who: str = "alice-voms") -> tuple[set[str], set[str]]:
    """(fault names of the WSDL's operations, element names of its schema for ns)."""
    root = etree.fromstring(front.session(who).get(front.url + "?wsdl", timeout=30).content)
    faults = {f.get("name") for f in root.iter(f"{{{WSDL}}}fault")}
    elements = {
        e.get("name")
        for s in root.iter(f"{{{XSD}}}schema")
        if s.get("targetNamespace") == front.ns
        for e in s.findall(f"{{{XSD}}}element")
    }
    return faults, elements  # type: ignore[return-value]


def _assert_own_declared_fault(front: Front, resp: requests.Response, code: str) -> dict[str, str]:
    assert resp.status_code == 500, resp.text[:300]
    got, detail = fault_of(resp)
    assert got == code, (got, detail)
    element = etree.fromstring(resp.content).find(f".//{{{SOAP_ENV}}}Fault/detail")[0]  # type: ignore[index]
    qname = etree.QName(element)
    assert qname.namespace == front.ns, qname
    faults, elements = _declared(front)
    assert qname.localname in faults and qname.localname in elements, qname.localname
    assert detail["code"] == code
    assert detail["request_id"] == resp.headers["X-Request-Id"]
    return detail


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_bodies_get_the_services_own_declared_faults(front: Front, kind: str) -> None:
    make, code = HOSTILE[kind]
    resp = front.session("alice-voms").post(front.url, data=make(front), headers=_XML, timeout=30)
    detail = _assert_own_declared_fault(front, resp, code)
    if code == "Client.LimitExceeded":
        assert detail["field"] == "depth"  # also beyond libxml2's own 256 levels


def test_not_authenticated_is_the_services_own_declared_fault(front: Front) -> None:
    resp = front.session("mallory").post(  # a revoked certificate
        front.url, data=_env(front, f"<g:{front.ok_op}/>"), headers=_XML
    )
    detail = _assert_own_declared_fault(front, resp, "Client.NotAuthenticated")
    assert "revoked" in detail["message"]


def test_too_big_a_body_is_refused_by_http(front: Front) -> None:
    body = _env(front, f"<g:{front.ok_op}>{'x' * (front.max_bytes + 10)}</g:{front.ok_op}>")
    resp = front.session("alice-voms").post(front.url, data=body, headers=_XML, timeout=60)
    assert resp.status_code == 413


# ---- the processing service's detail: batch index, task, ignored ACs ----------------
def _post(srv: SoapServer, body: str, who: str = "alice-voms") -> requests.Response:
    ns = "urn:gproc:processing:1"
    env = f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:g="{ns}"><s:Body>{body}</s:Body></s:Envelope>'
    return srv.session(who).post(srv.url, data=env.encode(), headers=_XML, timeout=30)


def _spec(red: str = "<g:content>SUkqAGZha2U=</g:content>") -> str:
    return (
        f"<g:tasks><g:tool>ndvi</g:tool><g:inputs><g:name>red</g:name>{red}</g:inputs>"
        "<g:inputs><g:name>nir</g:name><g:content>SUkqAGZha2U=</g:content></g:inputs>"
        "</g:tasks>"
    )


def test_batch_faults_name_the_index_and_task(soap_offline: SoapServer) -> None:
    resp = _post(
        soap_offline, f"<g:RegisterTask>{_spec()}{_spec()}{_spec(red='')}</g:RegisterTask>"
    )
    code, detail = fault_of(resp)  # the third input names neither content nor location
    assert (code, detail["index"], detail["field"]) == ("Client.InvalidRequest", "2", "inputs.red")
    unknown = "ab" * 16
    resp = _post(soap_offline, f"<g:RegisterTask>{_spec()}</g:RegisterTask>")
    assert resp.status_code == 200, resp.text[:300]
    known = etree.fromstring(resp.content).findtext(".//{urn:gproc:processing:1}task_id")
    ids = f"<g:task_ids>{known}</g:task_ids><g:task_ids>{unknown}</g:task_ids>"
    code, detail = fault_of(_post(soap_offline, f"<g:GetTaskStatus>{ids}</g:GetTaskStatus>"))
    assert (code, detail["index"], detail["task_id"]) == ("Client.UnknownTask", "1", unknown)


def test_the_wsdl_declares_the_detail_fields(soap_offline: SoapServer) -> None:
    root = etree.fromstring(soap_offline.session().get(soap_offline.wsdl, timeout=30).content)
    base = next(t for t in root.iter(f"{{{XSD}}}complexType") if t.get("name") == "GprocFault")
    names = {e.get("name") for e in base.iter(f"{{{XSD}}}element")}
    assert {"code", "message", "field", "task_id", "index", "ac_problem", "request_id"} <= names


@pytest.mark.parametrize(
    "ac_problem,why",
    [
        ("expired", "ac-expired"),
        ("holder", "ac-holder-mismatch"),
        ("signer", "ac-untrusted-signer"),
    ],
)
def test_refusals_say_why_an_ac_was_ignored(
    soap_offline: SoapServer, tmp_path: Path, ac_problem: str, why: str
) -> None:
    pki = soap_offline.pki
    alice, bob = pki.users["alice"], pki.users["bob"]
    now = datetime.now(UTC)
    if ac_problem == "expired":
        ac = make_voms_ac(
            alice.cert,
            pki.voms,
            pki.vo,
            ["/testvo"],
            uri=pki.voms_uri,
            not_before=now - timedelta(hours=3),
            not_after=now - timedelta(hours=1),
        )
    elif ac_problem == "holder":
        ac = make_voms_ac(bob.cert, pki.voms, pki.vo, ["/testvo"], uri=pki.voms_uri)
    else:  # signed by a certificate the vomsdir does not list
        ac = make_voms_ac(alice.cert, bob, pki.vo, ["/testvo"], uri=pki.voms_uri)
    proxy = make_proxy(alice, acs=[ac]).write_proxy(tmp_path / "proxy.pem")
    session = soap_offline.session()
    session.cert = str(proxy)
    ns = "urn:gproc:processing:1"
    body = f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:g="{ns}"><s:Body><g:RegisterTask>'
    body += f"{_spec()}</g:RegisterTask></s:Body></s:Envelope>"
    code, detail = fault_of(
        session.post(soap_offline.url, data=body.encode(), headers=_XML, timeout=30)
    )
    assert (code, detail["rule"]) == ("Client.NotAuthorised", "default")
    assert detail["ac_problem"].startswith(why), detail
    assert "attribute certificate was ignored" in detail["message"]


# ---- spyne's per-request gc.collect() --------------------------------------------------
def test_spyne_no_longer_collects_garbage_per_request(soap_offline: SoapServer) -> None:
    """With automatic collection off, any full collection during these calls is one
    spyne ran itself (it would, about once a second, without the chassis setting)."""
    assert spyne.const.MIN_GC_INTERVAL > 1e300
    full: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    session = soap_offline.session()
    ns = "urn:gproc:processing:1"
    body = f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:g="{ns}"><s:Body><g:ListTools/></s:Body>'
    body += "</s:Envelope>"
    gc.disable()
    gc.callbacks.append(seen)
    try:
        for _ in range(3):
            assert session.post(soap_offline.url, data=body.encode(), headers=_XML, timeout=30).ok
            deadline = datetime.now(UTC) + timedelta(seconds=1.1)
            while datetime.now(UTC) < deadline:  # spyne's interval is one second
                assert session.post(
                    soap_offline.url, data=body.encode(), headers=_XML, timeout=30
                ).ok
    finally:
        gc.callbacks.remove(seen)
        gc.enable()
    assert full == []
