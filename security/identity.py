"""The immutable result of credential validation, plus the DN and FQAN value types.

Everything the authorisation policy needs is here, so policy code never touches
certificates: DNs in both RFC 2253 and the grid slash form, proxy type, VO/FQANs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import NameOID

from gproc.security.errors import Reason

_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
}
_KEY_ALIASES = {"email": "emailaddress", "e": "emailaddress", "userid": "uid"}
_SLASH_SPLIT = re.compile(r"/(?=[A-Za-z][A-Za-z0-9.]*=)")


def grid_dn(name: x509.Name) -> str:
    """`/C=../O=../CN=..` as printed by `openssl x509 -subject -nameopt compat`."""
    parts = []
    for rdn in name.rdns:
        avas = [f"{_SHORT_NAMES.get(a.oid, a.oid.dotted_string)}={a.value!s}" for a in rdn]
        parts.append("+".join(avas))
    return "/" + "/".join(parts) if parts else ""


def rfc2253_dn(name: x509.Name) -> str:
    """RFC 2253/4514 string (most specific RDN first)."""
    return name.rfc4514_string()


def normalise_grid_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """Canonical comparable form of a slash DN (keys case-folded, aliases merged)."""
    text = dn.strip()
    if not text.startswith("/"):
        raise ValueError(f"not a slash-form DN: {dn!r}")
    out = []
    for comp in _SLASH_SPLIT.split(text[1:]):
        key, sep, value = comp.partition("=")
        if not sep:
            raise ValueError(f"bad DN component {comp!r} in {dn!r}")
        k = key.strip().lower()
        out.append((_KEY_ALIASES.get(k, k), value.strip()))
    return tuple(out)


def same_dn(a: str, b: str) -> bool:
    """True when two slash-form DNs name the same entity."""
    try:
        return normalise_grid_dn(a) == normalise_grid_dn(b)
    except ValueError:
        return False


class ProxyType(StrEnum):
    """RFC 3820 proxy kind of a validated chain (most restrictive one in the chain)."""

    NONE = "none"
    IMPERSONATION = "impersonation"
    LIMITED = "limited"
    INDEPENDENT = "independent"


_FQAN_RE = re.compile(r"^/[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


@dataclass(frozen=True, order=True)
class Fqan:
    """A parsed VOMS FQAN; `/vo/g` and `/vo/g/Role=NULL/Capability=NULL` are equal."""

    vo: str
    groups: tuple[str, ...] = ()
    role: str | None = None
    capability: str | None = None

    @classmethod
    def parse(cls, text: str) -> Fqan:
        """Parse either FQAN form; raise ValueError on anything else."""
        role = cap = None
        path_parts: list[str] = []
        for comp in text.strip().split("/")[1:]:
            if comp.startswith("Role="):
                role = _null(comp[5:])
            elif comp.startswith("Capability="):
                cap = _null(comp[11:])
            elif role is None and cap is None and "=" not in comp:
                path_parts.append(comp)
            else:
                raise ValueError(f"bad FQAN component {comp!r} in {text!r}")
        path = "/" + "/".join(path_parts)
        if not text.startswith("/") or not path_parts or not _FQAN_RE.match(path):
            raise ValueError(f"not an FQAN: {text!r}")
        return cls(path_parts[0], tuple(path_parts[1:]), role, cap)

    @property
    def group(self) -> str:
        """The group path, e.g. `/testvo/grid`."""
        return "/" + "/".join((self.vo, *self.groups))

    def __str__(self) -> str:
        """Short form: `/vo/group[/Role=r]`."""
        return self.group + (f"/Role={self.role}" if self.role else "")

    @property
    def long(self) -> str:
        """Long form as emitted by a VOMS server."""
        return f"{self.group}/Role={self.role or 'NULL'}/Capability={self.capability or 'NULL'}"


def _null(value: str) -> str | None:
    return None if value in ("", "NULL") else value


@dataclass(frozen=True)
class AcInfo:
    """A verified VOMS attribute certificate."""

    vo: str
    uri: str
    issuer: str  # slash-form DN of the VOMS server
    serial: int
    not_before: datetime
    not_after: datetime
    fqans: tuple[Fqan, ...]


@dataclass(frozen=True)
class AcRejection:
    """An AC that failed a check and so contributed no attributes.

    Names the AC (its position in the proxy's AC sequence, VO, serial and issuer, as
    far as they could be read) and the problem (a stable `reason` code and a message),
    so a front refusing the request can tell the caller which AC was ignored and why."""

    reason: Reason
    message: str
    vo: str | None = None
    index: int | None = None  # position in the proxy's AC sequence (None: unreadable)
    serial: int | None = None
    issuer: str | None = None  # slash-form DN of the AC's issuer (the VOMS server)

    def describe(self) -> str:
        """One line, e.g. `AC #0 of VO testvo (serial 7, issued by /C=..): ac-expired: ..`."""
        who = "AC" if self.index is None else f"AC #{self.index}"
        if self.vo:
            who += f" of VO {self.vo}"
        facts = [f"serial {self.serial}"] if self.serial is not None else []
        facts += [f"issued by {self.issuer}"] if self.issuer else []
        if facts:
            who += f" ({', '.join(facts)})"
        return f"{who}: {self.reason.value}: {self.message}"


@dataclass(frozen=True)
class Identity:
    """A validated grid identity (end-entity + proxies + verified VOMS attributes)."""

    subject: str  # RFC 2253 end-entity DN
    subject_grid: str  # slash form
    issuer: str  # RFC 2253 DN of the CA that issued the end-entity certificate
    issuer_grid: str
    proxy_type: ProxyType
    proxy_depth: int
    not_after: datetime
    fingerprint: str  # SHA-256 hex of the concatenated chain DER
    acs: tuple[AcInfo, ...] = ()
    rejected_acs: tuple[AcRejection, ...] = field(default=())

    @property
    def limited(self) -> bool:
        """True when any proxy in the chain is limited (application must enforce)."""
        return self.proxy_type is ProxyType.LIMITED

    @property
    def vo(self) -> str | None:
        """VO of the first verified AC (the primary VO), if any."""
        return self.acs[0].vo if self.acs else None

    @property
    def fqans(self) -> tuple[Fqan, ...]:
        """All verified FQANs in AC order; the first is the primary FQAN."""
        return tuple(f for ac in self.acs for f in ac.fqans)

    @property
    def primary_fqan(self) -> Fqan | None:
        """First FQAN (the one VOMS clients treat as primary)."""
        fq = self.fqans
        return fq[0] if fq else None
