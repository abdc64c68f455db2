"""VoStore rules and the attribute authority's granting rules, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from gproc.security.attribute_authority import AcRequestRefused, AttributeAuthority
from gproc.security.pki import Credential, TestPKI
from gproc.services.voms_server import BadRequest, _b64, parse_request
from gproc.vo import Actor, VoConflict, VoDenied, VoInvalid, VoStore, dn_key, membership_refusal

ROOT = Actor("/C=XX/O=site/CN=root")
CA = "/C=XX/O=gproc-test/CN=gproc Test CA"
USER = "/C=XX/O=gproc-test/OU=users/CN=alice"


@pytest.fixture
def store(tmp_path: Path) -> VoStore:
    st = VoStore(f"sqlite:///{tmp_path / 'vo.db'}", admins=[ROOT.dn])
    st.create_vo(ROOT, "uvo")
    st.create_group(ROOT, "uvo", "/uvo/a")
    st.create_group(ROOT, "uvo", "/uvo/a/b")
    st.create_role(ROOT, "uvo", "pilot")
    st.add_member(ROOT, "uvo", USER, CA)
    return st


def test_dn_forms_compare_equal() -> None:
    assert dn_key("/C=XX/O=x/Email=a@b/CN=y") == dn_key("/c=XX/o=x/emailAddress=a@b/cn=y")
    with pytest.raises(VoInvalid):
        dn_key("CN=rfc2253,C=XX")


def test_member_found_with_another_dn_spelling(store: VoStore) -> None:
    assert store.lookup("uvo", USER.replace("CN=", "cn="), CA) is not None
    assert store.lookup("uvo", USER, "/C=XX/O=other/CN=Other CA") is None


def test_revoking_a_group_takes_subgroups_and_roles(store: VoStore) -> None:
    store.grant(ROOT, "uvo", USER, "/uvo/a/b", "pilot")
    assert [m.fqan for m in store.get_member(ROOT, "uvo", USER).memberships] == [
        "/uvo",
        "/uvo/a/b",
        "/uvo/a/b/Role=pilot",
    ]
    store.grant(ROOT, "uvo", USER, "/uvo/a")
    info = store.revoke(ROOT, "uvo", USER, "/uvo/a")
    assert [m.fqan for m in info.memberships] == ["/uvo"]
    with pytest.raises(VoInvalid):
        store.revoke(ROOT, "uvo", USER, "/uvo")


def test_grant_twice_conflicts_and_unknown_role_refused(store: VoStore) -> None:
    store.grant(ROOT, "uvo", USER, "/uvo/a")
    with pytest.raises(VoConflict):
        store.grant(ROOT, "uvo", USER, "/uvo/a")
    with pytest.raises(Exception, match="unknown role"):
        store.grant(ROOT, "uvo", USER, "/uvo/a", "captain")


def test_only_configured_admins_create_vos(store: VoStore) -> None:
    store.grant(ROOT, "uvo", USER, "/uvo", "VO-Admin")
    alice = Actor(USER, CA)
    store.create_group(alice, "uvo", "/uvo/c")  # VO admin by role
    with pytest.raises(VoDenied, match="only configured administrators"):
        store.create_vo(alice, "other")
    with pytest.raises(VoDenied):
        store.create_group(Actor(USER, "/C=XX/O=evil/CN=Evil CA"), "uvo", "/uvo/d")


def test_membership_refusal(store: VoStore) -> None:
    assert membership_refusal(store, ["uvo"], USER, CA) is None
    assert membership_refusal(store, ["elsewhere"], "/C=XX/CN=nobody", CA) is None
    assert "not (or no longer)" in str(membership_refusal(store, ["uvo"], "/C=XX/CN=x", CA))
    store.suspend_member(ROOT, "uvo", USER, "test")
    assert "suspended from VO uvo" in str(membership_refusal(store, ["uvo"], USER, CA))


@pytest.fixture
def holder(test_pki: TestPKI) -> x509.Certificate:
    return test_pki.users["alice"].cert


def authority(store: VoStore, signer: Credential) -> AttributeAuthority:
    return AttributeAuthority(store, signer, host="vm", port=15000, max_lifetime_s=3600)


def test_ac_order_root_group_and_cap(
    store: VoStore, test_pki: TestPKI, holder: x509.Certificate, tmp_path: Path
) -> None:
    store.grant(ROOT, "uvo", USER, "/uvo/a/b", "pilot")
    aa = authority(store, test_pki.voms)
    ac = aa.issue(holder, "uvo", ["/uvo/a/b/Role=pilot"], 7200)
    assert ac.fqans == ("/uvo/a/b/Role=pilot/Capability=NULL", "/uvo/Role=NULL/Capability=NULL")
    assert ac.shortened and (ac.not_after - ac.not_before).total_seconds() == 3600 + 300
    every = aa.issue(holder, "uvo", ["all"])
    assert every.fqans[0] == "/uvo/Role=NULL/Capability=NULL" and len(every.fqans) == 3
    ordered = aa.issue(holder, "uvo", ["/uvo/a/b"], order=["/uvo"])
    assert ordered.fqans[0] == "/uvo/Role=NULL/Capability=NULL"


@pytest.mark.parametrize(
    "requested,code,text",
    [
        (["/uvo/a"], "NoSuchAttribute", "/uvo/a"),
        (["/uvo/Role=pilot", "/uvo/a/b"], "NoSuchAttribute", "/uvo/Role=pilot, /uvo/a/b"),
        (["/other/x"], "BadRequest", "not an FQAN of VO uvo"),
        (["/uvo/Capability=x"], "BadRequest", "capabilities"),
    ],
)
def test_ac_refusals_say_why(
    store: VoStore,
    test_pki: TestPKI,
    holder: x509.Certificate,
    requested: list[str],
    code: str,
    text: str,
) -> None:
    with pytest.raises(AcRequestRefused) as info:
        authority(store, test_pki.voms).issue(holder, "uvo", requested)
    assert info.value.code == code and text in info.value.message


def test_no_ac_for_strangers_or_suspended(store: VoStore, test_pki: TestPKI) -> None:
    aa = authority(store, test_pki.voms)
    with pytest.raises(AcRequestRefused, match="not a member") as info:
        aa.issue(test_pki.users["bob"].cert, "uvo")
    assert info.value.code == "NoSuchUser"
    store.suspend_member(ROOT, "uvo", USER, "gone fishing")
    with pytest.raises(AcRequestRefused, match="gone fishing") as info:
        aa.issue(test_pki.users["alice"].cert, "uvo")
    assert info.value.code == "SuspendedUser"


def test_request_parsing() -> None:
    rest = parse_request(
        b"GET /generate-ac?fqans=/v/Role=r,/v/g&lifetime=60&order=/v/g HTTP/1.0\nHost: x\n\n", "v"
    )
    assert (rest.fqans, rest.lifetime_s, rest.order, rest.legacy) == (
        ("/v/Role=r", "/v/g"),
        60,
        ("/v/g",),
        False,
    )
    legacy = parse_request(
        b'<?xml version="1.0"?><voms><command>B/v/g:r</command>'
        b"<command>G/v</command><command>Rboss</command>"
        b"<lifetime>5</lifetime></voms>",
        "v",
    )
    assert legacy.fqans == ("/v/g/Role=r", "/v", "/v/Role=boss") and legacy.legacy
    for bad in (
        b"GET /other HTTP/1.0\n\n",
        b"POST / HTTP/1.0\n\n",
        b"GET /generate-ac?lifetime=x HTTP/1.0\n\n",
        b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY e "x">]><voms>&e;</voms>',
    ):
        with pytest.raises(BadRequest):
            parse_request(bad, "v")


def test_base64_is_line_wrapped() -> None:
    text = _b64(bytes(200))
    assert all(len(line) <= 64 for line in text.splitlines()) and text.endswith("\n")
