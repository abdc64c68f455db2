"""Database rows of VO administration (SQLModel), in the same SQL database as tasks.

A VO has hierarchical groups (``/vo``, ``/vo/sub``) and roles; members are
identified by certificate DN *and* issuing CA DN; a membership is (member, group,
role) with ``role = ""`` for plain group membership, so one unique constraint covers
both. Removing a member deletes its rows; the audit log (append-only) keeps the
history. Tables carry the ``vo_`` prefix; they belong to gproc's one schema
(:mod:`gproc.migrations`), created with the others by whichever opens the database first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from gproc.models import utcnow


class VoRow(SQLModel, table=True):
    __tablename__ = "vo_vos"

    name: str = Field(primary_key=True, max_length=64)
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class VoGroupRow(SQLModel, table=True):
    __tablename__ = "vo_groups"
    __table_args__ = (UniqueConstraint("vo", "path", name="uq_vo_group"),)

    id: int | None = Field(default=None, primary_key=True)
    vo: str = Field(foreign_key="vo_vos.name", index=True, max_length=64)
    path: str = Field(max_length=512)
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class VoRoleRow(SQLModel, table=True):
    __tablename__ = "vo_roles"
    __table_args__ = (UniqueConstraint("vo", "name", name="uq_vo_role"),)

    id: int | None = Field(default=None, primary_key=True)
    vo: str = Field(foreign_key="vo_vos.name", index=True, max_length=64)
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class VoMemberRow(SQLModel, table=True):
    __tablename__ = "vo_members"
    __table_args__ = (UniqueConstraint("vo", "dn_key", "ca_key", name="uq_vo_member"),)

    id: int | None = Field(default=None, primary_key=True)
    vo: str = Field(foreign_key="vo_vos.name", index=True, max_length=64)
    dn: str = Field(max_length=512)  # as given (slash form)
    ca_dn: str = Field(max_length=512)
    dn_key: str = Field(index=True, max_length=600)  # canonical form for look-ups
    ca_key: str = Field(max_length=600)
    email: str | None = Field(default=None, max_length=254)
    suspended: bool = False
    suspended_reason: str | None = Field(default=None, max_length=500)
    suspended_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class VoMembershipRow(SQLModel, table=True):
    __tablename__ = "vo_memberships"
    __table_args__ = (UniqueConstraint("member_id", "group_path", "role", name="uq_vo_membership"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="vo_members.id", index=True)
    group_path: str = Field(max_length=512)
    role: str = Field(default="", max_length=64)  # "" = group membership without a role
    created_at: datetime = Field(default_factory=utcnow)


class VoAuditRow(SQLModel, table=True):
    """Append-only: one row per change (who, what, when); never updated or deleted."""

    __tablename__ = "vo_audit"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=512)
    vo: str = Field(index=True, max_length=64)
    action: str = Field(max_length=32)
    target: str = Field(default="", max_length=600)
    detail: str = ""  # JSON object
