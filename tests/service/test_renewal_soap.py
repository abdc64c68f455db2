"""SetProxyRenewal: a caller asks, over SOAP, that its delegation be renewed from the
service's MyProxy server (the username only; the server is the service's own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import zeep

from gproc.security.delegation import RenewalRequest, sign_request
from gproc.security.pki import TestPKI
from gproc.settings import MyProxySettings
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.myproxy import MyProxyStack
from tests.fixtures.soap import SoapServer, _settings, _start
from tests.service.soap_helpers import client, zeep_fault


@pytest.fixture(scope="module")
def soap_mp(
    test_pki: TestPKI, myproxy: MyProxyStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SoapServer]:
    root = tmp_path_factory.mktemp("soap-myproxy")
    settings = _settings(root)
    settings.myproxy = MyProxySettings(host="127.0.0.1", port=myproxy.port)
    wms = HTCondorWMS(
        instance=f"mp{uuid.uuid4().hex[:8]}", collector="127.0.0.1:1", sandbox_root=root / "sb"
    )
    srv, gp = _start(settings, test_pki, wms, root)
    try:
        yield srv
    finally:
        srv.server.stop()
        gp.core.registry.close()


def fault(call: object, **kw: object) -> tuple[str, dict[str, str]]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(**kw)  # type: ignore[operator]
    return zeep_fault(info.value)


def test_set_proxy_renewal_records_the_username_and_the_services_server(
    soap_mp: SoapServer, myproxy: MyProxyStack
) -> None:
    alice, bob = client(soap_mp), client(soap_mp, "bob-voms")
    req = alice.service.DelegateProxy(action="get-request", delegation_id="long-job")
    proxy = soap_mp.pki.proxies["alice-voms"].read_bytes()
    signed = sign_request(req.certificate_request.encode(), proxy).decode()
    alice.service.DelegateProxy(action="put-proxy", delegation_id="long-job", proxy=signed)

    done = alice.service.SetProxyRenewal(delegation_id="long-job", myproxy_username="alice-renewal")
    assert done.myproxy_username == "alice-renewal" and done.expires is not None
    store, dn = soap_mp.gp.delegations, soap_mp.pki.users["alice"].dn
    assert store is not None
    assert store.info(dn, "long-job").renewal == RenewalRequest(
        "alice-renewal", f"127.0.0.1:{myproxy.port}"
    )
    # bob has no delegation of that name; a username with a line break is refused
    code, _ = fault(bob.service.SetProxyRenewal, delegation_id="long-job", myproxy_username="b")
    assert code == "Client.CredentialRefused"
    code, detail = fault(
        alice.service.SetProxyRenewal, delegation_id="long-job", myproxy_username="a\nb"
    )
    assert code == "Client.InvalidRequest" and detail.get("field") == "myproxy_username"
    # an empty username stops renewal
    alice.service.SetProxyRenewal(delegation_id="long-job", myproxy_username="")
    assert store.info(dn, "long-job").renewal is None


def test_set_proxy_renewal_is_refused_where_myproxy_is_not_configured(
    soap_offline: SoapServer,
) -> None:
    alice = client(soap_offline)
    req = alice.service.DelegateProxy(action="get-request", delegation_id="no-mp")
    proxy = soap_offline.pki.proxies["alice-voms"].read_bytes()
    signed = sign_request(req.certificate_request.encode(), proxy).decode()
    alice.service.DelegateProxy(action="put-proxy", delegation_id="no-mp", proxy=signed)
    code, detail = fault(
        alice.service.SetProxyRenewal, delegation_id="no-mp", myproxy_username="alice"
    )
    assert code == "Client.InvalidRequest" and detail.get("field") == "myproxy_username"
