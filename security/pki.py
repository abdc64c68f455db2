"""Test-PKI tooling: CAs with CRLs, host/user certificates, broken proxies for negative
tests, VOMS ACs embedded in proxies, grid CA directories and vomsdirs.

Used by the test fixtures, the `gproc pki` commands and the README quick start; it
builds exactly the artefacts the real grid tools (openssl, Globus, VOMS) consume.
Nothing in the running services depends on it: production credential code (loading
credentials, making proxies, signing ACs) lives in `security/credentials.py` and
`security/ac_signing.py`, re-exported here for the tooling's callers."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gproc.security.ac_signing import sign_ac_info, voms_ac_info
from gproc.security.credentials import (
    CLOCK_SKEW,
    KEY_SIZE,
    Credential,
    build_proxy,
    load_credential,
    new_key,
    subject_hash,
    utc_now,
    validity_window,
)
from gproc.security.identity import ProxyType, grid_dn

__all__ = [
    "Credential",
    "TestPKI",
    "make_ca",
    "make_crl",
    "issue_cert",
    "make_host_cert",
    "make_user_cert",
    "make_proxy",
    "make_voms_ac",
    "write_ca_dir",
    "write_vomsdir",
    "subject_hash",
    "load_credential",
    "new_key",
    "make_test_pki",
    "name",
]


def name(*rdns: tuple[str, str]) -> x509.Name:
    """x509.Name from (short key, value) pairs in slash order, e.g. ("C","XX")."""
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "CN": NameOID.COMMON_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "DC": NameOID.DOMAIN_COMPONENT,
        "L": NameOID.LOCALITY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in rdns])


def make_ca(
    cn: str = "gproc Test CA",
    org: str = "gproc-test",
    *,
    days: int = 3650,
    issuer: Credential | None = None,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Credential:
    """A root CA (or an intermediate CA when `issuer` is given)."""
    key = key or new_key()
    subject = name(("C", "XX"), ("O", org), ("CN", cn))
    start, end = validity_window(timedelta(days=days), not_before, not_after)
    signer_key = issuer.key if issuer else key
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    chain = (issuer.cert, *issuer.chain) if issuer else ()
    return Credential(b.sign(signer_key, hashes.SHA256()), key, chain)


def make_crl(
    ca: Credential,
    revoked: Iterable[int] = (),
    *,
    days: int = 30,
    last_update: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of `ca` revoking the given serial numbers."""
    start = last_update or (utc_now() - CLOCK_SKEW)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(start)
        .next_update(start + timedelta(days=days))
        .add_extension(x509.CRLNumber(secrets.randbits(31)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(start).build()
        )
    return b.sign(ca.key, hashes.SHA256())


def issue_cert(
    ca: Credential,
    subject: x509.Name,
    *,
    sans: Sequence[str] = (),
    server: bool = False,
    days: int = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
    signer: rsa.RSAPrivateKey | None = None,
) -> Credential:
    """An end-entity certificate signed by `ca` (`signer` overrides the key: tampering)."""
    key = key or new_key()
    start, end = validity_window(timedelta(days=days), not_before, not_after)
    eku = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
    return Credential(b.sign(signer or ca.key, hashes.SHA256()), key, (*(ca.chain),))


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def make_host_cert(
    ca: Credential,
    hostname: str = "vm",
    *,
    sans: Sequence[str] = ("vm", "localhost", "127.0.0.1"),
    org: str = "gproc-test",
    **kw: object,
) -> Credential:
    """A host/service certificate (server+client auth, SAN vm/localhost/127.0.0.1)."""
    subject = name(("C", "XX"), ("O", org), ("OU", "hosts"), ("CN", hostname))
    return issue_cert(ca, subject, sans=sans, server=True, **kw)  # type: ignore[arg-type]


def make_user_cert(ca: Credential, cn: str, *, org: str = "gproc-test", **kw: object) -> Credential:
    """A user certificate `/C=XX/O=<org>/OU=users/CN=<cn>`."""
    subject = name(("C", "XX"), ("O", org), ("OU", "users"), ("CN", cn))
    return issue_cert(ca, subject, **kw)  # type: ignore[arg-type]


def make_proxy(
    issuer: Credential,
    *,
    kind: ProxyType = ProxyType.IMPERSONATION,
    path_length: int | None = None,
    hours: float = 12,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    acs: Sequence[bytes] = (),
    subject: x509.Name | None = None,
    signer: rsa.RSAPrivateKey | None = None,
    key_size: int = KEY_SIZE,
    policy_oid: str | None = None,
) -> Credential:
    """An RFC 3820 proxy of `issuer` (an end-entity cert or another proxy).

    `acs` are DER VOMS ACs to embed; `not_before`/`not_after` set the window (else
    `hours` from now, capped by the issuer); `subject`/`signer`/`policy_oid`
    deliberately break the RFC rules for negative tests."""
    start, end = validity_window(timedelta(hours=hours), not_before, not_after)
    end = min(end, issuer.cert.not_valid_after_utc) if not_after is None else end
    return build_proxy(
        issuer,
        new_key(key_size),
        kind=kind,
        path_length=path_length,
        start=start,
        end=end,
        acs=acs,
        subject=subject,
        signer=signer,
        policy_oid=policy_oid,
    )


def make_voms_ac(
    holder: x509.Certificate,
    signer: Credential,
    vo: str,
    fqans: Sequence[str],
    *,
    uri: str = "vm:15000",
    hours: float = 12,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
    embed_signer: bool = True,
    issuer: x509.Name | None = None,
    sign_key: rsa.RSAPrivateKey | None = None,
    holder_issuer: x509.Name | None = None,
) -> bytes:
    """DER of a VOMS AC for `holder` (the end-entity cert) signed by `signer`, valid
    `hours` from now unless `not_before`/`not_after` say otherwise.

    `holder_issuer` names the holder as `voms-proxy-fake` without `-newformat` does
    (pass the holder's subject); `issuer`/`sign_key` override the issuer name and
    signing key for negative tests."""
    start, end = validity_window(timedelta(hours=hours), not_before, not_after)
    info = voms_ac_info(
        holder,
        signer,
        vo,
        fqans,
        uri=uri,
        not_before=start,
        not_after=end,
        serial=serial if serial is not None else x509.random_serial_number(),
        embed_signer=embed_signer,
        issuer=issuer,
        holder_name=holder_issuer,
    )
    return sign_ac_info(info, sign_key or signer.key)


def signing_policy_text(ca: x509.Certificate, namespaces: Sequence[str]) -> str:
    """Globus EACL `.signing_policy` granting `ca` the right to sign `namespaces` (globs)."""
    subjects = " ".join(namespaces)
    return (
        f"access_id_CA      X509         '{grid_dn(ca.subject)}'\n"
        "pos_rights        globus        CA:sign\n"
        f"cond_subjects     globus       '\"{subjects}\"'\n"
    )


def default_namespace(ca: x509.Certificate) -> str:
    """`/C=XX/O=org/*`: the CA's DN without its CN, as a glob."""
    dn = grid_dn(ca.subject)
    return dn.rsplit("/CN=", 1)[0] + "/*"


def write_ca_dir(
    directory: Path,
    cas: Sequence[tuple[Credential, x509.CertificateRevocationList | None]],
    *,
    hashes_: str = "both",
    namespaces: dict[str, Sequence[str]] | None = None,
) -> Path:
    """A grid CA directory: `<hash>.0`, `<hash>.r0`, `<hash>.signing_policy`.

    hashes_ is "new", "old" or "both" (new-hash files plus old-hash symlinks)."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca, crl in cas:
        primary = subject_hash(ca.cert, old=hashes_ == "old")
        ns = (namespaces or {}).get(ca.dn, [default_namespace(ca.cert)])
        files = {
            f"{primary}.0": ca.cert_pem(),
            f"{primary}.signing_policy": signing_policy_text(ca.cert, ns).encode(),
        }
        if crl is not None:
            files[f"{primary}.r0"] = crl.public_bytes(serialization.Encoding.PEM)
        for fname, data in files.items():
            (directory / fname).write_bytes(data)
        if hashes_ == "both":
            _link_old_hash(directory, ca.cert, primary, files)
    return directory


def _link_old_hash(
    directory: Path, cert: x509.Certificate, primary: str, files: dict[str, bytes]
) -> None:
    old = subject_hash(cert, old=True)
    for fname in files:
        link = directory / fname.replace(primary, old, 1)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(fname)


def write_crl(directory: Path, ca: Credential, crl: x509.CertificateRevocationList) -> Path:
    """Replace the `.r0` CRL of `ca` in a CA directory (both hashes resolve to it)."""
    path = directory / f"{subject_hash(ca.cert)}.r0"
    if not path.exists():
        path = directory / f"{subject_hash(ca.cert, old=True)}.r0"
    path.resolve().write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def write_vomsdir(
    directory: Path,
    vo: str,
    server: Credential | x509.Certificate,
    *,
    host: str = "vm",
    ca: x509.Certificate | None = None,
    pem: bool = False,
) -> Path:
    """`vomsdir/<vo>/<host>.lsc` (server DN, CA DN); with pem=True also `<host>.pem`."""
    for value in (vo, host):
        if not _SAFE_NAME.match(value):
            raise ValueError(f"unsafe VO or host name for a vomsdir path: {value!r}")
    cert = server.cert if isinstance(server, Credential) else server
    vodir = directory / vo
    vodir.mkdir(parents=True, exist_ok=True)
    issuer_dn = grid_dn(ca.subject) if ca else grid_dn(cert.issuer)
    (vodir / f"{host}.lsc").write_text(f"{grid_dn(cert.subject)}\n{issuer_dn}\n")
    if pem:
        (vodir / f"{host}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return vodir


@dataclass
class TestPKI:
    """A complete test PKI on disk (see make_test_pki)."""

    root: Path
    ca: Credential
    crl: x509.CertificateRevocationList
    ca_dir: Path  # X509_CERT_DIR
    vomsdir: Path  # X509_VOMS_DIR
    host: Credential
    host_cert: Path
    host_key: Path
    voms: Credential  # VOMS server (host) certificate of VO "testvo"
    voms_cert: Path
    voms_key: Path
    users: dict[str, Credential] = field(default_factory=dict)
    user_cert: dict[str, Path] = field(default_factory=dict)
    user_key: dict[str, Path] = field(default_factory=dict)
    revoked: Credential | None = None  # user "mallory", revoked in the CRL
    proxies: dict[str, Path] = field(default_factory=dict)
    vo: str = "testvo"
    voms_uri: str = "vm:15000"

    __test__ = False  # not a pytest test class

    def env(self) -> dict[str, str]:
        """X509_CERT_DIR / X509_VOMS_DIR for the grid command-line tools."""
        return {"X509_CERT_DIR": str(self.ca_dir), "X509_VOMS_DIR": str(self.vomsdir)}


DEFAULT_FQANS = {
    "alice": ["/testvo", "/testvo/grid"],
    "bob": ["/testvo/Role=VO-Admin", "/testvo"],  # the default [vo] admin_role
}


def make_test_pki(root: Path, *, vo: str = "testvo", uri: str = "vm:15000") -> TestPKI:
    """Build everything tests and the quick start need under `root`.

    CA + CRL revoking user mallory, host cert `vm`, VOMS server cert for `vo`, users
    alice and bob, and proxies in `root/proxies/`: alice (plain), alice-voms
    (/testvo, /testvo/grid), alice-limited, alice-independent, bob-voms
    (/testvo/Role=VO-Admin: a VO admin by default; /testvo), mallory (revoked)."""
    root.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    host = make_host_cert(ca, "vm")
    voms = make_host_cert(ca, "voms.vm", sans=("vm", "localhost"))
    users = {u: make_user_cert(ca, u) for u in ("alice", "bob")}
    mallory = make_user_cert(ca, "mallory")
    crl = make_crl(ca, [mallory.cert.serial_number])
    ca_dir = write_ca_dir(root / "certificates", [(ca, crl)])
    pki = TestPKI(
        root=root,
        ca=ca,
        crl=crl,
        ca_dir=ca_dir,
        vomsdir=root / "vomsdir",
        host=host,
        host_cert=root / "hostcert.pem",
        host_key=root / "hostkey.pem",
        voms=voms,
        voms_cert=root / "vomscert.pem",
        voms_key=root / "vomskey.pem",
        revoked=mallory,
        vo=vo,
        voms_uri=uri,
    )
    write_vomsdir(pki.vomsdir, vo, voms, host=uri.split(":")[0])
    host.write(pki.host_cert, pki.host_key)
    voms.write(pki.voms_cert, pki.voms_key)
    for user, cred in {**users, "mallory": mallory}.items():
        pki.users[user] = cred
        pki.user_cert[user], pki.user_key[user] = root / f"{user}cert.pem", root / f"{user}key.pem"
        cred.write(pki.user_cert[user], pki.user_key[user])
    _make_proxies(pki, users, mallory)
    return pki


def _make_proxies(pki: TestPKI, users: dict[str, Credential], mallory: Credential) -> None:
    pdir = pki.root / "proxies"
    pdir.mkdir(exist_ok=True)
    alice = users["alice"]
    ac = {
        u: make_voms_ac(users[u].cert, pki.voms, pki.vo, DEFAULT_FQANS[u], uri=pki.voms_uri)
        for u in DEFAULT_FQANS
    }
    made = {
        "alice": make_proxy(alice),
        "alice-voms": make_proxy(alice, acs=[ac["alice"]]),
        "alice-limited": make_proxy(alice, kind=ProxyType.LIMITED, acs=[ac["alice"]]),
        "alice-independent": make_proxy(alice, kind=ProxyType.INDEPENDENT),
        "bob-voms": make_proxy(users["bob"], acs=[ac["bob"]]),
        "mallory": make_proxy(mallory),
    }
    for label, cred in made.items():
        pki.proxies[label] = cred.write_proxy(pdir / f"{label}.pem")
