"""Sign-on: a real MyProxy logon (credential stored with the stock myproxy-init), then
VOMS attributes from gproc's attribute authority, checked by gproc's validator."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from gproc import errors
from gproc.security.chain import Validator
from gproc.security.myproxy import MyProxyRefused, MyProxyUnavailable
from gproc.services.myproxy_login import NotConfigured, VomsRefused, sign_on
from gproc.settings import MyProxySettings, ServiceSettings, Settings, VoSettings
from tests.fixtures.myproxy import MyProxyStack
from tests.fixtures.vo import VoStack

VO = "portalvo"
PASS = "alice-sso-pass"


@pytest.fixture(scope="module")
def portalvo(vo_stack: VoStack, myproxy: MyProxyStack) -> VoStack:
    """VO portalvo (role analyst) with alice, who holds the role; bob is no member.
    Their credentials are in MyProxy as alice-sso and bob-sso."""
    st, admin, pki = vo_stack.store, vo_stack.admin_actor, vo_stack.pki
    st.create_vo(admin, VO)
    st.create_role(admin, VO, "analyst")
    st.create_role(admin, VO, "operator")
    st.add_member(admin, VO, pki.users["alice"].dn, pki.ca.dn)
    st.grant(admin, VO, pki.users["alice"].dn, f"/{VO}", "analyst")
    myproxy.store("alice", "alice-sso", PASS)
    myproxy.store("bob", "bob-sso", "bob-sso-pass")
    return vo_stack


def _settings(stack: VoStack, myproxy: MyProxyStack, tmp: Path, *, own_aa: bool) -> Settings:
    pki = stack.pki
    mp = MyProxySettings(host="127.0.0.1", port=myproxy.port, vomses=None)
    vo = VoSettings()
    if own_aa:  # gproc's own VOMS endpoint, from [vo]
        vo = VoSettings(vo=VO, aa_cert=pki.voms_cert, voms_port=stack.voms(VO).port)
    else:
        mp = mp.model_copy(update={"vomses": stack.vomses(VO)})
    return Settings(
        state_dir=tmp,
        service=ServiceSettings(ca_dir=pki.ca_dir, vomsdir=pki.vomsdir),
        myproxy=mp,
        vo=vo,
    )


@pytest.fixture
def settings(portalvo: VoStack, myproxy: MyProxyStack, tmp_path: Path) -> Settings:
    return _settings(portalvo, myproxy, tmp_path, own_aa=False)


@pytest.mark.parametrize("own_aa", [False, True], ids=["vomses", "own-endpoint"])
def test_sign_on_gives_a_voms_proxy_with_the_chosen_role(
    portalvo: VoStack, myproxy: MyProxyStack, pki_validator: Validator, tmp_path: Path, own_aa: bool
) -> None:
    settings = _settings(portalvo, myproxy, tmp_path, own_aa=own_aa)
    pem = sign_on(settings, "alice-sso", PASS, VO, "analyst")
    ident = pki_validator.validate(pem)
    assert ident.subject_grid == portalvo.pki.users["alice"].dn
    assert [str(f) for f in ident.fqans] == [f"/{VO}/Role=analyst", f"/{VO}"]
    assert not ident.rejected_acs
    assert b"PRIVATE KEY" in pem  # a whole proxy file: certificate, key, chain


def test_sign_on_without_a_role_gives_the_vo_group(
    settings: Settings, pki_validator: Validator
) -> None:
    ident = pki_validator.validate(sign_on(settings, "alice-sso", PASS, VO))
    assert [str(f) for f in ident.fqans] == [f"/{VO}"]


def test_a_role_the_user_does_not_hold_is_refused(settings: Settings) -> None:
    with pytest.raises(VomsRefused, match="operator") as err:
        sign_on(settings, "alice-sso", PASS, VO, "operator")
    assert isinstance(err.value, errors.NotAuthorised)


def test_a_user_outside_the_vo_is_refused(settings: Settings) -> None:
    with pytest.raises(VomsRefused) as err:
        sign_on(settings, "bob-sso", "bob-sso-pass", VO)
    assert err.value.rule == "NoSuchUser"


def test_wrong_passphrase_is_refused_before_voms(settings: Settings) -> None:
    with pytest.raises(MyProxyRefused):
        sign_on(settings, "alice-sso", "wrong-passphrase", VO)


def test_a_vo_without_a_voms_server_is_refused(settings: Settings) -> None:
    with pytest.raises(NotConfigured, match="othervo"):
        sign_on(settings, "alice-sso", PASS, "othervo")


@pytest.mark.parametrize(("vo", "role"), [("bad vo", None), (VO, "Role=x"), (VO, "a/b")])
def test_bad_vo_or_role_names_are_refused(settings: Settings, vo: str, role: str | None) -> None:
    with pytest.raises(errors.InvalidRequest):
        sign_on(settings, "alice-sso", PASS, vo, role)


def test_an_unreachable_myproxy_server_is_unavailable(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = int(s.getsockname()[1])
    down = settings.model_copy(
        update={"myproxy": settings.myproxy.model_copy(update={"port": closed})}
    )
    with pytest.raises(MyProxyUnavailable) as err:
        sign_on(down, "alice-sso", PASS, VO)
    assert err.value.retryable and f"127.0.0.1:{closed}" in str(err.value)


def test_no_passphrase_or_proxy_reaches_a_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = sign_on(settings, "alice-sso", PASS, VO, "analyst")
    with pytest.raises(MyProxyRefused) as err:
        sign_on(settings, "alice-sso", "wrong-" + PASS, VO)
    body = pem.split(b"\n")[1].decode()  # a line of the certificate's base64
    assert PASS not in caplog.text and PASS not in str(err.value)
    assert "BEGIN" not in caplog.text and body not in caplog.text
