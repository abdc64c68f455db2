"""The VO administration service: every operation authenticates the caller from the
TLS identity (never the envelope), then calls :class:`gproc.vo.VoStore`, which checks
that the caller administers the VO and audits the change. Errors become declared
faults through the service's one error table (``types.ERRORS``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from spyne import Boolean, DateTime, Integer, Unicode, rpc

from gproc.services.chassis import FaultingService, identity_of
from gproc.services.vo_admin import types as w
from gproc.vo import Actor, MemberInfo, VoInvalid, VoStore
from gproc.vo_transfer import dumps, export_vo, import_vo

log = logging.getLogger("gproc.vo_admin")
MAX_DOCUMENT = 16 * 1024 * 1024
_F = w.ADMIN_FAULTS


def _store(ctx: Any) -> VoStore:
    store: VoStore = ctx.app.vo_store
    return store


def _actor(ctx: Any) -> Actor:
    ident = identity_of(ctx, w.ERRORS)
    return Actor(ident.subject_grid, ident.issuer_grid)


to_fault = w.ERRORS.to_fault


def member(m: MemberInfo) -> w.Member:
    return w.Member(
        vo=m.vo,
        dn=m.dn,
        ca_dn=m.ca_dn,
        email=m.email,
        suspended=m.suspended,
        suspended_reason=m.suspended_reason,
        suspended_at=m.suspended_at,
        created_at=m.created_at,
        fqans=[x.fqan for x in m.memberships],
    )


class VoAdminService(FaultingService):
    """VO administration: VOs, groups, roles, members, memberships, audit log."""

    ERRORS = w.ERRORS

    # ---- VOs, groups, roles ----------------------------------------------------
    @rpc(w.NAME, w.TEXT, _returns=Unicode, _out_variable_name="vo", _throws=_F)
    def CreateVO(ctx: Any, name: str, description: str | None) -> str:  # noqa: N802,N805
        _store(ctx).create_vo(_actor(ctx), name, description or "")
        return name

    @rpc(w.NAME, w.GROUP, w.TEXT, _returns=Unicode, _out_variable_name="group", _throws=_F)
    def CreateGroup(ctx: Any, vo: str, group: str, description: str | None) -> str:  # noqa: N802,N805
        _store(ctx).create_group(_actor(ctx), vo, group, description or "")
        return group

    @rpc(w.NAME, w.NAME, w.TEXT, _returns=Unicode, _out_variable_name="role", _throws=_F)
    def CreateRole(ctx: Any, vo: str, role: str, description: str | None) -> str:  # noqa: N802,N805
        _store(ctx).create_role(_actor(ctx), vo, role, description or "")
        return role

    @rpc(_returns=w.many(w.VoInfo), _out_variable_name="vo", _throws=_F)
    def ListVOs(ctx: Any) -> list[w.VoInfo]:  # noqa: N802,N805
        return [w.VoInfo(name=n, description=d) for n, d in _store(ctx).list_vos(_actor(ctx))]

    @rpc(w.NAME, _returns=w.many(Unicode), _out_variable_name="group", _throws=_F)
    def ListGroups(ctx: Any, vo: str) -> list[str]:  # noqa: N802,N805
        return _store(ctx).list_groups(_actor(ctx), vo)

    @rpc(w.NAME, _returns=w.many(Unicode), _out_variable_name="role", _throws=_F)
    def ListRoles(ctx: Any, vo: str) -> list[str]:  # noqa: N802,N805
        return _store(ctx).list_roles(_actor(ctx), vo)

    # ---- members -----------------------------------------------------------------
    @rpc(
        w.NAME,
        w.DN,
        w.DN,
        Unicode(max_len=254),
        _returns=w.Member,
        _out_variable_name="member",
        _throws=_F,
    )
    def AddMember(ctx: Any, vo: str, dn: str, ca_dn: str, email: str | None) -> w.Member:  # noqa: N802,N805
        return member(_store(ctx).add_member(_actor(ctx), vo, dn, ca_dn, email))

    @rpc(
        w.NAME,
        w.DN,
        Unicode(max_len=500, min_occurs=1, nillable=False),
        w.OPT_DN,
        _returns=w.Member,
        _out_variable_name="member",
        _throws=_F,
    )
    def SuspendMember(
        ctx: Any,
        vo: str,
        dn: str,
        reason: str,  # noqa: N802,N805
        ca_dn: str | None,
    ) -> w.Member:
        return member(_store(ctx).suspend_member(_actor(ctx), vo, dn, reason, ca_dn))

    @rpc(w.NAME, w.DN, w.OPT_DN, _returns=w.Member, _out_variable_name="member", _throws=_F)
    def RestoreMember(ctx: Any, vo: str, dn: str, ca_dn: str | None) -> w.Member:  # noqa: N802,N805
        return member(_store(ctx).restore_member(_actor(ctx), vo, dn, ca_dn))

    @rpc(w.NAME, w.DN, w.OPT_DN, _returns=Unicode, _out_variable_name="dn", _throws=_F)
    def RemoveMember(ctx: Any, vo: str, dn: str, ca_dn: str | None) -> str:  # noqa: N802,N805
        _store(ctx).remove_member(_actor(ctx), vo, dn, ca_dn)
        return dn

    @rpc(
        w.NAME,
        w.DN,
        w.GROUP,
        w.ROLE,
        w.OPT_DN,
        _returns=w.Member,
        _out_variable_name="member",
        _throws=_F,
    )
    def GrantMembership(
        ctx: Any,
        vo: str,
        dn: str,
        group: str,
        role: str | None,  # noqa: N802,N805
        ca_dn: str | None,
    ) -> w.Member:
        return member(_store(ctx).grant(_actor(ctx), vo, dn, group, role or None, ca_dn))

    @rpc(
        w.NAME,
        w.DN,
        w.GROUP,
        w.ROLE,
        w.OPT_DN,
        _returns=w.Member,
        _out_variable_name="member",
        _throws=_F,
    )
    def RevokeMembership(
        ctx: Any,
        vo: str,
        dn: str,
        group: str,
        role: str | None,  # noqa: N802,N805
        ca_dn: str | None,
    ) -> w.Member:
        return member(_store(ctx).revoke(_actor(ctx), vo, dn, group, role or None, ca_dn))

    @rpc(
        w.NAME,
        Unicode(max_len=200),
        Boolean,
        _returns=w.many(w.Member),
        _out_variable_name="member",
        _throws=_F,
    )
    def ListMembers(
        ctx: Any,
        vo: str,
        search: str | None,  # noqa: N802,N805
        suspended: bool | None,
    ) -> list[w.Member]:
        return [member(m) for m in _store(ctx).list_members(_actor(ctx), vo, search, suspended)]

    @rpc(w.NAME, w.DN, w.OPT_DN, _returns=w.Member, _out_variable_name="member", _throws=_F)
    def GetMember(ctx: Any, vo: str, dn: str, ca_dn: str | None) -> w.Member:  # noqa: N802,N805
        return member(_store(ctx).get_member(_actor(ctx), vo, dn, ca_dn))

    # ---- bulk and audit --------------------------------------------------------------
    @rpc(w.NAME, _returns=Unicode, _out_variable_name="document", _throws=_F)
    def ExportVO(ctx: Any, vo: str) -> str:  # noqa: N802,N805
        return dumps(export_vo(_store(ctx), _actor(ctx), vo))

    @rpc(
        Unicode(max_len=MAX_DOCUMENT, min_occurs=1, nillable=False),
        Boolean,
        _returns=w.ImportResult,
        _out_variable_name="result",
        _throws=_F,
    )
    def ImportVO(ctx: Any, document: str, prune: bool | None) -> w.ImportResult:  # noqa: N802,N805
        try:
            doc = json.loads(document)
        except ValueError as exc:
            raise VoInvalid(f"not JSON: {exc}", field="document") from None
        counts = import_vo(_store(ctx), _actor(ctx), doc, prune=bool(prune))
        return w.ImportResult(vo=str(doc["vo"]["name"]), **counts)

    @rpc(
        w.NAME,
        DateTime,
        Integer(ge=1, le=10000),
        _returns=w.many(w.AuditEntry),
        _out_variable_name="entry",
        _throws=_F,
    )
    def GetAuditLog(
        ctx: Any,
        vo: str,
        since: datetime | None,  # noqa: N802,N805
        limit: int | None,
    ) -> list[w.AuditEntry]:
        rows = _store(ctx).audit_log(_actor(ctx), vo, since, limit or 1000)
        return [
            w.AuditEntry(
                id=r.id,
                time=r.time,
                actor=r.actor,
                vo=r.vo,
                action=r.action,
                target=r.target,
                detail=json.dumps(r.detail, sort_keys=True),
            )
            for r in rows
        ]


OPERATIONS = tuple(VoAdminService.public_methods)
__all__ = ["OPERATIONS", "VoAdminService"]
