"""The attribute authority: VOMS attribute certificates for active VO members.

An AC names the member's end-entity certificate as holder (issuer + serial, as VOMS
does), carries the granted FQANs in the long form a VOMS server emits
(``/vo/g/Role=r/Capability=NULL``), the policy authority ``<vo>://<host>:<port>``
(``host`` names the LSC file relying parties keep: ``vomsdir/<vo>/<host>.lsc``) and is
signed with the authority's certificate, which it embeds. Granting rules:

* the member must exist (``NoSuchUser``) and not be suspended (``SuspendedUser``);
* every requested group/role must be held, else the request is refused naming each
  missing FQAN (``NoSuchAttribute``); nothing is silently dropped;
* the requested FQANs come first, in the order asked, then the VO root group;
  ``all`` asks for every group and role held;
* the lifetime is the requested one (default 12 h) capped at ``max_lifetime_s``.

Membership comes from a :class:`MemberDirectory` (``gproc.vo.VoStore``), read at each
request: role changes show in the next AC, suspended members get none.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509

from gproc.security.ac_signing import sign_voms_ac
from gproc.security.credentials import CLOCK_SKEW, Credential, utc_now
from gproc.security.identity import Fqan, grid_dn

DEFAULT_LIFETIME_S = 12 * 3600


class MemberView(Protocol):
    @property
    def suspended(self) -> bool: ...

    @property
    def suspended_reason(self) -> str | None: ...

    def holds(self, group: str, role: str | None) -> bool: ...

    @property
    def memberships(self) -> Sequence[object]: ...


class MemberDirectory(Protocol):
    """What the authority needs of the VO database."""

    def manages(self, vo: str) -> bool: ...

    def lookup(self, vo: str, dn: str, ca_dn: str | None = None) -> MemberView | None: ...


class AcRequestRefused(Exception):  # noqa: N818 - a refusal, reported to the client
    """No AC: ``code`` is a VOMS error code (NoSuchUser, SuspendedUser, BadRequest,
    NoSuchAttribute), the message says exactly why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IssuedAc:
    der: bytes
    vo: str
    fqans: tuple[str, ...]  # long form, primary first
    not_before: datetime
    not_after: datetime
    serial: int
    shortened: bool  # the lifetime asked for was capped


class AttributeAuthority:
    """Issues VOMS ACs signed with ``signer`` for the VOs of ``directory``."""

    def __init__(
        self,
        directory: MemberDirectory,
        signer: Credential,
        *,
        host: str,
        port: int,
        max_lifetime_s: int = 24 * 3600,
        default_lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> None:
        self.directory = directory
        self.signer = signer
        self.uri = f"{host}:{port}"
        self.max_lifetime_s = max_lifetime_s
        self.default_lifetime_s = min(default_lifetime_s, max_lifetime_s)

    def issue(
        self,
        holder: x509.Certificate,
        vo: str,
        requested: Sequence[str] = (),
        lifetime_s: int | None = None,
        order: Sequence[str] = (),
    ) -> IssuedAc:
        """An AC for the end-entity certificate ``holder`` or :class:`AcRequestRefused`."""
        if not self.directory.manages(vo):
            raise AcRequestRefused("BadRequest", f"this authority does not serve VO {vo!r}")
        dn, ca = grid_dn(holder.subject), grid_dn(holder.issuer)
        member = self.directory.lookup(vo, dn, ca)
        if member is None:
            raise AcRequestRefused("NoSuchUser", f"{dn} (CA {ca}) is not a member of VO {vo}")
        if member.suspended:
            raise AcRequestRefused(
                "SuspendedUser", f"{dn} is suspended from VO {vo}: {member.suspended_reason}"
            )
        fqans = _order(self._granted(member, vo, requested), vo, order)
        wanted = lifetime_s if lifetime_s and lifetime_s > 0 else self.default_lifetime_s
        seconds = min(wanted, self.max_lifetime_s)
        now = utc_now()
        start, end = now - CLOCK_SKEW, now + timedelta(seconds=seconds)
        serial = secrets.randbits(63) | 1
        der = sign_voms_ac(
            holder,
            self.signer,
            vo,
            [f.long for f in fqans],
            uri=self.uri,
            not_before=start,
            not_after=end,
            serial=serial,
        )
        return IssuedAc(
            der, vo, tuple(f.long for f in fqans), start, end, serial, shortened=wanted > seconds
        )

    def _granted(self, member: MemberView, vo: str, requested: Sequence[str]) -> list[Fqan]:
        root = Fqan(vo)
        if any(r.strip().lower() == "all" for r in requested):
            held = [Fqan.parse(_fqan_text(m)) for m in member.memberships]
            return [root] + sorted(
                (f for f in held if f != root), key=lambda f: (f.group, f.role or "")
            )
        asked = [_parse(r, vo) for r in requested if r.strip()]
        missing = [str(f) for f in asked if not member.holds(f.group, f.role)]
        if missing:
            raise AcRequestRefused(
                "NoSuchAttribute",
                f"not granted in VO {vo}: {', '.join(missing)} (the member does not hold it)",
            )
        out: list[Fqan] = []
        for f in [*asked, root]:
            if f not in out:
                out.append(f)
        return out


def _fqan_text(m: object) -> str:
    text = getattr(m, "fqan", None)
    if not isinstance(text, str):
        raise TypeError("membership without an fqan")
    return text


def _parse(text: str, vo: str) -> Fqan:
    try:
        f = Fqan.parse(text)
    except ValueError as exc:
        raise AcRequestRefused("BadRequest", str(exc)) from None
    if f.vo != vo:
        raise AcRequestRefused("BadRequest", f"{text} is not an FQAN of VO {vo}")
    if f.capability:
        raise AcRequestRefused("BadRequest", "capabilities are not supported")
    return Fqan(f.vo, f.groups, f.role)


def _order(fqans: list[Fqan], vo: str, order: Sequence[str]) -> list[Fqan]:
    """Move FQANs named in ``order`` (VOMS ``--order``) to the front, in that order."""
    front: list[Fqan] = []
    for text in order:
        try:
            f = _parse(text, vo)
        except AcRequestRefused:
            continue
        if f in fqans and f not in front:
            front.append(f)
    return front + [f for f in fqans if f not in front]
