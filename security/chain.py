"""Validation of an end-entity certificate plus RFC 3820 proxies (and their VOMS ACs).

Signatures, validity windows, CRLs, proxy subject and path-length rules are checked by
OpenSSL itself (X509StoreContext with ALLOW_PROXY_CERTS and CRL_CHECK/CRL_CHECK_ALL).
The structural proxy rules are also checked here first so refusals carry a precise
reason; limited proxies, namespaces, banned DNs and VOMS are application rules."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from cryptography import x509
from OpenSSL import crypto

from gproc.security.asn1 import (
    OID_INDEPENDENT,
    OID_INHERIT_ALL,
    OID_LIMITED,
    OID_PROXY_CERT_INFO,
    OID_PROXY_CERT_INFO_OLD,
    parse_proxy_cert_info,
)
from gproc.security.cache import IdentityCache
from gproc.security.errors import (
    BannedCredential,
    CredentialError,
    MalformedCredential,
    ProxyError,
    Reason,
    UntrustedCredential,
    ValidityError,
    VomsError,
)
from gproc.security.identity import (
    AcInfo,
    AcRejection,
    Identity,
    ProxyType,
    grid_dn,
    normalise_grid_dn,
    rfc2253_dn,
)
from gproc.security.pem import split_chain
from gproc.security.truststore import TrustSnapshot, TrustStore
from gproc.security.voms import VomsTrust, extract_acs

_LANGUAGES = {
    OID_INHERIT_ALL: ProxyType.IMPERSONATION,
    OID_LIMITED: ProxyType.LIMITED,
    OID_INDEPENDENT: ProxyType.INDEPENDENT,
}
_PCI_OIDS = (
    x509.ObjectIdentifier(OID_PROXY_CERT_INFO),
    x509.ObjectIdentifier(OID_PROXY_CERT_INFO_OLD),
)
_F = crypto.X509StoreFlags
# OpenSSL X509_V_ERR_* codes -> (reason, exception class)
_OSSL_ERRORS: dict[int, tuple[Reason, type[CredentialError]]] = {
    2: (Reason.UNKNOWN_CA, UntrustedCredential),
    3: (Reason.CRL_MISSING, UntrustedCredential),
    7: (Reason.BAD_SIGNATURE, UntrustedCredential),
    9: (Reason.NOT_YET_VALID, ValidityError),
    10: (Reason.EXPIRED, ValidityError),
    11: (Reason.CRL_EXPIRED, UntrustedCredential),
    12: (Reason.CRL_EXPIRED, UntrustedCredential),
    8: (Reason.BAD_SIGNATURE, UntrustedCredential),
    18: (Reason.UNKNOWN_CA, UntrustedCredential),
    19: (Reason.UNKNOWN_CA, UntrustedCredential),
    20: (Reason.UNKNOWN_CA, UntrustedCredential),
    21: (Reason.UNKNOWN_CA, UntrustedCredential),
    23: (Reason.REVOKED, UntrustedCredential),
    24: (Reason.INVALID_CA, UntrustedCredential),
    38: (Reason.PROXY_PATH_LENGTH, ProxyError),
    40: (Reason.PROXY_NOT_ALLOWED, ProxyError),
    69: (Reason.PROXY_SUBJECT, ProxyError),
}

ChainInput = bytes | str | Sequence[x509.Certificate]


class Validator:
    """Validates credential chains against a TrustStore and (optionally) a vomsdir.

    One instance per service; it is thread-safe and caches validated identities."""

    def __init__(
        self,
        truststore: TrustStore,
        voms: VomsTrust | None = None,
        *,
        max_chain_length: int = 10,
        banned_dns: Iterable[str] = (),
        cache: IdentityCache | None = None,
        require_crl: bool = True,
        strict_voms: bool = False,
    ) -> None:
        self.truststore = truststore
        self.voms = voms
        self.max_chain_length = max_chain_length
        self.banned = {normalise_grid_dn(d) if d.startswith("/") else d for d in banned_dns}
        self.cache = cache if cache is not None else IdentityCache()
        self.require_crl = require_crl
        self.strict_voms = strict_voms

    def validate(
        self, chain: ChainInput, *, require_full_proxy: bool = False, now: datetime | None = None
    ) -> Identity:
        """Validate `chain` (PEM/DER bytes, leaf first, or certificates) -> Identity.

        Raises a CredentialError subclass whose `.reason` says why it was refused.
        `now` validates at another time (and bypasses the cache)."""
        ders = split_chain(chain, self.max_chain_length)
        digest = hashlib.sha256(b"".join(ders)).digest()
        snap = self.truststore.snapshot()
        key = (digest, snap.generation, self.voms.generation if self.voms else 0)
        ident = self.cache.get(key, datetime.now(UTC)) if now is None else None
        if ident is None:
            ident = self._validate_cold(ders, digest, snap, now)
            # an AC that becomes valid later must not stay rejected in the cache
            if now is None and all(
                r.reason is not Reason.AC_NOT_YET_VALID for r in ident.rejected_acs
            ):
                self.cache.put(key, ident)
        self._check_policy(ident, require_full_proxy)
        return ident

    def _check_policy(self, ident: Identity, require_full_proxy: bool) -> None:
        if ident.subject in self.banned or normalise_grid_dn(ident.subject_grid) in self.banned:
            raise BannedCredential(Reason.BANNED, f"identity {ident.subject_grid} is banned")
        if require_full_proxy and ident.limited:
            raise ProxyError(
                Reason.LIMITED_PROXY,
                f"a limited proxy of {ident.subject_grid} cannot be used here: "
                "a full proxy is required",
            )
        if self.strict_voms and ident.rejected_acs:
            bad = ident.rejected_acs[0]
            raise VomsError(bad.reason, bad.describe())

    def _validate_cold(
        self, ders: list[bytes], digest: bytes, snap: TrustSnapshot, now: datetime | None
    ) -> Identity:
        certs = _load_certs(ders)
        ordered = _order(certs)
        proxies, eec, rest = _split_proxies(ordered)
        kinds = _check_proxies(proxies, eec)
        verified = self._openssl_verify(ordered[0], ordered[1:], eec, snap, now)
        ca = _check_namespaces(verified, snap)
        acs: list[AcInfo] = []
        rejected: list[AcRejection] = []
        # VOMS ACs come from the proxy nearest the leaf that carries them (as VOMS does)
        ac_source = next((p for p in proxies if _has_acs(p, rejected)), None)
        if ac_source is not None and self.voms is not None:
            acs, more = self.voms.verify(extract_acs(ac_source), eec, snap, now)
            rejected.extend(more)
        not_after = min(
            [c.not_valid_after_utc for c in (*proxies, eec, *rest)] + [a.not_after for a in acs]
        )
        return Identity(
            subject=rfc2253_dn(eec.subject),
            subject_grid=grid_dn(eec.subject),
            issuer=rfc2253_dn(ca.subject),
            issuer_grid=grid_dn(ca.subject),
            proxy_type=_overall_type(kinds),
            proxy_depth=len(proxies),
            not_after=not_after,
            fingerprint=digest.hex(),
            acs=tuple(acs),
            rejected_acs=tuple(rejected),
        )

    def _openssl_verify(
        self,
        leaf: x509.Certificate,
        untrusted: list[x509.Certificate],
        eec: x509.Certificate,
        snap: TrustSnapshot,
        now: datetime | None,
    ) -> list[x509.Certificate]:
        flags = _F.ALLOW_PROXY_CERTS
        if self.require_crl or snap.has_crl_for(eec.issuer):
            flags |= _F.CRL_CHECK | _F.CRL_CHECK_ALL
        store = snap.make_store(flags, now)
        ctx = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(leaf),
            [crypto.X509.from_cryptography(c) for c in untrusted],
        )
        try:
            return [c.to_cryptography() for c in ctx.get_verified_chain()]
        except crypto.X509StoreContextError as exc:
            raise _map_openssl_error(exc) from exc


def _has_acs(proxy: x509.Certificate, rejected: list[AcRejection]) -> bool:
    """True if `proxy` carries parseable ACs; a garbled AC extension is recorded."""
    try:
        return bool(extract_acs(proxy))
    except ValueError as exc:
        rejected.append(AcRejection(Reason.AC_MALFORMED, f"unparseable VOMS extension: {exc}"))
        return False


def _load_certs(ders: list[bytes]) -> list[x509.Certificate]:
    certs = []
    for i, der in enumerate(ders):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise MalformedCredential(
                Reason.MALFORMED, f"certificate #{i} is not valid DER: {exc}"
            ) from exc
    return certs


def _order(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, each certificate followed by its issuer; anything else is refused."""
    subjects = {c.subject.public_bytes(): c for c in certs}
    issued = {c.issuer.public_bytes() for c in certs if c.issuer != c.subject}
    leaves = [c for c in certs if c.subject.public_bytes() not in issued]
    if len(leaves) != 1 or len(subjects) != len(certs):
        raise UntrustedCredential(
            Reason.CHAIN_BROKEN, "the certificates do not form a single chain"
        )
    ordered = [leaves[0]]
    while (nxt := subjects.get(ordered[-1].issuer.public_bytes())) and nxt not in ordered:
        ordered.append(nxt)
    if len(ordered) != len(certs):
        raise UntrustedCredential(
            Reason.CHAIN_BROKEN, "some certificates are not part of the leaf's chain"
        )
    return ordered


def proxy_language(cert: x509.Certificate) -> tuple[str, int | None, bool] | None:
    """(policy language OID, path length, critical) of a proxy; None for other certs."""
    for oid in _PCI_OIDS:
        try:
            ext = cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        try:
            lang, plen = parse_proxy_cert_info(ext.value.public_bytes())
        except ValueError as exc:
            raise ProxyError(Reason.PROXY_POLICY, f"unparseable ProxyCertInfo: {exc}") from exc
        return lang, plen, ext.critical
    return None


def _split_proxies(
    ordered: list[x509.Certificate],
) -> tuple[list[x509.Certificate], x509.Certificate, list[x509.Certificate]]:
    """(proxies leaf first, end-entity certificate, certificates above it)."""
    n = 0
    while n < len(ordered) and proxy_language(ordered[n]) is not None:
        n += 1
    if n == len(ordered):
        raise ProxyError(
            Reason.MISSING_EEC,
            "the chain holds only proxies: the end-entity certificate is missing",
        )
    if any(proxy_language(c) for c in ordered[n:]):
        raise ProxyError(Reason.CHAIN_BROKEN, "a proxy appears above the end-entity certificate")
    return ordered[:n], ordered[n], ordered[n + 1 :]


def _check_proxies(proxies: list[x509.Certificate], eec: x509.Certificate) -> list[ProxyType]:
    """RFC 3820 rules, from the proxy nearest the EEC down to the leaf."""
    kinds: list[ProxyType] = []
    limits: list[int | None] = []
    parent = eec
    for depth, proxy in enumerate(reversed(proxies)):
        lang, plen, critical = proxy_language(proxy)  # type: ignore[misc]
        kind = _proxy_kind(proxy, lang, critical)
        _check_proxy_subject(proxy, parent)
        for above, limit in enumerate(limits):
            if limit is not None and depth - above > limit:
                raise ProxyError(
                    Reason.PROXY_PATH_LENGTH,
                    f"proxy {grid_dn(proxy.subject)} exceeds the proxy path "
                    f"length {limit} set by an issuing proxy",
                )
        if kinds and kinds[-1] is ProxyType.LIMITED and kind is not ProxyType.LIMITED:
            raise ProxyError(
                Reason.PROXY_POLICY,
                f"limited proxy {grid_dn(parent.subject)} "
                f"issued a non-limited proxy {grid_dn(proxy.subject)}",
            )
        kinds.append(kind)
        limits.append(plen)
        parent = proxy
    return kinds


def _proxy_kind(proxy: x509.Certificate, lang: str, critical: bool) -> ProxyType:
    if not critical:
        raise ProxyError(
            Reason.PROXY_POLICY, f"ProxyCertInfo of {grid_dn(proxy.subject)} is not marked critical"
        )
    if lang not in _LANGUAGES:
        raise ProxyError(
            Reason.PROXY_POLICY,
            f"proxy {grid_dn(proxy.subject)} uses unsupported policy language {lang}",
        )
    try:
        if proxy.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise ProxyError(Reason.PROXY_POLICY, f"proxy {grid_dn(proxy.subject)} claims CA=true")
    except x509.ExtensionNotFound:
        pass
    return _LANGUAGES[lang]


def _check_proxy_subject(proxy: x509.Certificate, parent: x509.Certificate) -> None:
    if proxy.issuer != parent.subject:
        raise UntrustedCredential(
            Reason.CHAIN_BROKEN,
            f"proxy {grid_dn(proxy.subject)} names "
            f"issuer {grid_dn(proxy.issuer)}, not {grid_dn(parent.subject)}",
        )
    rdns, prdns = list(proxy.subject.rdns), list(parent.subject.rdns)
    last = rdns[-1] if rdns else None
    if (
        rdns[:-1] != prdns
        or last is None
        or len(last) != 1
        or next(iter(last)).oid != x509.NameOID.COMMON_NAME
    ):
        raise ProxyError(
            Reason.PROXY_SUBJECT,
            f"proxy subject {grid_dn(proxy.subject)} is not its issuer's subject "
            f"{grid_dn(parent.subject)} plus one CN",
        )


def _overall_type(kinds: list[ProxyType]) -> ProxyType:
    if not kinds:
        return ProxyType.NONE
    for kind in (ProxyType.LIMITED, ProxyType.INDEPENDENT):
        if kind in kinds:
            return kind
    return ProxyType.IMPERSONATION


def _check_namespaces(verified: list[x509.Certificate], snap: TrustSnapshot) -> x509.Certificate:
    """Apply signing_policy/namespaces to every CA-issued cert; return the EEC's CA."""
    non_proxy = [c for c in verified if proxy_language(c) is None]
    for cert, issuer in zip(non_proxy, non_proxy[1:], strict=False):
        if not snap.namespace_permits(grid_dn(issuer.subject), grid_dn(cert.subject)):
            raise UntrustedCredential(
                Reason.NAMESPACE_VIOLATION,
                f"CA {grid_dn(issuer.subject)} may not sign "
                f"{grid_dn(cert.subject)} (signing policy)",
            )
    return non_proxy[1] if len(non_proxy) > 1 else non_proxy[0]


def _map_openssl_error(exc: crypto.X509StoreContextError) -> CredentialError:
    """OpenSSL's (code, depth, text) -> typed error naming the offending certificate."""
    errors = list(exc.errors) if isinstance(exc.errors, list | tuple) else []
    code, depth, text = (errors + [-1, -1, str(exc)])[:3]
    reason, cls = _OSSL_ERRORS.get(int(code), (Reason.UNTRUSTED, UntrustedCredential))
    who = grid_dn(exc.certificate.to_cryptography().subject) if exc.certificate else "?"
    return cls(reason, f"{text} (certificate {who}, depth {depth})")


def validate_chain(
    chain: ChainInput,
    truststore: TrustStore,
    vomsdir: VomsTrust | str | None = None,
    *,
    require_full_proxy: bool = False,
    now: datetime | None = None,
    banned_dns: Iterable[str] = (),
    max_chain_length: int = 10,
) -> Identity:
    """One-shot validation (no cache); services should keep a Validator instead."""
    voms = VomsTrust(vomsdir) if isinstance(vomsdir, str) else vomsdir
    v = Validator(
        truststore,
        voms,
        max_chain_length=max_chain_length,
        banned_dns=banned_dns,
        cache=IdentityCache(0),
    )
    return v.validate(chain, require_full_proxy=require_full_proxy, now=now)
