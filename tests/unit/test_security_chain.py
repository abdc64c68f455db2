"""Validation of good chains, the Identity it yields, the cache and trust-store reloads."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gproc.security import pki
from gproc.security.chain import Validator, validate_chain
from gproc.security.errors import CredentialError, Reason, UntrustedCredential, ValidityError
from gproc.security.identity import Fqan, ProxyType
from gproc.security.pki import TestPKI
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust


def _validator(p: TestPKI, ca_dir: Path | None = None, **kw: object) -> Validator:
    return Validator(TrustStore(ca_dir or p.ca_dir, check_interval=0), VomsTrust(p.vomsdir), **kw)  # type: ignore[arg-type]


def test_plain_end_entity_certificate(test_pki: TestPKI, pki_validator: Validator) -> None:
    ident = pki_validator.validate(test_pki.users["bob"].chain_pem())
    assert ident.proxy_type is ProxyType.NONE and ident.proxy_depth == 0
    assert ident.subject_grid == "/C=XX/O=gproc-test/OU=users/CN=bob"
    assert ident.subject == "CN=bob,OU=users,O=gproc-test,C=XX"
    assert ident.issuer_grid == "/C=XX/O=gproc-test/CN=gproc Test CA"
    assert ident.fqans == () and ident.vo is None


@pytest.mark.parametrize(
    ("label", "kind", "fqans"),
    [
        ("alice", ProxyType.IMPERSONATION, []),
        ("alice-voms", ProxyType.IMPERSONATION, ["/testvo", "/testvo/grid"]),
        ("alice-limited", ProxyType.LIMITED, ["/testvo", "/testvo/grid"]),
        ("alice-independent", ProxyType.INDEPENDENT, []),
        ("bob-voms", ProxyType.IMPERSONATION, ["/testvo/Role=VO-Admin", "/testvo"]),
    ],
)
def test_test_pki_proxies(
    test_pki: TestPKI, pki_validator: Validator, label: str, kind: ProxyType, fqans: list[str]
) -> None:
    ident = pki_validator.validate(test_pki.proxies[label].read_bytes())
    assert ident.proxy_type is kind and ident.proxy_depth == 1
    assert [str(f) for f in ident.fqans] == fqans
    assert ident.rejected_acs == ()
    if fqans:
        assert ident.vo == "testvo" and ident.acs[0].uri == "vm:15000"
        assert ident.acs[0].issuer == test_pki.voms.dn


def test_proxy_of_proxy_keeps_acs_and_respects_path_length(
    test_pki: TestPKI, pki_validator: Validator
) -> None:
    alice = test_pki.users["alice"]
    ac = pki.make_voms_ac(alice.cert, test_pki.voms, "testvo", ["/testvo/grid"])
    first = pki.make_proxy(alice, acs=[ac], path_length=1)
    second = pki.make_proxy(first, hours=1)
    ident = pki_validator.validate(second.chain_pem())
    assert ident.proxy_depth == 2 and ident.fqans == (Fqan("testvo", ("grid",)),)
    assert ident.not_after == second.cert.not_valid_after_utc  # the shortest-lived link
    assert ident.subject_grid == alice.dn


def test_input_forms_give_the_same_identity(test_pki: TestPKI) -> None:
    validator = _validator(test_pki)
    pem = test_pki.proxies["alice-voms"].read_bytes()
    certs = x509.load_pem_x509_certificates(pem)
    der = b"".join(c.public_bytes(Encoding.DER) for c in certs)
    a = validator.validate(pem, now=datetime.now(UTC))
    b = validator.validate(der, now=datetime.now(UTC))
    c = validator.validate(list(reversed(certs)), now=datetime.now(UTC))  # order is restored
    assert a.fingerprint == b.fingerprint and a.fqans == b.fqans == c.fqans
    assert a.subject == c.subject


def test_validation_at_a_later_time_sees_expiry(
    test_pki: TestPKI, pki_validator: Validator
) -> None:
    pem = test_pki.proxies["alice"].read_bytes()
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(ValidityError) as info:
        pki_validator.validate(pem, now=later)
    assert info.value.reason is Reason.EXPIRED


def test_not_after_is_min_over_chain_and_acs(test_pki: TestPKI, pki_validator: Validator) -> None:
    alice = test_pki.users["alice"]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    ac = pki.make_voms_ac(alice.cert, test_pki.voms, "testvo", ["/testvo"], not_after=soon)
    ident = pki_validator.validate(pki.make_proxy(alice, acs=[ac]).chain_pem())
    assert ident.not_after == soon


def test_cache_hit_and_expiry_bound(test_pki: TestPKI) -> None:
    validator = _validator(test_pki)
    pem = test_pki.proxies["bob-voms"].read_bytes()
    first = validator.validate(pem)
    second = validator.validate(pem)
    assert second is first and validator.cache.hits == 1
    assert validator.voms is not None
    key = (
        bytes.fromhex(first.fingerprint),
        validator.truststore.generation,
        validator.voms.generation,
    )
    assert validator.cache.get(key, datetime.now(UTC)) is first
    assert validator.cache.get(key, first.not_after + timedelta(seconds=1)) is None
    assert len(validator.cache) == 0  # the expired entry was dropped


def test_banned_dn_applies_to_cached_identities(test_pki: TestPKI) -> None:
    validator = _validator(test_pki)
    pem = test_pki.proxies["alice"].read_bytes()
    validator.validate(pem)
    validator.banned.add("CN=alice,OU=users,O=gproc-test,C=XX")
    with pytest.raises(CredentialError) as info:
        validator.validate(pem)
    assert info.value.reason is Reason.BANNED


def test_crl_update_is_picked_up(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    validator = _validator(test_pki, ca_dir)
    alice = test_pki.users["alice"]
    pem = test_pki.proxies["alice"].read_bytes()
    validator.validate(pem)
    gen = validator.truststore.generation
    crl = pki.make_crl(test_pki.ca, [alice.cert.serial_number, test_pki.revoked.cert.serial_number])
    pki.write_crl(ca_dir, test_pki.ca, crl)
    with pytest.raises(UntrustedCredential) as info:
        validator.validate(pem)  # the cached identity belongs to the old generation
    assert info.value.reason is Reason.REVOKED
    assert validator.truststore.generation == gen + 1


@pytest.mark.parametrize("hashes_", ["old", "new", "both"])
def test_old_and_new_hash_directories_behave_the_same(
    test_pki: TestPKI, tmp_path: Path, hashes_: str
) -> None:
    ca_dir = pki.write_ca_dir(tmp_path / hashes_, [(test_pki.ca, test_pki.crl)], hashes_=hashes_)
    validator = _validator(test_pki, ca_dir)
    assert validator.validate(test_pki.proxies["alice-voms"].read_bytes()).fqans
    with pytest.raises(UntrustedCredential) as info:
        validator.validate(test_pki.proxies["mallory"].read_bytes())
    assert info.value.reason is Reason.REVOKED
    assert len(validator.truststore.snapshot().cas) == 1


def test_missing_crl_is_refused_unless_allowed(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = pki.write_ca_dir(tmp_path / "nocrl", [(test_pki.ca, None)])
    pem = test_pki.proxies["alice"].read_bytes()
    with pytest.raises(UntrustedCredential) as info:
        _validator(test_pki, ca_dir).validate(pem)
    assert info.value.reason is Reason.CRL_MISSING
    ident = _validator(test_pki, ca_dir, require_crl=False).validate(pem)
    assert ident.subject_grid == test_pki.users["alice"].dn


def test_validate_chain_function(test_pki: TestPKI) -> None:
    ident = validate_chain(
        test_pki.proxies["bob-voms"].read_bytes(),
        TrustStore(test_pki.ca_dir),
        str(test_pki.vomsdir),
    )
    assert ident.primary_fqan == Fqan("testvo", (), "VO-Admin")
    with pytest.raises(CredentialError):
        validate_chain(
            test_pki.proxies["alice-limited"].read_bytes(),
            TrustStore(test_pki.ca_dir),
            None,
            require_full_proxy=True,
        )


def test_identity_is_immutable(test_pki: TestPKI, pki_validator: Validator) -> None:
    ident = pki_validator.validate(test_pki.proxies["alice"].read_bytes())
    with pytest.raises(AttributeError):
        ident.subject = "CN=mallory"  # type: ignore[misc]


def test_chain_sent_with_ca_certificate(test_pki: TestPKI, pki_validator: Validator) -> None:
    pem = test_pki.proxies["alice"].read_bytes() + test_pki.ca.cert_pem()
    assert pki_validator.validate(pem).issuer_grid == test_pki.ca.dn


def test_chain_sent_with_forged_root_is_refused(
    test_pki: TestPKI, pki_validator: Validator
) -> None:
    forged_ca = pki.make_ca("gproc Test CA")  # same DN, attacker's key
    eve = pki.make_user_cert(forged_ca, "eve")
    with pytest.raises(UntrustedCredential) as info:
        pki_validator.validate(pki.make_proxy(eve).chain_pem() + forged_ca.cert_pem())
    assert info.value.reason is Reason.UNKNOWN_CA and "self-signed" in info.value.message
