"""Renewal of delegated proxies from a real MyProxy server, with short lifetimes: a
2-minute delegation is renewed once under 90 s are left, keeping identity and VOMS
attributes (asked again of gproc's attribute authority)."""

from __future__ import annotations

import functools
import logging
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gproc.security.chain import Validator
from gproc.security.delegation import (
    DelegationError,
    DelegationInfo,
    DelegationStore,
    RenewalRequest,
    sign_request,
)
from gproc.security.identity import Identity, ProxyType
from gproc.security.myproxy import logon
from gproc.security.pki import make_proxy
from gproc.services.myproxy_login import sign_on, with_voms
from gproc.services.renewal import ProxyRenewer, Renewal, build_renewer
from gproc.settings import MyProxySettings, ServiceSettings, Settings
from tests.fixtures.myproxy import MyProxyStack
from tests.fixtures.vo import VoStack

VO = "renewvo"
PASS = "renewal-pass-1"
BEFORE = timedelta(seconds=90)


@pytest.fixture(scope="module")
def renewvo(vo_stack: VoStack, myproxy: MyProxyStack) -> VoStack:
    st, admin, pki = vo_stack.store, vo_stack.admin_actor, vo_stack.pki
    st.create_vo(admin, VO)
    st.create_role(admin, VO, "analyst")
    st.add_member(admin, VO, pki.users["alice"].dn, pki.ca.dn)
    st.grant(admin, VO, pki.users["alice"].dn, f"/{VO}", "analyst")
    myproxy.store("alice", "alice-login", PASS)  # the portal's sign-on credential
    myproxy.store_renewable("alice", "alice-renewal")  # renewable by the service only
    myproxy.store_renewable("bob", "bob-renewal")
    return vo_stack


@pytest.fixture
def settings(renewvo: VoStack, myproxy: MyProxyStack, tmp_path: Path) -> Settings:
    pki = renewvo.pki
    return Settings(
        state_dir=tmp_path,
        service=ServiceSettings(
            ca_dir=pki.ca_dir, vomsdir=pki.vomsdir, cert=pki.host_cert, key=pki.host_key
        ),
        myproxy=MyProxySettings(host="127.0.0.1", port=myproxy.port, vomses=renewvo.vomses(VO)),
    )


@pytest.fixture
def store(tmp_path: Path, pki_validator: Validator) -> DelegationStore:
    return DelegationStore(tmp_path / "delegation", pki_validator)


def renewer_for(
    settings: Settings, store: DelegationStore, validator: Validator, myproxy: MyProxyStack
) -> ProxyRenewer:
    pki = myproxy.pki
    return ProxyRenewer(
        store,
        myproxy.server(),
        validator,
        service_cert=pki.host_cert,
        service_key=pki.host_key,
        before=BEFORE,
        lifetime_s=600,
        voms=functools.partial(with_voms, settings),
    )


def delegate(
    store: DelegationStore, validator: Validator, user_proxy: bytes, did: str, life: timedelta
) -> tuple[Identity, DelegationInfo]:
    """What a portal does with the user's proxy: delegate it to the service."""
    caller = validator.validate(user_proxy)
    chain = sign_request(store.get_request(caller, did), user_proxy, life)
    return caller, store.put_proxy(caller, did, chain)


def end_of(path: Path) -> datetime:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].not_valid_after_utc


def test_a_short_delegation_is_renewed_once_it_nears_expiry(
    settings: Settings, store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    user_proxy = sign_on(settings, "alice-login", PASS, VO, "analyst", lifetime_s=1800)
    caller, info = delegate(store, pki_validator, user_proxy, "long-job", timedelta(minutes=2))
    store.ask_renewal(
        caller, "long-job", RenewalRequest("alice-renewal", f"127.0.0.1:{myproxy.port}")
    )
    before = pki_validator.validate(info.path.read_bytes())
    old_bytes, old_end = info.path.read_bytes(), end_of(info.path)
    renewer = renewer_for(settings, store, pki_validator, myproxy)

    assert renewer.run_once() == []  # 2 minutes left: not due under 90 s
    assert info.path.read_bytes() == old_bytes

    later = datetime.now(UTC) + timedelta(seconds=40)  # when less than 90 s are left
    [done] = renewer.run_once(now=later)
    assert done.renewed and done.error is None, done.error
    after = pki_validator.validate(info.path.read_bytes())
    assert end_of(info.path) > old_end + timedelta(minutes=5)
    assert done.not_after == end_of(info.path) == store.info(caller, "long-job").not_after
    assert after.subject_grid == before.subject_grid == caller.subject_grid
    assert [str(f) for f in after.fqans] == [str(f) for f in before.fqans]
    assert [str(f) for f in after.fqans] == [f"/{VO}/Role=analyst", f"/{VO}"]
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert store.info(caller, "long-job").renewal == RenewalRequest(
        "alice-renewal", f"127.0.0.1:{myproxy.port}"
    )
    assert renewer.run_once(now=later) == []  # renewed: not due any more


def test_only_delegations_that_ask_are_renewed(
    settings: Settings, store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    user_proxy = logon(myproxy.server(), "alice-login", PASS, 1800)
    delegate(store, pki_validator, user_proxy, "no-renewal", timedelta(minutes=2))
    caller, long_ = delegate(store, pki_validator, user_proxy, "long", timedelta(minutes=20))
    store.ask_renewal(caller, "long", RenewalRequest("alice-renewal", f"127.0.0.1:{myproxy.port}"))
    renewer = renewer_for(settings, store, pki_validator, myproxy)
    assert renewer.run_once(now=datetime.now(UTC) + timedelta(seconds=40)) == []
    # when asked, renewal stops again with None
    store.ask_renewal(caller, "long", None)
    assert store.info(caller, "long").renewal is None
    assert renewer.run_once(now=long_.not_after - timedelta(seconds=30)) == []


def test_a_refused_renewal_keeps_the_delegation_and_says_why(
    settings: Settings,
    store: DelegationStore,
    pki_validator: Validator,
    myproxy: MyProxyStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user_proxy = logon(myproxy.server(), "alice-login", PASS, 1800)
    caller, info = delegate(store, pki_validator, user_proxy, "wrong-cred", timedelta(minutes=2))
    # bob's credential: alice's proxy does not authorise renewing it
    store.ask_renewal(
        caller, "wrong-cred", RenewalRequest("bob-renewal", f"127.0.0.1:{myproxy.port}")
    )
    old = info.path.read_bytes()
    renewer = renewer_for(settings, store, pki_validator, myproxy)
    [done] = renewer.run_once(now=datetime.now(UTC) + timedelta(seconds=40))
    assert not done.renewed and done.error and "refused" in done.error
    assert info.path.read_bytes() == old
    assert "PRIVATE" not in done.error
    assert "not renewed" in caplog.text and "BEGIN" not in caplog.text  # logged, no proxy


def test_a_delegation_naming_another_server_is_left_alone(
    settings: Settings, store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    user_proxy = logon(myproxy.server(), "alice-login", PASS, 1800)
    caller, _ = delegate(store, pki_validator, user_proxy, "elsewhere", timedelta(minutes=2))
    store.ask_renewal(caller, "elsewhere", RenewalRequest("alice-renewal", "other.example:7512"))
    renewer = renewer_for(settings, store, pki_validator, myproxy)
    [done] = renewer.run_once(now=datetime.now(UTC) + timedelta(seconds=40))
    assert isinstance(done, Renewal) and not done.renewed
    assert done.error and "other.example:7512" in done.error


def test_replace_proxy_refuses_another_identity_or_an_earlier_end(
    store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    pki = myproxy.pki
    alice = pki.proxies["alice"].read_bytes()
    caller, info = delegate(store, pki_validator, alice, "d1", timedelta(hours=1))
    bobs = make_proxy(pki.users["bob"], hours=3).proxy_pem()
    with pytest.raises(DelegationError, match="dn-mismatch"):
        store.replace_proxy(caller, "d1", bobs)
    shorter = make_proxy(pki.users["alice"], hours=0.5).proxy_pem()
    with pytest.raises(DelegationError, match="not-later"):
        store.replace_proxy(caller, "d1", shorter)
    with pytest.raises(DelegationError, match="malformed"):
        store.replace_proxy(caller, "d1", b"-----BEGIN CERTIFICATE-----\nxx\n")
    longer = make_proxy(pki.users["alice"], hours=3).proxy_pem()
    assert store.replace_proxy(caller, "d1", longer).not_after > info.not_after
    assert store.path_for(caller, "d1").read_bytes() == longer


def test_a_renewal_request_survives_a_new_delegation(
    store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    alice = myproxy.pki.proxies["alice"].read_bytes()
    caller, _ = delegate(store, pki_validator, alice, "d2", timedelta(hours=1))
    store.ask_renewal(caller, "d2", RenewalRequest("alice-renewal", "127.0.0.1:7512"))
    delegate(store, pki_validator, alice, "d2", timedelta(hours=2))
    assert store.info(caller, "d2").renewal == RenewalRequest("alice-renewal", "127.0.0.1:7512")
    [listed] = store.list_for(caller)
    assert listed.renewal is not None and listed.renewal.username == "alice-renewal"


def test_the_renewer_of_gproc_serve_renews_in_the_background(
    settings: Settings, store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    """build_renewer from [myproxy]/[service], run as gproc serve runs its parts."""
    settings.myproxy.renew_before_s = 3600  # a 2-minute delegation is due at once
    settings.myproxy.renew_interval_s = 0.2
    user_proxy = logon(myproxy.server(), "alice-login", PASS, 1800)
    caller, info = delegate(store, pki_validator, user_proxy, "bg", timedelta(minutes=2))
    store.ask_renewal(caller, "bg", RenewalRequest("alice-renewal", f"127.0.0.1:{myproxy.port}"))
    renewer = build_renewer(settings, store, pki_validator)
    renewer.start()
    try:
        deadline = time.monotonic() + 15
        while store.info(caller, "bg").not_after <= info.not_after:
            assert time.monotonic() < deadline, "not renewed in the background"
            time.sleep(0.1)
    finally:
        renewer.stop()
    assert pki_validator.validate(info.path.read_bytes()).subject_grid == caller.subject_grid


def test_a_limited_delegation_stays_limited(
    settings: Settings, store: DelegationStore, pki_validator: Validator, myproxy: MyProxyStack
) -> None:
    limited = make_proxy(myproxy.pki.users["alice"], kind=ProxyType.LIMITED, hours=1).proxy_pem()
    caller, info = delegate(store, pki_validator, limited, "limited", timedelta(minutes=2))
    assert caller.limited
    store.ask_renewal(
        caller, "limited", RenewalRequest("alice-renewal", f"127.0.0.1:{myproxy.port}")
    )
    renewer = renewer_for(settings, store, pki_validator, myproxy)
    [done] = renewer.run_once(now=datetime.now(UTC) + timedelta(seconds=40))
    assert done.renewed, done.error
    after = pki_validator.validate(info.path.read_bytes())
    assert after.limited and after.subject_grid == caller.subject_grid
    assert done.not_after > info.not_after + timedelta(minutes=5)
