"""VOMS ACs: every failing AC contributes no attributes and records why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gproc.security import pki
from gproc.security.asn1 import OID_VOMS_ACSEQ
from gproc.security.chain import Validator
from gproc.security.errors import Reason, VomsError
from gproc.security.identity import Fqan
from gproc.security.pki import TestPKI
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust

NOW = datetime.now(UTC)


def _ac(p: TestPKI, **kw: object) -> bytes:
    args: dict[str, object] = {"vo": "testvo", "fqans": ["/testvo/grid"], **kw}
    holder = args.pop("holder", p.users["alice"].cert)
    signer = args.pop("signer", p.voms)
    return pki.make_voms_ac(holder, signer, **args)  # type: ignore[arg-type]


def _rogue_voms(p: TestPKI) -> pki.Credential:
    return pki.make_host_cert(p.ca, "rogue.vm")


def _same_dn_other_ca(p: TestPKI) -> pki.Credential:
    other = pki.make_ca("Other CA")
    return pki.issue_cert(other, p.voms.cert.subject, server=True)


BAD_ACS: dict[str, tuple[Callable[[TestPKI], bytes], Reason]] = {
    "signed by an untrusted server": (
        lambda p: _ac(p, signer=_rogue_voms(p)),
        Reason.AC_UNTRUSTED_SIGNER,
    ),
    "signer DN in LSC but issued by an unknown CA": (
        lambda p: _ac(p, signer=_same_dn_other_ca(p)),
        Reason.AC_UNTRUSTED_SIGNER,
    ),
    "holder is another certificate": (
        lambda p: _ac(p, holder=p.users["bob"].cert),
        Reason.AC_HOLDER_MISMATCH,
    ),
    "expired": (
        lambda p: _ac(p, not_before=NOW - timedelta(hours=3), not_after=NOW - timedelta(hours=1)),
        Reason.AC_EXPIRED,
    ),
    "not yet valid": (
        lambda p: _ac(p, not_before=NOW + timedelta(hours=1)),
        Reason.AC_NOT_YET_VALID,
    ),
    "VO without an LSC entry": (
        lambda p: _ac(p, vo="othervo", fqans=["/othervo"]),
        Reason.AC_UNKNOWN_VO,
    ),
    "bad signature": (lambda p: _ac(p, sign_key=p.users["bob"].key), Reason.AC_BAD_SIGNATURE),
    "FQAN of another VO": (
        lambda p: _ac(p, fqans=["/testvo", "/othervo/admin"]),
        Reason.AC_MALFORMED,
    ),
    "no signer cert and none in vomsdir": (
        lambda p: _ac(p, embed_signer=False),
        Reason.AC_UNTRUSTED_SIGNER,
    ),
}


@pytest.mark.parametrize("name", list(BAD_ACS))
def test_bad_ac_contributes_nothing(name: str, test_pki: TestPKI, pki_validator: Validator) -> None:
    make, reason = BAD_ACS[name]
    alice = test_pki.users["alice"]
    good = _ac(test_pki, fqans=["/testvo", "/testvo/Role=admin"])
    proxy = pki.make_proxy(alice, acs=[make(test_pki), good])
    ident = pki_validator.validate(proxy.chain_pem())
    assert [r.reason for r in ident.rejected_acs] == [reason], ident.rejected_acs
    assert ident.rejected_acs[0].message
    assert [str(f) for f in ident.fqans] == ["/testvo", "/testvo/Role=admin"]  # only the good AC


def test_strict_voms_refuses_the_chain(test_pki: TestPKI) -> None:
    validator = Validator(
        TrustStore(test_pki.ca_dir), VomsTrust(test_pki.vomsdir), strict_voms=True
    )
    proxy = pki.make_proxy(
        test_pki.users["alice"], acs=[_ac(test_pki, holder=test_pki.users["bob"].cert)]
    )
    with pytest.raises(VomsError) as info:
        validator.validate(proxy.chain_pem())
    assert info.value.reason is Reason.AC_HOLDER_MISMATCH


def test_server_certificate_in_vomsdir_is_trusted(test_pki: TestPKI, tmp_path: Path) -> None:
    vomsdir = tmp_path / "vomsdir"
    pki.write_vomsdir(vomsdir, "testvo", test_pki.voms, pem=True)
    (vomsdir / "testvo" / "vm.lsc").unlink()
    validator = Validator(TrustStore(test_pki.ca_dir), VomsTrust(vomsdir))
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki, embed_signer=False)])
    assert validator.validate(proxy.chain_pem()).fqans == (Fqan("testvo", ("grid",)),)


def test_long_and_short_fqan_forms_are_equal(test_pki: TestPKI, pki_validator: Validator) -> None:
    long_form = [
        "/testvo/Role=NULL/Capability=NULL",
        "/testvo/grid/Role=NULL/Capability=NULL",
        "/testvo/Role=admin/Capability=NULL",
    ]
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki, fqans=long_form)])
    fqans = pki_validator.validate(proxy.chain_pem()).fqans
    assert fqans == tuple(Fqan.parse(f) for f in ["/testvo", "/testvo/grid", "/testvo/Role=admin"])


def test_lsc_with_several_chains_and_reload(test_pki: TestPKI, tmp_path: Path) -> None:
    vomsdir = tmp_path / "vomsdir"
    (vomsdir / "testvo").mkdir(parents=True)
    lsc = vomsdir / "testvo" / "vm.lsc"
    lsc.write_text("/C=XX/O=x/CN=other\n/C=XX/O=x/CN=Other CA\n")
    voms = VomsTrust(vomsdir, check_interval=0)
    validator = Validator(TrustStore(test_pki.ca_dir), voms)
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki)]).chain_pem()
    assert validator.validate(proxy).rejected_acs[0].reason is Reason.AC_UNTRUSTED_SIGNER
    lsc.write_text(
        lsc.read_text() + f"------ NEXT CHAIN ------\n{test_pki.voms.dn}\n{test_pki.ca.dn}\n"
    )
    ident = validator.validate(proxy)  # vomsdir generation changed: not served from cache
    assert ident.rejected_acs == () and ident.vo == "testvo"


def test_garbled_voms_extension_is_recorded(test_pki: TestPKI, pki_validator: Validator) -> None:
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki)])
    pem = proxy.chain_pem()
    # a proxy whose VOMS extension holds a truncated AC
    broken = pki.make_proxy(test_pki.users["alice"])
    bad = (
        x509.CertificateBuilder()
        .subject_name(broken.cert.subject)
        .issuer_name(broken.cert.issuer)
        .public_key(broken.key.public_key())
        .serial_number(broken.cert.serial_number)
        .not_valid_before(broken.cert.not_valid_before_utc)
        .not_valid_after(broken.cert.not_valid_after_utc)
    )
    for ext in broken.cert.extensions:
        bad = bad.add_extension(ext.value, ext.critical)
    bad = bad.add_extension(
        x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_VOMS_ACSEQ), b"\x30\x03\x30\x01\x00"),
        critical=False,
    )
    cert = bad.sign(test_pki.users["alice"].key, hashes.SHA256())
    chain = pki.Credential(cert, broken.key, broken.chain).chain_pem()
    ident = pki_validator.validate(chain)
    assert ident.fqans == () and ident.rejected_acs[0].reason is Reason.AC_MALFORMED
    assert pki_validator.validate(pem).fqans  # the well-formed one still works


def test_a_rejection_names_the_ac_and_its_problem(
    test_pki: TestPKI, pki_validator: Validator
) -> None:
    """A front refusing the request can say which AC was ignored and why."""
    good = _ac(test_pki, fqans=["/testvo"])
    expired = _ac(
        test_pki,
        serial=4242,
        not_before=NOW - timedelta(hours=3),
        not_after=NOW - timedelta(hours=1),
    )
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[good, expired])
    ident = pki_validator.validate(proxy.chain_pem())
    (rej,) = ident.rejected_acs
    assert (rej.index, rej.serial, rej.issuer, rej.vo, rej.reason) == (
        1,
        4242,
        test_pki.voms.dn,
        "testvo",
        Reason.AC_EXPIRED,
    )
    text = rej.describe()
    assert text.startswith("AC #1 of VO testvo (serial 4242, issued by /C=XX/O=gproc-test/")
    assert "ac-expired" in text and "expired at" in text
    assert ident.fqans == (Fqan("testvo"),)


@pytest.mark.parametrize(
    ("files", "uri", "accepted"),
    [
        ({"vm.lsc"}, "vm:15000", True),
        ({"other.lsc"}, "vm:15000", False),  # an LSC file of another host trusts nothing
        ({"vm.lsc"}, "other.vm:15000", False),
        ({"other.lsc", "vm.lsc"}, "other:15000", True),
    ],
)
def test_the_lsc_file_is_the_one_of_the_acs_host(
    test_pki: TestPKI, tmp_path: Path, files: set[str], uri: str, accepted: bool
) -> None:
    """VOMS reads `<vomsdir>/<vo>/<host>.lsc`, host from the AC's policy authority."""
    vomsdir = tmp_path / "vomsdir"
    (vomsdir / "testvo").mkdir(parents=True)
    for name in files:
        (vomsdir / "testvo" / name).write_text(f"{test_pki.voms.dn}\n{test_pki.ca.dn}\n")
    validator = Validator(TrustStore(test_pki.ca_dir), VomsTrust(vomsdir))
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki, uri=uri)])
    ident = validator.validate(proxy.chain_pem())
    assert (ident.vo == "testvo") is accepted, ident.rejected_acs
    if not accepted:
        assert [r.reason for r in ident.rejected_acs] == [Reason.AC_UNTRUSTED_SIGNER]
        assert f"testvo/{uri.split(':')[0]}.lsc" in ident.rejected_acs[0].message


def test_a_non_matching_lsc_file_is_not_bypassed_by_a_pem(
    test_pki: TestPKI, tmp_path: Path
) -> None:
    """As in VOMS: when `<host>.lsc` exists it decides for ACs carrying their signer."""
    vomsdir = tmp_path / "vomsdir"
    pki.write_vomsdir(vomsdir, "testvo", test_pki.voms, pem=True)
    (vomsdir / "testvo" / "vm.lsc").write_text("/C=XX/O=x/CN=other\n/C=XX/O=x/CN=Other CA\n")
    validator = Validator(TrustStore(test_pki.ca_dir), VomsTrust(vomsdir))
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki)])
    ident = validator.validate(proxy.chain_pem())
    assert [r.reason for r in ident.rejected_acs] == [Reason.AC_UNTRUSTED_SIGNER]


@pytest.mark.parametrize(
    ("holder_name", "accepted"),
    [
        ("issuer", True),  # RFC 5755: the holder certificate's issuer (-newformat)
        ("subject", True),  # the older VOMS encoding: the holder's own subject
        ("other", False),
    ],
)
def test_holder_name_is_checked_as_voms_does(
    test_pki: TestPKI, pki_validator: Validator, holder_name: str, accepted: bool
) -> None:
    alice = test_pki.users["alice"].cert
    name = {
        "issuer": alice.issuer,
        "subject": alice.subject,
        "other": test_pki.users["bob"].cert.subject,
    }[holder_name]
    proxy = pki.make_proxy(test_pki.users["alice"], acs=[_ac(test_pki, holder_issuer=name)])
    ident = pki_validator.validate(proxy.chain_pem())
    assert (ident.vo == "testvo") is accepted, ident.rejected_acs
    if not accepted:
        assert ident.rejected_acs[0].reason is Reason.AC_HOLDER_MISMATCH
