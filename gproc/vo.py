"""VO administration: VOs, hierarchical groups, roles, members and memberships, with
an append-only audit log of every change. No transport here: the admin SOAP service,
the ``gproc vo`` command and the attribute authority all call :class:`VoStore`.

Who may change a VO: DNs configured as administrators (``admins``; they alone may
create VOs), and active members holding the VO's admin role (``admin_role``, default
``VO-Admin``) in the VO's root group. Every refusal raises :class:`VoDenied` naming
the rule. The store is authoritative: a suspension or a role change counts from the
next call, whatever attribute certificates the member still carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, delete, select

from gproc import migrations
from gproc.models import utcnow
from gproc.registry import make_engine
from gproc.vo_models import (
    VoAuditRow,
    VoGroupRow,
    VoMemberRow,
    VoMembershipRow,
    VoRoleRow,
    VoRow,
)

VO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
GROUP_PATH = re.compile(r"^(/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){1,16}$")
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{0,500}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,189}$")
_DN_SPLIT = re.compile(r"/(?=[A-Za-z][A-Za-z0-9.]*=)")
_DN_ALIASES = {"email": "emailaddress", "e": "emailaddress", "userid": "uid"}
DEFAULT_ADMIN_ROLE = "VO-Admin"


class VoError(Exception):
    """Base of VO administration errors; ``code`` is stable (services map it)."""

    code = "Internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class VoNotFound(VoError):
    code = "NotFound"


class VoConflict(VoError):
    code = "Conflict"


class VoInvalid(VoError):
    code = "InvalidRequest"


class VoDenied(VoError):
    code = "NotAuthorised"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Actor:
    """Who asks: certificate DN and issuing CA DN (slash form), as authenticated."""

    dn: str
    ca_dn: str | None = None


@dataclass(frozen=True)
class Membership:
    group: str
    role: str | None = None

    @property
    def fqan(self) -> str:
        return self.group + (f"/Role={self.role}" if self.role else "")


@dataclass(frozen=True)
class MemberInfo:
    vo: str
    dn: str
    ca_dn: str
    email: str | None
    suspended: bool
    suspended_reason: str | None
    suspended_at: datetime | None
    created_at: datetime
    memberships: tuple[Membership, ...]

    def holds(self, group: str, role: str | None) -> bool:
        return Membership(group, role) in self.memberships


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: datetime
    actor: str
    vo: str
    action: str
    target: str
    detail: dict[str, object]


def dn_key(dn: str) -> str:
    """Canonical comparable form of a slash DN (keys case-folded, aliases merged)."""
    text = dn.strip()
    if not text.startswith("/") or len(text) > 512 or not _TEXT.match(text):
        raise VoInvalid(f"not a slash-form DN: {dn[:100]!r}", field="dn")
    parts = []
    for comp in _DN_SPLIT.split(text[1:]):
        key, sep, value = comp.partition("=")
        if not sep or not value.strip():
            raise VoInvalid(f"bad DN component {comp[:60]!r}", field="dn")
        k = key.strip().lower()
        parts.append(f"{_DN_ALIASES.get(k, k)}={value.strip()}")
    return "/" + "/".join(parts)


def check_vo_name(name: str) -> str:
    if not VO_NAME.match(name or ""):
        raise VoInvalid(f"bad VO name {name[:70]!r}: letters, digits, '.', '_', '-'", field="vo")
    return name


def check_group(vo: str, path: str) -> str:
    if not GROUP_PATH.match(path or "") or path.split("/")[1] != vo:
        raise VoInvalid(f"bad group {path[:200]!r}: a path /{vo}[/sub...]", field="group")
    return path


def check_role(role: str) -> str:
    if not ROLE_NAME.match(role or "") or role == "NULL":
        raise VoInvalid(f"bad role name {role[:70]!r}", field="role")
    return role


def check_text(value: str | None, field: str, *, required: bool = False) -> str:
    text = (value or "").strip()
    if (required and not text) or not _TEXT.match(text):
        raise VoInvalid(
            f"{field}: {'required, ' if required else ''}up to 500 printable characters",
            field=field,
        )
    return text


class VoStore:
    """The VO database and every administrative operation on it (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        admins: Iterable[str] = (),
        admin_role: str = DEFAULT_ADMIN_ROLE,
        auto_upgrade: bool = False,
    ) -> None:
        self.engine = make_engine(url)
        migrations.prepare(self.engine, auto_upgrade=auto_upgrade)  # the one schema
        self.admins = frozenset(dn_key(d) for d in admins)
        self.admin_role = check_role(admin_role)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # ---- authorisation ----------------------------------------------------------
    def is_global_admin(self, actor: Actor) -> bool:
        try:
            return dn_key(actor.dn) in self.admins
        except VoInvalid:
            return False

    def is_admin(self, actor: Actor, vo: str) -> bool:
        """A configured admin DN, or an active member with the admin role in /vo."""
        if self.is_global_admin(actor):
            return True
        try:
            info = self.lookup(vo, actor.dn, actor.ca_dn)
        except VoError:
            return False
        return info is not None and not info.suspended and info.holds("/" + vo, self.admin_role)

    def require_admin(self, actor: Actor, vo: str) -> None:
        if not self.is_admin(actor, vo):
            raise VoDenied(
                "vo-admin",
                f"{actor.dn} is not an administrator of VO {vo!r} "
                f"(needs role {self.admin_role} in /{vo} or a configured "
                "administrator DN)",
            )

    def _require_global(self, actor: Actor, what: str) -> None:
        if not self.is_global_admin(actor):
            raise VoDenied(
                "configured-admin", f"{actor.dn} may not {what}: only configured administrators may"
            )

    # ---- VOs, groups, roles -----------------------------------------------------
    def create_vo(self, actor: Actor, name: str, description: str = "") -> None:
        """A VO with its root group ``/name`` and its admin role."""
        self._require_global(actor, "create VOs")
        check_vo_name(name)
        desc = check_text(description, "description")
        with self.session() as s:
            if s.get(VoRow, name) is not None:
                raise VoConflict(f"VO {name!r} exists", field="vo")
            s.add(VoRow(name=name, description=desc))
            s.flush()
            s.add(VoGroupRow(vo=name, path="/" + name))
            s.add(VoRoleRow(vo=name, name=self.admin_role, description="VO administrator"))
            _audit(s, actor, name, "create-vo", name, description=desc)
            s.commit()

    def create_group(self, actor: Actor, vo: str, path: str, description: str = "") -> None:
        self._vo_admin(actor, vo)
        check_group(vo, path)
        desc = check_text(description, "description")
        with self.session() as s:
            if _group(s, vo, path) is not None:
                raise VoConflict(f"group {path} exists", field="group")
            parent = path.rsplit("/", 1)[0]
            if _group(s, vo, parent) is None:
                raise VoNotFound(f"parent group {parent} does not exist", field="group")
            s.add(VoGroupRow(vo=vo, path=path, description=desc))
            _audit(s, actor, vo, "create-group", path)
            s.commit()

    def create_role(self, actor: Actor, vo: str, role: str, description: str = "") -> None:
        self._vo_admin(actor, vo)
        check_role(role)
        desc = check_text(description, "description")
        with self.session() as s:
            if _role(s, vo, role) is not None:
                raise VoConflict(f"role {role} exists in VO {vo}", field="role")
            s.add(VoRoleRow(vo=vo, name=role, description=desc))
            _audit(s, actor, vo, "create-role", role)
            s.commit()

    def list_vos(self, actor: Actor) -> list[tuple[str, str]]:
        """(name, description) of the VOs ``actor`` administers."""
        with self.session() as s:
            rows = s.exec(select(VoRow).order_by(col(VoRow.name))).all()
        return [(r.name, r.description) for r in rows if self.is_admin(actor, r.name)]

    def list_groups(self, actor: Actor, vo: str) -> list[str]:
        self._vo_admin(actor, vo)
        with self.session() as s:
            return list(
                s.exec(
                    select(VoGroupRow.path)
                    .where(VoGroupRow.vo == vo)
                    .order_by(col(VoGroupRow.path))
                ).all()
            )

    def list_roles(self, actor: Actor, vo: str) -> list[str]:
        self._vo_admin(actor, vo)
        with self.session() as s:
            return list(
                s.exec(
                    select(VoRoleRow.name).where(VoRoleRow.vo == vo).order_by(col(VoRoleRow.name))
                ).all()
            )

    def _vo_admin(self, actor: Actor, vo: str) -> None:
        """Refuse non-admins first (they learn nothing about the VO), then unknown VOs."""
        check_vo_name(vo)
        self.require_admin(actor, vo)
        with self.session() as s:
            if s.get(VoRow, vo) is None:
                raise VoNotFound(f"unknown VO {vo!r}", field="vo")

    # ---- members ------------------------------------------------------------------
    def add_member(
        self, actor: Actor, vo: str, dn: str, ca_dn: str, email: str | None = None
    ) -> MemberInfo:
        """A new active member of ``/vo``."""
        self._vo_admin(actor, vo)
        keys = (dn_key(dn), _ca_key(ca_dn))
        if email and not _EMAIL.match(email):
            raise VoInvalid("bad e-mail address", field="email")
        with self.session() as s:
            if _find_members(s, vo, keys[0], keys[1]):
                raise VoConflict(f"{dn} ({ca_dn}) is already a member of {vo}", field="dn")
            row = VoMemberRow(
                vo=vo,
                dn=dn.strip(),
                ca_dn=ca_dn.strip(),
                dn_key=keys[0],
                ca_key=keys[1],
                email=email or None,
            )
            s.add(row)
            s.flush()
            s.add(VoMembershipRow(member_id=row.id or 0, group_path="/" + vo))
            _audit(s, actor, vo, "add-member", row.dn, ca=row.ca_dn, email=email)
            s.commit()
        return self._info(row)

    def suspend_member(
        self, actor: Actor, vo: str, dn: str, reason: str, ca_dn: str | None = None
    ) -> MemberInfo:
        self._vo_admin(actor, vo)
        why = check_text(reason, "reason", required=True)
        with self.session() as s:
            row = _member(s, vo, dn, ca_dn)
            if row.suspended:
                raise VoConflict(f"{row.dn} is already suspended", field="dn")
            row.suspended, row.suspended_reason, row.suspended_at = True, why, utcnow()
            s.add(row)
            _audit(s, actor, vo, "suspend-member", row.dn, ca=row.ca_dn, reason=why)
            s.commit()
        return self._info(row)

    def restore_member(
        self, actor: Actor, vo: str, dn: str, ca_dn: str | None = None
    ) -> MemberInfo:
        self._vo_admin(actor, vo)
        with self.session() as s:
            row = _member(s, vo, dn, ca_dn)
            if not row.suspended:
                raise VoConflict(f"{row.dn} is not suspended", field="dn")
            row.suspended, row.suspended_reason, row.suspended_at = False, None, None
            s.add(row)
            _audit(s, actor, vo, "restore-member", row.dn, ca=row.ca_dn)
            s.commit()
        return self._info(row)

    def remove_member(self, actor: Actor, vo: str, dn: str, ca_dn: str | None = None) -> None:
        self._vo_admin(actor, vo)
        with self.session() as s:
            row = _member(s, vo, dn, ca_dn)
            s.exec(
                delete(VoMembershipRow).where(  # type: ignore[call-overload]
                    col(VoMembershipRow.member_id) == row.id
                )
            )
            s.delete(row)
            _audit(s, actor, vo, "remove-member", row.dn, ca=row.ca_dn)
            s.commit()

    def grant(
        self,
        actor: Actor,
        vo: str,
        dn: str,
        group: str,
        role: str | None = None,
        ca_dn: str | None = None,
    ) -> MemberInfo:
        """Group membership, or a role in a group (which implies the membership)."""
        self._vo_admin(actor, vo)
        check_group(vo, group)
        with self.session() as s:
            row = _member(s, vo, dn, ca_dn)
            if _group(s, vo, group) is None:
                raise VoNotFound(f"unknown group {group}", field="group")
            if role is not None and _role(s, vo, check_role(role)) is None:
                raise VoNotFound(f"unknown role {role} in VO {vo}", field="role")
            held = _held(s, row.id)
            wanted = [(group, "")] + ([(group, role)] if role else [])
            new = [w for w in wanted if w not in held]
            if not new:
                raise VoConflict(f"{row.dn} already holds {Membership(group, role).fqan}")
            for g, r in new:
                s.add(VoMembershipRow(member_id=row.id or 0, group_path=g, role=r))
            _audit(s, actor, vo, "grant", row.dn, fqan=Membership(group, role).fqan)
            s.commit()
        return self._info(row)

    def revoke(
        self,
        actor: Actor,
        vo: str,
        dn: str,
        group: str,
        role: str | None = None,
        ca_dn: str | None = None,
    ) -> MemberInfo:
        """A role in a group, or (role None) the group with its subgroups and roles."""
        self._vo_admin(actor, vo)
        check_group(vo, group)
        if role is None and group == "/" + vo:
            raise VoInvalid(
                f"membership of the root group /{vo} is only ended by removing the member",
                field="group",
            )
        with self.session() as s:
            row = _member(s, vo, dn, ca_dn)
            held = _held(s, row.id)
            if role is not None:
                gone = [(group, check_role(role))]
            else:
                gone = [h for h in held if h[0] == group or h[0].startswith(group + "/")]
            gone = [g for g in gone if g in held]
            if not gone:
                raise VoNotFound(
                    f"{row.dn} does not hold {Membership(group, role).fqan}",
                    field="role" if role else "group",
                )
            for g, r in gone:
                s.exec(
                    delete(VoMembershipRow).where(  # type: ignore[call-overload]
                        col(VoMembershipRow.member_id) == row.id,
                        col(VoMembershipRow.group_path) == g,
                        col(VoMembershipRow.role) == r,
                    )
                )
            _audit(s, actor, vo, "revoke", row.dn, fqan=Membership(group, role).fqan)
            s.commit()
        return self._info(row)

    def list_members(
        self, actor: Actor, vo: str, search: str | None = None, suspended: bool | None = None
    ) -> list[MemberInfo]:
        """Members whose DN, CA or e-mail contains ``search`` (case-insensitive)."""
        self._vo_admin(actor, vo)
        needle = check_text(search, "search").lower()
        with self.session() as s:
            q = select(VoMemberRow).where(VoMemberRow.vo == vo).order_by(col(VoMemberRow.dn))
            if suspended is not None:
                q = q.where(VoMemberRow.suspended == suspended)
            rows = s.exec(q).all()
        hits = [
            r for r in rows if not needle or needle in f"{r.dn}\n{r.ca_dn}\n{r.email or ''}".lower()
        ]
        return [self._info(r) for r in hits]

    def get_member(self, actor: Actor, vo: str, dn: str, ca_dn: str | None = None) -> MemberInfo:
        self._vo_admin(actor, vo)
        with self.session() as s:
            return self._info(_member(s, vo, dn, ca_dn))

    # ---- audit ----------------------------------------------------------------------
    def audit_log(
        self, actor: Actor, vo: str, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        self._vo_admin(actor, vo)
        with self.session() as s:
            q = select(VoAuditRow).where(VoAuditRow.vo == vo)
            if since is not None:
                q = q.where(col(VoAuditRow.time) >= since)
            rows = s.exec(q.order_by(col(VoAuditRow.id)).limit(max(1, min(limit, 10000))))
            return [
                AuditEntry(
                    r.id or 0,
                    r.time,
                    r.actor,
                    r.vo,
                    r.action,
                    r.target,
                    json.loads(r.detail or "{}"),
                )
                for r in rows.all()
            ]

    # ---- look-ups for the attribute authority and the services ------------------------
    def manages(self, vo: str) -> bool:
        """True when this database holds VO ``vo``."""
        with self.session() as s:
            return VO_NAME.match(vo or "") is not None and s.get(VoRow, vo) is not None

    def lookup(self, vo: str, dn: str, ca_dn: str | None = None) -> MemberInfo | None:
        """The member (any standing), or None when not a member."""
        with self.session() as s:
            rows = _find_members(s, vo, dn_key(dn), _ca_key(ca_dn) if ca_dn else None)
            if len(rows) > 1:
                raise VoInvalid(
                    f"{dn} is a member with certificates of several CAs: name the CA", field="ca_dn"
                )
            return self._info(rows[0]) if rows else None

    def standing(self, vo: str, dn: str, ca_dn: str) -> str | None:
        """Why ``dn`` may not act in ``vo`` now (removed, suspended), or None if active.
        Only meaningful for VOs this database manages (see :meth:`manages`)."""
        info = self.lookup(vo, dn, ca_dn)
        if info is None:
            return f"{dn} is not (or no longer) a member of VO {vo}"
        if info.suspended:
            when = info.suspended_at.isoformat(timespec="seconds") if info.suspended_at else "?"
            return f"{dn} is suspended from VO {vo} since {when}: {info.suspended_reason}"
        return None

    def _info(self, row: VoMemberRow) -> MemberInfo:
        with self.session() as s:
            held = sorted(_held(s, row.id))
        return MemberInfo(
            row.vo,
            row.dn,
            row.ca_dn,
            row.email,
            row.suspended,
            row.suspended_reason,
            row.suspended_at,
            row.created_at,
            tuple(Membership(g, r or None) for g, r in held),
        )


def membership_refusal(store: VoStore, vos: Iterable[str], dn: str, ca_dn: str) -> str | None:
    """Why a caller presenting attributes of ``vos`` must be refused now, or None.

    For services (processing, gateway) that trust ACs of VOs this database manages: an
    unexpired AC does not outlive a suspension or a removal. VOs managed elsewhere are
    left to the AC alone."""
    for vo in dict.fromkeys(vos):
        if store.manages(vo):
            reason = store.standing(vo, dn, ca_dn)
            if reason is not None:
                return reason
    return None


def _ca_key(ca_dn: str) -> str:
    try:
        return dn_key(ca_dn)
    except VoInvalid as exc:
        raise VoInvalid(f"CA {exc}", field="ca_dn") from None


def _group(s: Session, vo: str, path: str) -> VoGroupRow | None:
    return s.exec(select(VoGroupRow).where(VoGroupRow.vo == vo, VoGroupRow.path == path)).first()


def _role(s: Session, vo: str, name: str) -> VoRoleRow | None:
    return s.exec(select(VoRoleRow).where(VoRoleRow.vo == vo, VoRoleRow.name == name)).first()


def _find_members(s: Session, vo: str, dnk: str, cak: str | None) -> Sequence[VoMemberRow]:
    q = select(VoMemberRow).where(VoMemberRow.vo == vo, VoMemberRow.dn_key == dnk)
    if cak is not None:
        q = q.where(VoMemberRow.ca_key == cak)
    return s.exec(q).all()


def _member(s: Session, vo: str, dn: str, ca_dn: str | None) -> VoMemberRow:
    rows = _find_members(s, vo, dn_key(dn), _ca_key(ca_dn) if ca_dn else None)
    if not rows:
        raise VoNotFound(f"{dn} is not a member of VO {vo}", field="dn")
    if len(rows) > 1:
        raise VoInvalid(f"{dn} has certificates of several CAs in {vo}: name the CA", field="ca_dn")
    return rows[0]


def _held(s: Session, member_id: int | None) -> set[tuple[str, str]]:
    rows = s.exec(
        select(VoMembershipRow.group_path, VoMembershipRow.role).where(
            VoMembershipRow.member_id == member_id
        )
    ).all()
    return {(g, r) for g, r in rows}


def _audit(s: Session, actor: Actor, vo: str, action: str, target: str, **detail: object) -> None:
    s.add(
        VoAuditRow(
            actor=actor.dn,
            vo=vo,
            action=action,
            target=target[:600],
            detail=json.dumps(
                {k: v for k, v in detail.items() if v is not None}, sort_keys=True, default=str
            ),
        )
    )


def count_audit(store: VoStore, vo: str) -> int:
    """Number of audit entries of ``vo`` (for tests and reports)."""
    with store.session() as s:
        return int(
            s.exec(select(func.count()).select_from(VoAuditRow).where(VoAuditRow.vo == vo)).one()
        )
