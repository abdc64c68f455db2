"""Production credential code: key/certificate loading and RFC 3820 proxy making.

Used by the live services and `gproc proxy-init` (the attribute authority's signing
credential, the user's proxy); the test-PKI tooling in `security/pki.py` builds on it.
A proxy's validity starts a few minutes in the past (clock skew between hosts) but
its lifetime is counted from now, so a proxy asked for N hours lives N hours."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from gproc.security.asn1 import (
    OID_INDEPENDENT,
    OID_INHERIT_ALL,
    OID_LIMITED,
    OID_PROXY_CERT_INFO,
    OID_VOMS_ACSEQ,
    AttributeCertificates,
    VomsAcSequence,
    proxy_cert_info_der,
)
from gproc.security.identity import ProxyType, grid_dn

__all__ = [
    "CLOCK_SKEW",
    "KEY_SIZE",
    "Credential",
    "build_proxy",
    "load_credential",
    "make_proxy",
    "new_key",
    "subject_hash",
    "validity_window",
]

KEY_SIZE = 2048
CLOCK_SKEW = timedelta(minutes=5)  # validity starts this far back, as grid tools do
_LANG = {
    ProxyType.IMPERSONATION: OID_INHERIT_ALL,
    ProxyType.LIMITED: OID_LIMITED,
    ProxyType.INDEPENDENT: OID_INDEPENDENT,
}


def utc_now() -> datetime:
    """Now, to the second (certificate times have no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def validity_window(
    lifetime: timedelta,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[datetime, datetime]:
    """(start, end): start backdated by CLOCK_SKEW unless given; the lifetime runs from
    now (or from an explicit `not_before`), never from the backdated start."""
    now = utc_now()
    start = not_before or (now - CLOCK_SKEW)
    return start, not_after or ((not_before or now) + lifetime)


def new_key(bits: int = KEY_SIZE) -> rsa.RSAPrivateKey:
    """A fresh RSA key (grid tools expect RSA)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass
class Credential:
    """A certificate, its private key and the certificates above it (CA excluded)."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def dn(self) -> str:
        """Slash-form subject DN."""
        return grid_dn(self.cert.subject)

    def cert_pem(self) -> bytes:
        """PEM of the certificate alone."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """Unencrypted traditional (PKCS#1) PEM of the key, as grid tools write it."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def chain_pem(self) -> bytes:
        """PEM of the certificate followed by its chain (leaf first)."""
        return self.cert_pem() + b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in self.chain
        )

    def proxy_pem(self) -> bytes:
        """Globus proxy file layout: certificate, key, then the chain."""
        return (
            self.cert_pem()
            + self.key_pem()
            + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        )

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write cert (0644) and key (0400, as grid tools demand)."""
        cert_path.write_bytes(self.cert_pem())
        write_private(key_path, self.key_pem(), 0o400)

    def write_proxy(self, path: Path) -> Path:
        """Write a proxy file (mode 0600) and return its path."""
        write_private(path, self.proxy_pem(), 0o600)
        return path


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`, never readable by others while being written."""
    if path.exists():
        path.chmod(0o600)
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(mode)


def load_credential(cert_path: Path, key_path: Path | None = None) -> Credential:
    """Read a cert+key pair, or a proxy file (cert, key, chain) when key_path is None.

    Raises OSError (unreadable), ValueError (not PEM, not RSA) or TypeError (the key
    is encrypted)."""
    data = cert_path.read_bytes()
    certs = x509.load_pem_x509_certificates(data)
    key = serialization.load_pem_private_key(key_path.read_bytes() if key_path else data, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_path or cert_path}: only RSA keys are supported")
    return Credential(certs[0], key, tuple(certs[1:]))


def make_proxy(
    issuer: Credential,
    *,
    kind: ProxyType = ProxyType.IMPERSONATION,
    path_length: int | None = None,
    hours: float = 12,
    acs: Sequence[bytes] = (),
    key_size: int = KEY_SIZE,
) -> Credential:
    """An RFC 3820 proxy of `issuer` (an end-entity cert or another proxy) valid for
    `hours` from now (capped by the issuer's own end), carrying the DER VOMS `acs`."""
    start, end = validity_window(timedelta(hours=hours))
    return build_proxy(
        issuer,
        new_key(key_size),
        kind=kind,
        path_length=path_length,
        start=start,
        end=min(end, issuer.cert.not_valid_after_utc),
        acs=acs,
    )


def build_proxy(
    issuer: Credential,
    key: rsa.RSAPrivateKey,
    *,
    kind: ProxyType,
    start: datetime,
    end: datetime,
    path_length: int | None = None,
    acs: Sequence[bytes] = (),
    subject: x509.Name | None = None,
    signer: rsa.RSAPrivateKey | None = None,
    policy_oid: str | None = None,
) -> Credential:
    """The proxy certificate itself; `subject`/`signer`/`policy_oid` replace what the
    RFC prescribes (only the test tooling passes them, to build broken proxies)."""
    if kind is ProxyType.NONE:
        raise ValueError("a proxy needs a proxy type")
    serial = x509.random_serial_number()
    subj = subject or x509.Name(
        [
            *issuer.cert.subject.rdns,
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.COMMON_NAME, str(serial & 0x7FFFFFFF))]
            ),
        ]
    )
    pci = proxy_cert_info_der(policy_oid or _LANG[kind], path_length)
    b = (
        x509.CertificateBuilder()
        .subject_name(subj)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.KeyUsage(True, False, True, True, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_PROXY_CERT_INFO), pci),
            critical=True,
        )
    )
    if acs:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_VOMS_ACSEQ), _acseq_der(acs)),
            critical=False,
        )
    cert = b.sign(signer or issuer.key, hashes.SHA256())
    return Credential(cert, key, (issuer.cert, *issuer.chain))


def _acseq_der(acs: Sequence[bytes]) -> bytes:
    """SEQUENCE { SEQUENCE OF AC } from individual AC DERs."""
    inner = AttributeCertificates([cms.AttributeCertificateV2.load(a) for a in acs])
    return VomsAcSequence([inner]).dump()


def subject_hash(cert: x509.Certificate, *, old: bool = False) -> str:
    """OpenSSL subject hash (`-subject_hash`, or `-subject_hash_old` when old): the
    file names of a grid CA directory."""
    if old:
        digest = hashlib.md5(cert.subject.public_bytes(), usedforsecurity=False).digest()
        return f"{int.from_bytes(digest[:4], 'little'):08x}"
    return f"{crypto.X509.from_cryptography(cert).subject_name_hash():08x}"
