"""Trust anchors from a grid CA directory (X509_CERT_DIR layout).

`<hash>.N` CA certificates, `<hash>.rN` CRLs, `.signing_policy` / `.namespaces`
namespace rules. Old-hash and new-hash names are equivalent: files are loaded by
content and de-duplicated. The directory is re-read when it changes (mtime check,
rate-limited so the warm validation path stays cheap)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import crypto

from gproc.security.credentials import subject_hash
from gproc.security.errors import TrustStoreError
from gproc.security.identity import grid_dn, normalise_grid_dn

log = logging.getLogger(__name__)

DEFAULT_CERT_DIR = "/etc/grid-security/certificates"
_CERT_RE = re.compile(r"^[0-9a-f]{8}\.\d+$")
_CRL_RE = re.compile(r"^[0-9a-f]{8}\.r\d+$")
_SP_CA = re.compile(r"access_id_CA\s+X509\s+'([^']*)'", re.I)
_SP_COND = re.compile(r"cond_subjects\s+globus\s+'([^']*)'", re.I)
_NS_RULE = re.compile(
    r'TO\s+Issuer\s+(?:"([^"]*)"|(SELF))\s+(PERMIT|DENY)\s+Subject\s+"([^"]*)"', re.I
)

DnKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NamespaceRule:
    """Subjects a CA may (PERMIT) or may not (DENY) sign, as a regex over slash DNs."""

    pattern: re.Pattern[str]
    permit: bool


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """signing_policy glob (`*`, `?`) to an anchored case-insensitive regex."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.I)


def parse_signing_policy(text: str) -> dict[DnKey, list[NamespaceRule]]:
    """Globus EACL: each access_id_CA is followed by its cond_subjects globs."""
    rules: dict[DnKey, list[NamespaceRule]] = {}
    current: DnKey | None = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if m := _SP_CA.search(line):
            current = normalise_grid_dn(m.group(1))
            rules.setdefault(current, [])
        elif (m := _SP_COND.search(line)) and current is not None:
            globs = re.findall(r'"([^"]*)"', m.group(1)) or m.group(1).split()
            rules[current].extend(NamespaceRule(glob_to_regex(g), True) for g in globs)
    return rules


def parse_namespaces(text: str, self_dn: str | None) -> dict[DnKey, list[NamespaceRule]]:
    """IGTF `.namespaces`: `TO Issuer "<dn>" PERMIT|DENY Subject "<regex>"`."""
    joined = re.sub(r"\\\s*\n", " ", "\n".join(ln.split("#", 1)[0] for ln in text.splitlines()))
    rules: dict[DnKey, list[NamespaceRule]] = {}
    for m in _NS_RULE.finditer(joined):
        issuer = m.group(1) if m.group(1) is not None else self_dn
        if issuer is None:
            continue
        pattern = re.compile(f"^{m.group(4)}$", re.I)
        rules.setdefault(normalise_grid_dn(issuer), []).append(
            NamespaceRule(pattern, m.group(3).upper() == "PERMIT")
        )
    return rules


@dataclass(frozen=True)
class TrustSnapshot:
    """One immutable generation of the trust store's content."""

    generation: int
    cas: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    namespaces: dict[DnKey, list[NamespaceRule]] = field(default_factory=dict)
    _ossl_cas: tuple[crypto.X509, ...] = ()

    def make_store(self, flags: int, when: datetime | None = None) -> crypto.X509Store:
        """A fresh pyOpenSSL store holding the anchors and CRLs (one per validation)."""
        store = crypto.X509Store()
        for ca in self._ossl_cas:
            store.add_cert(ca)
        for crl in self.crls:
            store.add_crl(crl)
        if flags:
            store.set_flags(flags)
        if when is not None:
            store.set_time(when)
        return store

    def has_crl_for(self, issuer: x509.Name) -> bool:
        """True if a CRL issued by `issuer` is loaded."""
        return any(c.issuer == issuer for c in self.crls)

    def namespace_permits(self, ca_dn: str, subject_dn: str) -> bool:
        """EACL check: no rules for the CA means permitted; a DENY match refuses."""
        rules = self.namespaces.get(normalise_grid_dn(ca_dn))
        if not rules:
            return True
        if any(not r.permit and r.pattern.match(subject_dn) for r in rules):
            return False
        return any(r.permit and r.pattern.match(subject_dn) for r in rules)


class TrustStore:
    """A grid CA directory, reloaded when its content changes."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, check_interval: float = 1.0
    ) -> None:
        self.path = Path(path or os.environ.get("X509_CERT_DIR") or DEFAULT_CERT_DIR)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._signature: tuple[object, ...] | None = None
        self._checked = 0.0
        self._snapshot = TrustSnapshot(0, (), ())
        self.problems: list[str] = []
        self.refresh(force=True)

    @property
    def generation(self) -> int:
        """Increments every time the directory content is reloaded."""
        return self.snapshot().generation

    def snapshot(self) -> TrustSnapshot:
        """The current content, after a rate-limited change check."""
        if time.monotonic() - self._checked >= self.check_interval:
            self.refresh()
        return self._snapshot

    def refresh(self, force: bool = False) -> bool:
        """Reload if the directory changed (or `force`); True when reloaded."""
        with self._lock:
            self._checked = time.monotonic()
            sig = self._dir_signature()
            if not force and sig == self._signature:
                return False
            self._snapshot = self._load(self._snapshot.generation + 1)
            self._signature = sig
            return True

    def _dir_signature(self) -> tuple[object, ...]:
        try:
            st = self.path.stat()
            entries = sorted(
                _entry_signature(e) for e in os.scandir(self.path) if not e.name.startswith(".")
            )
        except OSError as exc:
            raise TrustStoreError(f"CA directory {self.path} is unreadable: {exc}") from exc
        return (st.st_mtime_ns, tuple(entries))

    def _load(self, generation: int) -> TrustSnapshot:
        cas: dict[bytes, x509.Certificate] = {}
        crls: dict[bytes, x509.CertificateRevocationList] = {}
        problems: list[str] = []
        policy_files: list[Path] = []
        for entry in sorted(self.path.iterdir()):
            if _CERT_RE.match(entry.name):
                self._read_certs(entry, cas, problems)
            elif _CRL_RE.match(entry.name):
                self._read_crl(entry, crls, problems)
            elif entry.suffix in (".signing_policy", ".namespaces"):
                policy_files.append(entry)
        self.problems = problems
        for p in problems:
            log.warning("trust store %s: %s", self.path, p)
        return TrustSnapshot(
            generation,
            tuple(cas.values()),
            tuple(crls.values()),
            self._read_policies(policy_files, list(cas.values())),
            tuple(crypto.X509.from_cryptography(c) for c in cas.values()),
        )

    @staticmethod
    def _read_certs(path: Path, out: dict[bytes, x509.Certificate], problems: list[str]) -> None:
        try:
            for cert in x509.load_pem_x509_certificates(path.read_bytes()):
                out[cert.fingerprint(hashes.SHA256())] = cert
        except (OSError, ValueError) as exc:
            problems.append(f"skipping CA file {path.name}: {exc}")

    @staticmethod
    def _read_crl(
        path: Path, out: dict[bytes, x509.CertificateRevocationList], problems: list[str]
    ) -> None:
        try:
            crl = x509.load_pem_x509_crl(path.read_bytes())
            out[crl.fingerprint(hashes.SHA256())] = crl
        except (OSError, ValueError) as exc:
            problems.append(f"skipping CRL file {path.name}: {exc}")

    def _read_policies(
        self, files: list[Path], cas: list[x509.Certificate]
    ) -> dict[DnKey, list[NamespaceRule]]:
        """`.namespaces` rules win over `.signing_policy` for the same CA."""
        by_hash = {subject_hash(c, old=o): grid_dn(c.subject) for c in cas for o in (False, True)}
        sp: dict[DnKey, list[NamespaceRule]] = {}
        ns: dict[DnKey, list[NamespaceRule]] = {}
        for f in files:
            try:
                text = f.read_text(errors="replace")
                if f.suffix == ".namespaces":
                    _merge(ns, parse_namespaces(text, by_hash.get(f.stem)))
                else:
                    _merge(sp, parse_signing_policy(text))
            except (OSError, ValueError) as exc:
                self.problems.append(f"bad policy file {f.name}: {exc}")
        return {**sp, **ns}


def _entry_signature(entry: os.DirEntry[str]) -> tuple[str, int, int]:
    """(name, mtime, size) of a file or its link target; dangling links still count."""
    try:
        st = entry.stat()
    except OSError:
        return (entry.name, -1, -1)
    return (entry.name, st.st_mtime_ns, st.st_size)


def _merge(into: dict[DnKey, list[NamespaceRule]], new: dict[DnKey, list[NamespaceRule]]) -> None:
    """Old- and new-hash copies of one file parse to the same rules: keep one copy."""
    for k, rules in new.items():
        have = into.setdefault(k, [])
        for r in rules:
            if r not in have:
                have.append(r)
