"""SSH public keys registered by grid identities, for the SFTP front.

A user registers a key over an authenticated channel (the HTTPS front, with their
proxy). The registration stores the key, the DN and the caller's *certificate chain*
(public certificates only: the proxy chain with its VOMS ACs, never a private key).

The rule applied when an SFTP session opens (:meth:`SshKeyStore.session_identity`):
the stored chain is validated again, now, with the service's validator — CRLs,
certificate and proxy lifetimes, and the VOMS AC signatures and validity windows are
all checked at that moment. The session is refused when the chain no longer
validates (proxy expired, user revoked, CA withdrawn) or when any VO the key was
registered with is no longer asserted by a valid AC (AC expired). The session then
acts with the freshly validated identity, so VO rules see current FQANs. Keeping SFTP
access therefore means re-registering the key with a fresh VOMS proxy, exactly as a
grid user renews their proxy for any other service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gproc import errors
from gproc.security.errors import CredentialError
from gproc.security.identity import Identity, same_dn
from gproc.security.wsgi_auth import Validator, validate_with

KEY_TYPES = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"}
)
MAX_KEYS_PER_DN = 32
MAX_LINE = 16 * 1024
_COMMENT = re.compile(r"^[\x20-\x7e]{0,200}$")


class KeyError_(errors.InvalidRequest, ValueError):
    """A key line that cannot be registered (message safe to show)."""


class KeyConflict(errors.Conflict, KeyError_):
    """The key is already registered by another identity."""


class SessionRefused(errors.NotAuthorised):
    """The key's registration no longer gives access (message safe to show)."""


@dataclass(frozen=True)
class KeyRecord:
    """One registered key (``fingerprint`` is OpenSSH's ``SHA256:...`` form)."""

    fingerprint: str
    key_type: str
    key_b64: str
    comment: str
    dn: str
    vos: tuple[str, ...]
    registered_at: str
    chain_pem: str

    def public(self) -> dict[str, object]:
        """What the owner may see (the chain stays on the server)."""
        return {
            "fingerprint": self.fingerprint,
            "type": self.key_type,
            "comment": self.comment,
            "dn": self.dn,
            "vos": list(self.vos),
            "registered_at": self.registered_at,
        }


def parse_key_line(line: str) -> tuple[str, bytes, str]:
    """(type, blob, comment) of an OpenSSH public-key line; KeyError_ when unusable."""
    if len(line) > MAX_LINE:
        raise KeyError_("public key line too long")
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise KeyError_("expected '<type> <base64> [comment]'")
    key_type, b64 = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type not in KEY_TYPES:
        raise KeyError_(f"key type {key_type!r} not accepted ({', '.join(sorted(KEY_TYPES))})")
    if not _COMMENT.match(comment):
        raise KeyError_("the key comment must be printable ASCII (<= 200 characters)")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_("the key is not valid base64") from None
    _check_blob(key_type, blob)
    return key_type, blob, comment


def _check_blob(key_type: str, blob: bytes) -> None:
    """The blob must hold a loadable key of the announced type (RSA >= 2048 bits)."""
    import paramiko

    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except Exception:  # noqa: BLE001 - any parse failure is a bad key
        raise KeyError_(f"not a valid {key_type} public key") from None
    if key_type == "ssh-rsa" and key.get_bits() < 2048:
        raise KeyError_("RSA keys must have at least 2048 bits")


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint (``ssh-keygen -lf``)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class SshKeyStore:
    """Keys on disk, one JSON file per key (named by the SHA-256 of its blob)."""

    def __init__(self, root: str | Path, validator: Validator) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.validator = validator
        self._lock = threading.Lock()

    def _file(self, blob: bytes) -> Path:
        return self.root / f"{hashlib.sha256(blob).hexdigest()}.json"

    def register(
        self, identity: Identity, chain: Sequence[x509.Certificate], line: str
    ) -> KeyRecord:
        """Store ``line`` for ``identity``; re-registering refreshes the stored chain."""
        key_type, blob, comment = parse_key_line(line)
        if not chain:
            raise KeyError_("registering a key needs the TLS client chain")
        record = KeyRecord(
            fingerprint=fingerprint(blob),
            key_type=key_type,
            key_b64=base64.b64encode(blob).decode(),
            comment=comment,
            dn=identity.subject_grid,
            vos=_vos(identity),
            registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
            chain_pem="".join(c.public_bytes(Encoding.PEM).decode() for c in chain),
        )
        with self._lock:
            existing = self._load(self._file(blob))
            if existing is not None and not same_dn(existing.dn, identity.subject_grid):
                raise KeyConflict("this key is registered by another identity")
            if existing is None and len(self.list_for(identity)) >= MAX_KEYS_PER_DN:
                raise KeyError_(f"at most {MAX_KEYS_PER_DN} keys per identity")
            _write_atomic(self._file(blob), json.dumps(asdict(record)).encode())
        return record

    def list_for(self, identity: Identity) -> list[KeyRecord]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            rec = self._load(path)
            if rec is not None and same_dn(rec.dn, identity.subject_grid):
                out.append(rec)
        return out

    def remove(self, identity: Identity, fp: str) -> bool:
        """Remove the caller's key with fingerprint ``fp`` (False when none)."""
        with self._lock:
            for rec in self.list_for(identity):
                if rec.fingerprint == fp:
                    self._file(base64.b64decode(rec.key_b64)).unlink(missing_ok=True)
                    return True
        return False

    def lookup(self, key_type: str, blob: bytes) -> KeyRecord | None:
        rec = self._load(self._file(blob))
        if rec is None or rec.key_type != key_type or base64.b64decode(rec.key_b64) != blob:
            return None
        return rec

    def session_identity(self, record: KeyRecord) -> Identity:
        """The identity an SFTP session acts as, re-validated now (see module doc)."""
        try:
            chain = x509.load_pem_x509_certificates(record.chain_pem.encode())
            identity = self._validate_now(chain)
        except (CredentialError, ValueError) as exc:
            raise SessionRefused(
                f"the credential registered with this key is no longer "
                f"valid ({exc}); register the key again"
            ) from None
        if not same_dn(identity.subject_grid, record.dn):
            raise SessionRefused("the registered credential names another identity")
        lost = sorted(set(record.vos) - set(_vos(identity)))
        if lost:
            raise SessionRefused(
                f"VO membership no longer asserted by a valid VOMS AC: "
                f"{', '.join(lost)}; register the key again with a fresh "
                "VOMS proxy"
            )
        return identity

    def _validate_now(self, chain: Sequence[x509.Certificate]) -> Identity:
        """Validate at this moment, bypassing any identity cache (an AC that expired
        since the last validation must be noticed)."""
        validate = getattr(self.validator, "validate", None)
        if validate is not None:
            ident: Identity = validate(chain, now=datetime.now(UTC))
            return ident
        return validate_with(self.validator, chain)

    @staticmethod
    def _load(path: Path) -> KeyRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["vos"] = tuple(data["vos"])
            return KeyRecord(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def _vos(identity: Identity) -> tuple[str, ...]:
    return tuple(sorted({ac.vo for ac in identity.acs}))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
