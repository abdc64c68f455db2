"""Typed credential errors: every refusal carries a stable reason code and a message
that says what is wrong, so callers (SOAP faults, logs, tests) never parse text."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Stable machine-readable reasons for refusing a credential or an AC."""

    MALFORMED = "malformed"
    EMPTY_CHAIN = "empty-chain"
    CHAIN_TOO_LONG = "chain-too-long"
    CHAIN_BROKEN = "chain-broken"
    MISSING_EEC = "missing-end-entity"
    UNKNOWN_CA = "unknown-ca"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    CRL_MISSING = "crl-missing"
    CRL_EXPIRED = "crl-expired"
    NAMESPACE_VIOLATION = "namespace-violation"
    INVALID_CA = "invalid-ca"
    PROXY_SUBJECT = "proxy-subject"
    PROXY_PATH_LENGTH = "proxy-path-length"
    PROXY_POLICY = "proxy-policy"
    PROXY_NOT_ALLOWED = "proxy-not-allowed"
    LIMITED_PROXY = "limited-proxy"
    BANNED = "banned"
    UNTRUSTED = "untrusted"
    # attribute-certificate reasons (recorded on Identity.rejected_acs)
    AC_MALFORMED = "ac-malformed"
    AC_UNKNOWN_VO = "ac-unknown-vo"
    AC_UNTRUSTED_SIGNER = "ac-untrusted-signer"
    AC_BAD_SIGNATURE = "ac-bad-signature"
    AC_EXPIRED = "ac-expired"
    AC_NOT_YET_VALID = "ac-not-yet-valid"
    AC_HOLDER_MISMATCH = "ac-holder-mismatch"


class SecurityError(Exception):
    """Root of all gproc security errors."""


class CredentialError(SecurityError):
    """A credential (certificate chain / proxy / AC) was refused."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class MalformedCredential(CredentialError):
    """The bytes are not a parseable certificate chain."""


class UntrustedCredential(CredentialError):
    """The chain does not lead to a trusted CA, or a signature/CRL check failed."""


class ValidityError(CredentialError):
    """A certificate, proxy or AC is outside its validity window."""


class ProxyError(CredentialError):
    """An RFC 3820 proxy rule is violated (subject, path length, policy, limited)."""


class BannedCredential(CredentialError):
    """The end-entity DN is explicitly banned."""


class VomsError(CredentialError):
    """An attribute certificate was refused (raised only in strict VOMS mode)."""


class TrustStoreError(SecurityError):
    """The trust anchor directory or vomsdir is unusable (missing, unreadable)."""
