"""Proxy delegation in the GridSite/CREAM/ARC style: the private key never travels.

The service makes a key pair and hands out only a certificate request
(:meth:`DelegationStore.get_request`); the client signs it with its own proxy
(:func:`sign_request`), making an RFC 3820 proxy of its proxy, and sends back the
certificate chain (:meth:`DelegationStore.put_proxy`). The service checks that the
chain is valid, belongs to the caller and matches the key it kept, then stores a
complete proxy file for the user's jobs (``x509userproxy``) and data staging.

Store layout (``root`` mode 0700, files 0600), named by SHA-256 of DN + id so no
user string reaches a path: ``<h>.req`` pending key, ``<h>.pem`` proxy file
(cert, key, chain), ``<h>.json`` metadata. Renewal replaces files with os.replace.

A delegation may ask to be renewed from MyProxy (:meth:`DelegationStore.ask_renewal`):
the metadata then names the MyProxy username and server (never a passphrase), and the
service's renewer (``services/renewal.py``) puts a fresh proxy of the same identity in
place with :meth:`DelegationStore.replace_proxy` before the old one expires.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from gproc.security.asn1 import (
    OID_INHERIT_ALL,
    OID_LIMITED,
    OID_PROXY_CERT_INFO,
    OID_PROXY_CERT_INFO_OLD,
    OID_VOMS_ACSEQ,
    parse_proxy_cert_info,
    proxy_cert_info_der,
)
from gproc.security.errors import CredentialError, SecurityError, ValidityError
from gproc.security.identity import Identity, normalise_grid_dn, same_dn
from gproc.security.wsgi_auth import Validator, validate_with

DELEGATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_PEM = serialization.Encoding.PEM
_CLOCK_SKEW = timedelta(minutes=5)


class DelegationReason(StrEnum):
    """Stable reasons for refusing a delegation step."""

    BAD_ID = "bad-delegation-id"
    UNKNOWN_ID = "unknown-delegation-id"
    REQUEST_EXPIRED = "request-expired"
    MALFORMED = "malformed"
    KEY_MISMATCH = "key-mismatch"
    DN_MISMATCH = "dn-mismatch"
    EXPIRED = "expired"
    INVALID = "invalid-chain"
    NOT_LATER = "not-later"


class DelegationError(SecurityError):
    """A delegation step was refused; ``reason`` is machine readable."""

    def __init__(self, reason: DelegationReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class RenewalRequest:
    """Where a delegated proxy is renewed from: a MyProxy credential the service may
    renew (stored with ``myproxy-init -R <service DN>``)."""

    username: str
    server: str  # host:port of the MyProxy server


@dataclass(frozen=True)
class DelegationInfo:
    """A stored delegated proxy."""

    delegation_id: str
    dn: str  # slash-form end-entity DN of the owner
    not_after: datetime
    path: Path
    renewal: RenewalRequest | None = None


class DelegationStore:
    """Server side of delegation; thread-safe, state kept only in files."""

    def __init__(
        self,
        root: str | Path,
        validator: Validator,
        *,
        key_bits: int = 2048,
        request_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self.root = Path(root)
        self.validator = validator
        self.key_bits = key_bits
        self.request_ttl = request_ttl
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)

    # -- server operations -------------------------------------------------------------
    def get_request(self, identity: Identity, delegation_id: str) -> bytes:
        """New key pair + PEM certificate request for ``delegation_id`` (also renewal).

        A previous pending request for the same id is superseded; a stored proxy stays
        in use until the new one arrives."""
        base = self._base(identity.subject_grid, delegation_id)
        key = rsa.generate_private_key(public_exponent=65537, key_size=self.key_bits)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]))
            .sign(key, hashes.SHA256())
        )
        _write_atomic(base.with_suffix(".req"), _key_pem(key))
        return csr.public_bytes(_PEM)

    def put_proxy(
        self, identity: Identity, delegation_id: str, chain_pem: bytes | str
    ) -> DelegationInfo:
        """Check and store the signed chain for a pending request of this caller."""
        base = self._base(identity.subject_grid, delegation_id)
        chain = _load_chain(chain_pem)
        with self._lock:
            key = self._pending_key(base)
            if _spki(chain[0].public_key()) != _spki(key.public_key()):
                raise DelegationError(
                    DelegationReason.KEY_MISMATCH,
                    "the certificate is not for the key of this request",
                )
            self._check_chain(identity, chain)
            proxy = _cert_pem(chain[0]) + _key_pem(key) + b"".join(_cert_pem(c) for c in chain[1:])
            info = DelegationInfo(
                delegation_id,
                identity.subject_grid,
                chain[0].not_valid_after_utc,
                base.with_suffix(".pem"),
                _read_meta(base).renewal if base.with_suffix(".json").exists() else None,
            )
            _write_atomic(info.path, proxy)
            _write_atomic(base.with_suffix(".json"), _meta(info))
            base.with_suffix(".req").unlink(missing_ok=True)
        return info

    def path_for(self, who: Identity | str, delegation_id: str) -> Path:
        """Proxy file for jobs/staging; refuses unknown and expired delegations."""
        return self.info(who, delegation_id).path

    def info(self, who: Identity | str, delegation_id: str) -> DelegationInfo:
        """Metadata of a stored, unexpired delegation."""
        dn = who.subject_grid if isinstance(who, Identity) else who
        base = self._base(dn, delegation_id)
        try:
            info = _read_meta(base)
        except FileNotFoundError:
            raise DelegationError(
                DelegationReason.UNKNOWN_ID, f"no delegated proxy {delegation_id!r}"
            ) from None
        if info.not_after <= datetime.now(UTC):
            raise DelegationError(
                DelegationReason.EXPIRED,
                f"delegated proxy {delegation_id!r} expired {info.not_after}",
            )
        return info

    def list_for(self, who: Identity | str) -> list[DelegationInfo]:
        """The caller's unexpired delegations (scan of metadata; stores are small)."""
        dn = who.subject_grid if isinstance(who, Identity) else who
        now, out = datetime.now(UTC), []
        for meta_path in self.root.glob("*.json"):
            info = _read_meta(meta_path.with_suffix(""))
            if same_dn(info.dn, dn) and info.not_after > now:
                out.append(info)
        return sorted(out, key=lambda i: i.delegation_id)

    # -- renewal from MyProxy ------------------------------------------------------------
    def ask_renewal(
        self, who: Identity | str, delegation_id: str, renewal: RenewalRequest | None
    ) -> DelegationInfo:
        """Record (or, with None, drop) where this unexpired delegation is renewed from."""
        with self._lock:
            info = replace(self.info(who, delegation_id), renewal=renewal)
            _write_atomic(info.path.with_suffix(".json"), _meta(info))
        return info

    def due_for_renewal(
        self, before: timedelta, now: datetime | None = None
    ) -> list[DelegationInfo]:
        """Delegations that asked for renewal and expire within ``before`` (and have not
        expired: renewal is authorised by the still valid proxy), soonest first."""
        now = now or datetime.now(UTC)
        out = []
        for meta_path in self.root.glob("*.json"):
            try:
                info = _read_meta(meta_path.with_suffix(""))
            except (FileNotFoundError, ValueError, KeyError):
                continue  # removed meanwhile, or not ours
            if info.renewal is not None and now < info.not_after <= now + before:
                out.append(info)
        return sorted(out, key=lambda i: i.not_after)

    def replace_proxy(
        self, who: Identity | str, delegation_id: str, proxy_pem: bytes
    ) -> DelegationInfo:
        """Put a renewed proxy file (certificate, key, chain) in place of the stored one,
        atomically: it must validate, be of the same identity and end later."""
        try:
            certs, _key = _load_credential(proxy_pem)
        except ValueError as exc:
            raise DelegationError(DelegationReason.MALFORMED, str(exc)) from None
        with self._lock:
            old = self.info(who, delegation_id)
            try:
                renewed = validate_with(self.validator, certs)
            except CredentialError as exc:
                raise DelegationError(DelegationReason.INVALID, str(exc)) from None
            if renewed.proxy_depth < 1 or not same_dn(renewed.subject_grid, old.dn):
                raise DelegationError(
                    DelegationReason.DN_MISMATCH,
                    f"the renewed proxy is of {renewed.subject_grid}, not of {old.dn}",
                )
            if certs[0].not_valid_after_utc <= old.not_after:
                raise DelegationError(
                    DelegationReason.NOT_LATER, "the renewed proxy does not end later"
                )
            info = replace(old, not_after=certs[0].not_valid_after_utc)
            _write_atomic(info.path, proxy_pem)
            _write_atomic(info.path.with_suffix(".json"), _meta(info))
        return info

    def destroy(self, who: Identity | str, delegation_id: str) -> bool:
        """Remove a delegation and any pending request; True when something existed."""
        dn = who.subject_grid if isinstance(who, Identity) else who
        base = self._base(dn, delegation_id)
        found = False
        for suffix in (".pem", ".json", ".req"):
            path = base.with_suffix(suffix)
            if path.exists():
                path.unlink()
                found = True
        return found

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete expired proxies and stale requests; returns how many were removed."""
        now = now or datetime.now(UTC)
        removed = 0
        for meta_path in self.root.glob("*.json"):
            meta = json.loads(meta_path.read_text())
            if datetime.fromisoformat(meta["not_after"]) <= now:
                meta_path.with_suffix(".pem").unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                removed += 1
        for req in self.root.glob("*.req"):
            age = now - datetime.fromtimestamp(req.stat().st_mtime, UTC)
            if age > self.request_ttl:
                req.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- helpers ------------------------------------------------------------------------
    def _base(self, dn: str, delegation_id: str) -> Path:
        if not isinstance(delegation_id, str) or not DELEGATION_ID.match(delegation_id):
            raise DelegationError(
                DelegationReason.BAD_ID, f"delegation id must match {DELEGATION_ID.pattern}"
            )
        canon = "/".join(f"{k}={v}" for k, v in normalise_grid_dn(dn))
        digest = hashlib.sha256(f"{canon}\0{delegation_id}".encode()).hexdigest()
        return self.root / digest

    def _pending_key(self, base: Path) -> rsa.RSAPrivateKey:
        req = base.with_suffix(".req")
        try:
            data, mtime = req.read_bytes(), req.stat().st_mtime
        except FileNotFoundError:
            raise DelegationError(
                DelegationReason.UNKNOWN_ID, "no pending request for this delegation id"
            ) from None
        if datetime.now(UTC) - datetime.fromtimestamp(mtime, UTC) > self.request_ttl:
            req.unlink(missing_ok=True)
            raise DelegationError(
                DelegationReason.REQUEST_EXPIRED,
                "the certificate request expired; ask for a new one",
            )
        key = serialization.load_pem_private_key(data, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def _check_chain(self, identity: Identity, chain: Sequence[x509.Certificate]) -> None:
        now = datetime.now(UTC)
        if chain[0].not_valid_after_utc <= now:
            raise DelegationError(
                DelegationReason.EXPIRED,
                f"the delegated proxy expired {chain[0].not_valid_after_utc}",
            )
        try:
            delegated = validate_with(self.validator, chain)
        except ValidityError as exc:
            raise DelegationError(DelegationReason.EXPIRED, str(exc)) from None
        except CredentialError as exc:
            raise DelegationError(DelegationReason.INVALID, str(exc)) from None
        if delegated.proxy_depth < 1:
            raise DelegationError(
                DelegationReason.INVALID, "the delegated credential is not a proxy"
            )
        if not (
            same_dn(delegated.subject_grid, identity.subject_grid)
            and same_dn(delegated.issuer_grid, identity.issuer_grid)
        ):
            raise DelegationError(
                DelegationReason.DN_MISMATCH,
                f"proxy of {delegated.subject_grid} offered by {identity.subject_grid}",
            )


# -- client side ------------------------------------------------------------------------
def sign_request(
    csr_pem: bytes | str,
    proxy_pem: bytes | str,
    lifetime: timedelta = timedelta(hours=12),
    *,
    start: datetime | None = None,
) -> bytes:
    """Sign a delegation request with the caller's proxy (cert, key, chain PEM).

    Makes an RFC 3820 proxy of that proxy: limited stays limited, VOMS ACs are carried
    over, lifetime is capped by the signer's. Returns the new certificate followed by
    the signer's chain (no private key)."""
    csr = x509.load_pem_x509_csr(_bytes(csr_pem))
    if not csr.is_signature_valid:
        raise ValueError("the certificate request signature is invalid")
    certs, key = _load_credential(_bytes(proxy_pem))
    signer = certs[0]
    language = _child_policy(signer)
    begin = max(start or datetime.now(UTC) - _CLOCK_SKEW, signer.not_valid_before_utc)
    end = min(
        begin + lifetime + (_CLOCK_SKEW if start is None else timedelta()),
        signer.not_valid_after_utc,
    )
    serial = x509.random_serial_number()
    cn = x509.RelativeDistinguishedName(
        [x509.NameAttribute(NameOID.COMMON_NAME, str(serial & 0x7FFFFFFF))]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([*signer.subject.rdns, cn]))
        .issuer_name(signer.subject)
        .public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(begin)
        .not_valid_after(end)
        .add_extension(
            x509.KeyUsage(True, False, True, True, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(OID_PROXY_CERT_INFO), proxy_cert_info_der(language)
            ),
            critical=True,
        )
    )
    acs = _extension(signer, OID_VOMS_ACSEQ)
    if acs is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_VOMS_ACSEQ), acs), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return _cert_pem(cert) + b"".join(_cert_pem(c) for c in certs)


def _child_policy(signer: x509.Certificate) -> str:
    """Policy language for a proxy signed by ``signer``; refuse what RFC 3820 forbids."""
    pci = _extension(signer, OID_PROXY_CERT_INFO)
    if pci is None:
        if _extension(signer, OID_PROXY_CERT_INFO_OLD) is not None:
            raise ValueError("pre-RFC (Globus draft) proxies cannot sign; use an RFC 3820 proxy")
        return OID_INHERIT_ALL  # signing with the end-entity certificate itself
    language, path_len = parse_proxy_cert_info(pci)
    if path_len == 0:
        raise ValueError("the signing proxy forbids further delegation (path length 0)")
    if language == OID_LIMITED:
        return OID_LIMITED
    if language != OID_INHERIT_ALL:
        raise ValueError(f"cannot delegate from a proxy with policy {language}")
    return OID_INHERIT_ALL


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _load_credential(pem: bytes) -> tuple[list[x509.Certificate], rsa.RSAPrivateKey]:
    certs = x509.load_pem_x509_certificates(pem)
    marker = re.search(
        rb"-----BEGIN (RSA )?PRIVATE KEY-----.*?-----END (RSA )?PRIVATE KEY-----", pem, re.S
    )
    if marker is None:
        raise ValueError("the proxy file holds no unencrypted private key")
    key = serialization.load_pem_private_key(marker.group(0), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA proxy keys are supported")
    if _spki(key.public_key()) != _spki(certs[0].public_key()):
        raise ValueError("the proxy file's key does not match its first certificate")
    return certs, key


def _load_chain(pem: bytes | str) -> list[x509.Certificate]:
    try:
        data = _bytes(pem)
        if b"PRIVATE KEY" in data:
            raise ValueError("a private key must never be sent")
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise DelegationError(DelegationReason.MALFORMED, str(exc)) from None
    if len(certs) < 2:
        raise DelegationError(
            DelegationReason.MALFORMED, "send the new proxy followed by its signing chain"
        )
    return certs


def _meta(info: DelegationInfo) -> bytes:
    meta: dict[str, object] = {
        "id": info.delegation_id,
        "dn": info.dn,
        "not_after": info.not_after.isoformat(),
    }
    if info.renewal is not None:
        meta["renewal"] = {"username": info.renewal.username, "server": info.renewal.server}
    return json.dumps(meta).encode()


def _read_meta(base: Path) -> DelegationInfo:
    """The metadata beside ``<base>.pem`` (FileNotFoundError when there is none)."""
    meta = json.loads(base.with_suffix(".json").read_text())
    renewal = meta.get("renewal")
    return DelegationInfo(
        meta["id"],
        meta["dn"],
        datetime.fromisoformat(meta["not_after"]),
        base.with_suffix(".pem"),
        RenewalRequest(str(renewal["username"]), str(renewal["server"])) if renewal else None,
    )


def _spki(public_key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(_PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        _PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _bytes(data: bytes | str) -> bytes:
    return data.encode("ascii") if isinstance(data, str) else data


def _write_atomic(path: Path, data: bytes) -> None:
    """Write mode 0600 via a temporary file and os.replace (readers never see half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
