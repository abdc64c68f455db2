"""VOMS attribute certificates: extraction from proxies and verification against a
vomsdir configured the VOMS way.

As VOMS does, the signer of an AC carrying its certificate is checked against
`<vomsdir>/<vo>/<host>.lsc`, `host` taken from the AC's policy authority
(`<vo>://<host>:<port>`); without that file (or without an embedded certificate) a
server certificate `<vomsdir>/<vo>/*.pem` whose subject is the AC's issuer is used.
The holder's baseCertificateID must carry the holder's serial and name either its
issuer (RFC 5755, `voms-proxy-fake -newformat`) or its subject (the older encoding),
as VOMS accepts both.

An AC that fails any check contributes no attributes; the rejection names the AC and
its problem so the caller can report it (see Identity.rejected_acs)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from OpenSSL import crypto

from gproc.security.asn1 import (
    OID_AUTHORITY_KEY_ID,
    OID_NO_REV_AVAIL,
    OID_VOMS_ACSEQ,
    OID_VOMS_CERTS,
    OID_VOMS_FQAN,
    OID_VOMS_TAGS,
    VomsAcCerts,
    VomsAcSequence,
)
from gproc.security.errors import Reason, TrustStoreError
from gproc.security.identity import AcInfo, AcRejection, Fqan, grid_dn, same_dn
from gproc.security.truststore import TrustSnapshot

DEFAULT_VOMSDIR = "/etc/grid-security/vomsdir"
_KNOWN_AC_EXTS = {OID_NO_REV_AVAIL, OID_AUTHORITY_KEY_ID, OID_VOMS_CERTS, OID_VOMS_TAGS}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_NEXT_CHAIN = "------ NEXT CHAIN ------"


class AcRefused(Exception):  # noqa: N818 - internal control flow, never escapes this module
    """One AC failed a check."""

    def __init__(self, reason: Reason, message: str, vo: str | None = None) -> None:
        super().__init__(message)
        self.rejection = AcRejection(reason, message, vo)


@dataclass(frozen=True)
class VoTrust:
    """Trusted VOMS servers of one VO."""

    lsc: Mapping[str, tuple[tuple[str, ...], ...]]  # host -> (server DN, CA DN, ...) chains
    certs: tuple[x509.Certificate, ...]  # directly trusted server certificates


def extract_acs(cert: x509.Certificate) -> list[cms.AttributeCertificateV2]:
    """ACs carried by a proxy (extension ...100.100.5, nested twice); [] if none.

    Raises ValueError when the extension is present but not parseable."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_VOMS_ACSEQ))
    except x509.ExtensionNotFound:
        return []
    raw = ext.value.public_bytes()
    outer = VomsAcSequence.load(raw, strict=True)
    return [ac for inner in outer for ac in inner]


def _parse_lsc(text: str) -> list[tuple[str, ...]]:
    chains: list[tuple[str, ...]] = []
    for block in text.split(_NEXT_CHAIN):
        dns = tuple(
            ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")
        )
        if dns:
            chains.append(dns)
    return chains


class VomsTrust:
    """The vomsdir (X509_VOMS_DIR convention), reloaded when it changes."""

    def __init__(
        self, vomsdir: str | os.PathLike[str] | None = None, *, check_interval: float = 1.0
    ) -> None:
        self.path = Path(vomsdir or os.environ.get("X509_VOMS_DIR") or DEFAULT_VOMSDIR)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._sig: object = None
        self._checked = 0.0
        self._vos: dict[str, VoTrust] = {}
        self._generation = 0
        self.refresh(force=True)

    @property
    def generation(self) -> int:
        """Increments whenever the vomsdir content is reloaded (after a change check)."""
        self._maybe_refresh()
        return self._generation

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._checked >= self.check_interval:
            self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Reload if any file under the vomsdir changed; True when reloaded."""
        with self._lock:
            self._checked = time.monotonic()
            sig = self._signature()
            if not force and sig == self._sig:
                return False
            self._vos = {
                d.name: self._load_vo(d) for d in sorted(self.path.iterdir()) if d.is_dir()
            }
            self._sig, self._generation = sig, self._generation + 1
            return True

    def _signature(self) -> object:
        try:
            return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in self.path.rglob("*")))
        except OSError as exc:
            raise TrustStoreError(f"vomsdir {self.path} is unreadable: {exc}") from exc

    @staticmethod
    def _load_vo(vodir: Path) -> VoTrust:
        lsc: dict[str, tuple[tuple[str, ...], ...]] = {}
        certs: list[x509.Certificate] = []
        for f in sorted(vodir.iterdir()):
            if f.suffix == ".lsc":
                lsc[f.stem] = tuple(_parse_lsc(f.read_text(errors="replace")))
            elif f.suffix == ".pem":
                certs.extend(x509.load_pem_x509_certificates(f.read_bytes()))
        return VoTrust(lsc, tuple(certs))

    def vo(self, name: str) -> VoTrust | None:
        """Trust entries of VO `name`, or None if the VO is not configured."""
        self._maybe_refresh()
        return self._vos.get(name)

    def verify(
        self,
        acs: list[cms.AttributeCertificateV2],
        holder: x509.Certificate,
        trust: TrustSnapshot,
        now: datetime | None = None,
    ) -> tuple[list[AcInfo], list[AcRejection]]:
        """Check every AC; return (accepted in order, rejected with reasons)."""
        when = now or datetime.now(UTC)
        good: list[AcInfo] = []
        bad: list[AcRejection] = []
        for index, ac in enumerate(acs):
            try:
                good.append(self._verify_one(ac, holder, trust, when))
            except AcRefused as exc:
                bad.append(_named(exc.rejection, ac, index))
            except (ValueError, KeyError, TypeError) as exc:
                bad.append(
                    _named(AcRejection(Reason.AC_MALFORMED, f"unparseable AC: {exc}"), ac, index)
                )
        return good, bad

    def _verify_one(
        self,
        ac: cms.AttributeCertificateV2,
        holder: x509.Certificate,
        trust: TrustSnapshot,
        when: datetime,
    ) -> AcInfo:
        info = ac["ac_info"]
        vo, uri, fqans = _fqans(info)
        vot = self.vo(vo)
        if vot is None:
            raise AcRefused(Reason.AC_UNKNOWN_VO, f"no vomsdir entry for VO {vo!r}", vo)
        issuer_dn = _issuer_dn(info)
        signer = _trusted_signer(info, issuer_dn, vot, _uri_host(uri, vo), trust, when, vo)
        _check_signature(ac, signer, vo)
        start = info["att_cert_validity_period"]["not_before_time"].native
        end = info["att_cert_validity_period"]["not_after_time"].native
        if when < start:
            raise AcRefused(Reason.AC_NOT_YET_VALID, f"AC of VO {vo} not valid before {start}", vo)
        if when > end:
            raise AcRefused(Reason.AC_EXPIRED, f"AC of VO {vo} expired at {end}", vo)
        _check_holder(info, holder, vo)
        _check_critical(info, vo)
        return AcInfo(vo, uri, issuer_dn, int(info["serial_number"].native), start, end, fqans)


def _fqans(info: cms.AttributeCertificateInfoV2) -> tuple[str, str, tuple[Fqan, ...]]:
    for attr in info["attributes"]:
        if attr["type"].dotted != OID_VOMS_FQAN:
            continue
        syntax = cms.IetfAttrSyntax.load(attr["values"][0].dump())
        authority = syntax["policy_authority"]
        ref = str(authority[0].native) if authority.native else ""
        vo, _, uri = ref.partition("://")
        values = [v.chosen.native for v in syntax["values"] if v.name == "octets"]
        fqans = tuple(Fqan.parse(v.decode()) for v in values)
        vo = vo or (fqans[0].vo if fqans else "")
        if not fqans or any(f.vo != vo for f in fqans):
            raise AcRefused(Reason.AC_MALFORMED, f"AC FQANs do not all belong to VO {vo!r}", vo)
        return vo, uri, fqans
    raise AcRefused(Reason.AC_MALFORMED, "AC carries no VOMS FQAN attribute")


def _named(rejection: AcRejection, ac: cms.AttributeCertificateV2, index: int) -> AcRejection:
    """The rejection with the AC's position, serial and issuer (those still readable)."""
    serial: int | None
    issuer: str | None
    try:
        serial = int(ac["ac_info"]["serial_number"].native)
    except (ValueError, KeyError, TypeError):
        serial = None
    try:
        issuer = _issuer_dn(ac["ac_info"])
    except (AcRefused, ValueError, KeyError, TypeError):
        issuer = None
    return replace(rejection, index=index, serial=serial, issuer=issuer)


def _uri_host(uri: str, vo: str) -> str:
    """`host` of the policy authority's `host:port`: the name of the VO's LSC file."""
    host, sep, _ = uri.partition(":")
    if not sep or not host:
        raise AcRefused(
            Reason.AC_MALFORMED, f"AC policy authority {vo}://{uri} does not name host:port", vo
        )
    return host


def _asn1_name_dn(name: ax.Name) -> str:
    """Slash DN of an asn1crypto Name (cryptography has no public Name loader)."""
    rdns = [
        x509.RelativeDistinguishedName([_attr(a["type"].dotted, a["value"].native) for a in rdn])
        for rdn in name.chosen
    ]
    return grid_dn(x509.Name(rdns))


def _attr(oid: str, value: object) -> x509.NameAttribute:
    return x509.NameAttribute(x509.ObjectIdentifier(oid), str(value), _validate=False)


def _issuer_dn(info: cms.AttributeCertificateInfoV2) -> str:
    issuer = info["issuer"]
    names = issuer.chosen["issuer_name"] if issuer.name == "v2_form" else issuer.chosen
    for gn in names:
        if gn.name == "directory_name":
            return _asn1_name_dn(gn.chosen)
    raise AcRefused(Reason.AC_MALFORMED, "AC issuer has no directory name")


def _embedded_certs(info: cms.AttributeCertificateInfoV2) -> list[x509.Certificate]:
    for ext in info["extensions"] or []:
        if ext["extn_id"].dotted == OID_VOMS_CERTS:
            seq = VomsAcCerts.load(ext["extn_value"].contents)
            return [x509.load_der_x509_certificate(c.dump()) for inner in seq for c in inner]
    return []


def _trusted_signer(
    info: cms.AttributeCertificateInfoV2,
    issuer_dn: str,
    vot: VoTrust,
    host: str,
    trust: TrustSnapshot,
    when: datetime,
    vo: str,
) -> x509.Certificate:
    """The AC signer: an embedded cert matching `<vo>/<host>.lsc` and valid to a trusted
    CA (that file decides when it exists), else a server certificate of the vomsdir."""
    embedded = _embedded_certs(info)
    chains = vot.lsc.get(host)
    lsc_name = f"{vo}/{host}.lsc"
    if embedded and chains is not None:
        signer = embedded[0]
        if not same_dn(grid_dn(signer.subject), issuer_dn):
            raise AcRefused(
                Reason.AC_UNTRUSTED_SIGNER,
                f"AC issuer {issuer_dn} is not its embedded signer {grid_dn(signer.subject)}",
                vo,
            )
        if not any(_lsc_matches(ch, embedded) for ch in chains):
            raise AcRefused(
                Reason.AC_UNTRUSTED_SIGNER,
                f"AC signer {issuer_dn} (CA {grid_dn(signer.issuer)}) does not match "
                f"the vomsdir's {lsc_name}",
                vo,
            )
        _validate_signer_cert(signer, embedded[1:], trust, when, vo)
        return signer
    for cert in vot.certs:
        if same_dn(grid_dn(cert.subject), issuer_dn):
            if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
                raise AcRefused(
                    Reason.AC_UNTRUSTED_SIGNER,
                    f"VOMS server certificate {issuer_dn} is outside its validity",
                    vo,
                )
            return cert
    raise AcRefused(
        Reason.AC_UNTRUSTED_SIGNER,
        f"AC signer {issuer_dn} is not a trusted VOMS server of VO {vo} (no {lsc_name} "
        "in the vomsdir for an AC carrying its signer, no server certificate of that DN)",
        vo,
    )


def _lsc_matches(chain: tuple[str, ...], certs: list[x509.Certificate]) -> bool:
    """LSC lines: server DN, its issuer DN, then further issuers up the chain."""
    if len(chain) < 2 or not same_dn(chain[0], grid_dn(certs[0].subject)):
        return False
    issuers = [grid_dn(c.issuer) for c in certs]
    return all(i < len(issuers) and same_dn(dn, issuers[i]) for i, dn in enumerate(chain[1:]))


def _validate_signer_cert(
    signer: x509.Certificate,
    extra: list[x509.Certificate],
    trust: TrustSnapshot,
    when: datetime,
    vo: str,
) -> None:
    flags = crypto.X509StoreFlags.CRL_CHECK if trust.has_crl_for(signer.issuer) else 0
    store = trust.make_store(flags, when)
    chain = [crypto.X509.from_cryptography(c) for c in extra]
    ctx = crypto.X509StoreContext(store, crypto.X509.from_cryptography(signer), chain)
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError as exc:
        raise AcRefused(
            Reason.AC_UNTRUSTED_SIGNER,
            f"VOMS server certificate {grid_dn(signer.subject)} does not validate: {exc}",
            vo,
        ) from exc


def _check_signature(ac: cms.AttributeCertificateV2, signer: x509.Certificate, vo: str) -> None:
    algo = ac["signature_algorithm"]
    tbs = ac["ac_info"].dump()
    sig = ac["signature"].native
    key = signer.public_key()
    try:
        hash_cls = _HASHES[algo.hash_algo]
        if isinstance(key, rsa.RSAPublicKey) and algo.signature_algo == "rsassa_pkcs1v15":
            key.verify(sig, tbs, padding.PKCS1v15(), hash_cls())
        elif isinstance(key, ec.EllipticCurvePublicKey) and algo.signature_algo == "ecdsa":
            key.verify(sig, tbs, ec.ECDSA(hash_cls()))
        else:
            raise AcRefused(
                Reason.AC_BAD_SIGNATURE,
                f"unsupported AC signature algorithm {algo['algorithm'].native}",
                vo,
            )
    except InvalidSignature as exc:
        raise AcRefused(
            Reason.AC_BAD_SIGNATURE,
            f"AC signature does not verify with {grid_dn(signer.subject)}",
            vo,
        ) from exc
    except (KeyError, ValueError) as exc:
        raise AcRefused(Reason.AC_BAD_SIGNATURE, f"unusable AC signature: {exc}", vo) from exc


def _check_holder(info: cms.AttributeCertificateInfoV2, holder: x509.Certificate, vo: str) -> None:
    """baseCertificateID: the holder's serial and one directory name that is the holder
    certificate's issuer or its subject (names compared as X509_NAME_cmp does)."""
    base = info["holder"]["base_certificate_id"]
    if base.native is None:
        raise AcRefused(Reason.AC_HOLDER_MISMATCH, "AC holder has no baseCertificateID", vo)
    if base["serial"].native != holder.serial_number:
        raise AcRefused(
            Reason.AC_HOLDER_MISMATCH,
            f"AC of VO {vo} was issued to another certificate (serial "
            f"{base['serial'].native}), not to {grid_dn(holder.subject)} "
            f"(serial {holder.serial_number})",
            vo,
        )
    names = list(base["issuer"])
    if len(names) != 1 or names[0].name != "directory_name":
        raise AcRefused(
            Reason.AC_HOLDER_MISMATCH, "AC holder does not name exactly one directory name", vo
        )
    named = names[0].chosen
    own = (ax.Name.load(n.public_bytes()) for n in (holder.issuer, holder.subject))
    if not any(named == n for n in own):
        raise AcRefused(
            Reason.AC_HOLDER_MISMATCH,
            f"AC of VO {vo} names holder {_asn1_name_dn(named)}, neither the subject nor "
            f"the issuer of {grid_dn(holder.subject)}",
            vo,
        )


def _check_critical(info: cms.AttributeCertificateInfoV2, vo: str) -> None:
    for ext in info["extensions"] or []:
        if ext["critical"].native and ext["extn_id"].dotted not in _KNOWN_AC_EXTS:
            raise AcRefused(
                Reason.AC_MALFORMED,
                f"AC has unsupported critical extension {ext['extn_id'].dotted}",
                vo,
            )


__all__ = ["VomsTrust", "VoTrust", "extract_acs"]
