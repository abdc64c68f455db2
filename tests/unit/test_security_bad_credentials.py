"""Table of bad credentials: each one is refused with a typed error and a clear reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gproc.security import pki
from gproc.security.chain import Validator
from gproc.security.errors import (
    BannedCredential,
    CredentialError,
    MalformedCredential,
    ProxyError,
    Reason,
    UntrustedCredential,
    ValidityError,
)
from gproc.security.identity import ProxyType
from gproc.security.pki import TestPKI
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust

NOW = datetime.now(UTC)


@dataclass
class Case:
    make: Callable[[TestPKI], bytes]
    reason: Reason
    error: type[CredentialError]
    in_message: str
    options: dict[str, object] = field(default_factory=dict)
    validator: dict[str, object] = field(default_factory=dict)


def _alice(p: TestPKI) -> pki.Credential:
    return p.users["alice"]


def _user(p: TestPKI, **kw: object) -> bytes:
    return pki.make_user_cert(p.ca, "dave", **kw).chain_pem()  # type: ignore[arg-type]


def _tampered(p: TestPKI) -> bytes:
    der = bytearray(_alice(p).cert.public_bytes(Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    return bytes(der)


def _proxy_chain_too_long(p: TestPKI) -> bytes:
    cred = _alice(p)
    for _ in range(3):
        cred = pki.make_proxy(cred, key_size=1024)
    return cred.chain_pem()


def _path_length_exceeded(p: TestPKI) -> bytes:
    first = pki.make_proxy(_alice(p), path_length=0)
    return pki.make_proxy(first).chain_pem()


def _limited_issues_full(p: TestPKI) -> bytes:
    limited = pki.make_proxy(_alice(p), kind=ProxyType.LIMITED)
    return pki.make_proxy(limited, kind=ProxyType.IMPERSONATION).chain_pem()


def _rogue_ca_user(p: TestPKI) -> bytes:
    rogue = pki.make_ca("gproc Test CA")  # same DN as the trusted CA, other key
    return pki.make_proxy(pki.make_user_cert(rogue, "eve")).chain_pem()


def _bad_subject(p: TestPKI) -> bytes:
    subject = x509.Name(
        [
            *_alice(p).cert.subject.rdns,
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "proxy")]
            ),
        ]
    )
    return pki.make_proxy(_alice(p), subject=subject).chain_pem()


def _other_users_subject(p: TestPKI) -> bytes:
    bob = p.users["bob"].cert.subject
    subject = x509.Name(
        [
            *bob.rdns,
            x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.COMMON_NAME, "123")]),
        ]
    )
    return pki.make_proxy(_alice(p), subject=subject).chain_pem()


HOUR = timedelta(hours=1)
CASES: dict[str, Case] = {
    "expired EEC": Case(
        lambda p: _user(p, not_before=NOW - 48 * HOUR, not_after=NOW - HOUR),
        Reason.EXPIRED,
        ValidityError,
        "expired",
    ),
    "not-yet-valid EEC": Case(
        lambda p: _user(p, not_before=NOW + HOUR),
        Reason.NOT_YET_VALID,
        ValidityError,
        "not yet valid",
    ),
    "expired proxy": Case(
        lambda p: pki.make_proxy(
            _alice(p), not_before=NOW - 3 * HOUR, not_after=NOW - HOUR
        ).chain_pem(),
        Reason.EXPIRED,
        ValidityError,
        "CN=alice/CN=",
    ),
    "not-yet-valid proxy": Case(
        lambda p: pki.make_proxy(_alice(p), not_before=NOW + HOUR).chain_pem(),
        Reason.NOT_YET_VALID,
        ValidityError,
        "not yet",
    ),
    "unknown CA with a trusted CA's DN": Case(
        _rogue_ca_user, Reason.UNKNOWN_CA, UntrustedCredential, "issuer"
    ),
    "unknown CA": Case(
        lambda p: pki.make_user_cert(pki.make_ca("Other CA"), "eve").chain_pem(),
        Reason.UNKNOWN_CA,
        UntrustedCredential,
        "issuer",
    ),
    "revoked EEC": Case(
        lambda p: p.proxies["mallory"].read_bytes(),
        Reason.REVOKED,
        UntrustedCredential,
        "CN=mallory",
    ),
    "tampered signature": Case(_tampered, Reason.BAD_SIGNATURE, UntrustedCredential, "signature"),
    "proxy signed by another key": Case(
        lambda p: pki.make_proxy(_alice(p), signer=p.users["bob"].key).chain_pem(),
        Reason.BAD_SIGNATURE,
        UntrustedCredential,
        "signature",
    ),
    "proxy subject not issuer+CN": Case(
        _bad_subject, Reason.PROXY_SUBJECT, ProxyError, "plus one CN"
    ),
    "proxy subject of another user": Case(
        _other_users_subject, Reason.PROXY_SUBJECT, ProxyError, "CN=bob"
    ),
    "proxy path length exceeded": Case(
        _path_length_exceeded, Reason.PROXY_PATH_LENGTH, ProxyError, "path length 0"
    ),
    "limited proxy issued a full one": Case(
        _limited_issues_full, Reason.PROXY_POLICY, ProxyError, "limited proxy"
    ),
    "unknown proxy policy language": Case(
        lambda p: pki.make_proxy(_alice(p), policy_oid="1.2.3.4").chain_pem(),
        Reason.PROXY_POLICY,
        ProxyError,
        "1.2.3.4",
    ),
    "limited where full required": Case(
        lambda p: p.proxies["alice-limited"].read_bytes(),
        Reason.LIMITED_PROXY,
        ProxyError,
        "full proxy",
        options={"require_full_proxy": True},
    ),
    "proxy without end-entity cert": Case(
        lambda p: pki.make_proxy(_alice(p)).cert_pem(),
        Reason.MISSING_EEC,
        ProxyError,
        "end-entity certificate is missing",
    ),
    "outside the CA namespace": Case(
        lambda p: pki.make_user_cert(p.ca, "eve", org="elsewhere").chain_pem(),
        Reason.NAMESPACE_VIOLATION,
        UntrustedCredential,
        "O=elsewhere",
    ),
    "banned DN": Case(
        lambda p: p.proxies["alice"].read_bytes(),
        Reason.BANNED,
        BannedCredential,
        "CN=alice",
        validator={"banned_dns": ["/C=XX/O=gproc-test/OU=users/CN=alice"]},
    ),
    "banned DN (RFC 2253 form)": Case(
        lambda p: p.proxies["bob-voms"].read_bytes(),
        Reason.BANNED,
        BannedCredential,
        "bob",
        validator={"banned_dns": ["CN=bob,OU=users,O=gproc-test,C=XX"]},
    ),
    "garbage": Case(
        lambda p: b"this is not a certificate",
        Reason.MALFORMED,
        MalformedCredential,
        "not a PEM or DER",
    ),
    "garbage DER": Case(
        lambda p: b"\x30\x82\x01\x00" + b"\x00" * 256,
        Reason.MALFORMED,
        MalformedCredential,
        "not valid DER",
    ),
    "empty": Case(lambda p: b"", Reason.EMPTY_CHAIN, MalformedCredential, "no certificate"),
    "truncated PEM": Case(
        lambda p: p.proxies["alice"].read_bytes()[:900],
        Reason.MALFORMED,
        MalformedCredential,
        "truncated",
    ),
    "truncated DER": Case(
        lambda p: _alice(p).cert.public_bytes(Encoding.DER)[:-40],
        Reason.MALFORMED,
        MalformedCredential,
        "truncated DER",
    ),
    "chain too long": Case(
        _proxy_chain_too_long,
        Reason.CHAIN_TOO_LONG,
        UntrustedCredential,
        "exceeds the limit of 3",
        validator={"max_chain_length": 3},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_credential_is_refused(name: str, test_pki: TestPKI) -> None:
    case = CASES[name]
    validator = Validator(
        TrustStore(test_pki.ca_dir), VomsTrust(test_pki.vomsdir), **case.validator
    )  # type: ignore[arg-type]
    chain = case.make(test_pki)
    with pytest.raises(case.error) as info:
        validator.validate(chain, **case.options)  # type: ignore[arg-type]
    assert info.value.reason is case.reason, info.value
    assert case.in_message in info.value.message


def test_refusals_are_not_cached(test_pki: TestPKI, pki_validator: Validator) -> None:
    chain = test_pki.proxies["mallory"].read_bytes()
    for _ in range(2):
        with pytest.raises(UntrustedCredential):
            pki_validator.validate(chain)


def test_limited_proxy_accepted_when_full_not_required(
    pki_validator: Validator, test_pki: TestPKI
) -> None:
    ident = pki_validator.validate(test_pki.proxies["alice-limited"].read_bytes())
    assert ident.limited and ident.proxy_type is ProxyType.LIMITED
