"""0.1.0 schema: tasks, task_events, gproc_meta and the VO tables.

Databases written by gproc 0.1.0 carry no revision; they already hold some or all
of these tables (the registry and the VO store each created their own), so each
table is created only when missing and an unversioned database upgrades from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def _s(length: int | None = None) -> sa.String:
    return sa.String(length)


def _t() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _tables() -> list[tuple[str, list[SchemaItem], list[tuple[str, list[str]]]]]:
    """(name, columns and constraints, indexes) in creation order (FK targets first)."""
    return [
        (
            "gproc_meta",
            [
                sa.Column("key", _s(64), nullable=False),
                sa.Column("value", _s(), nullable=False),
                sa.PrimaryKeyConstraint("key"),
            ],
            [],
        ),
        (
            "task_events",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("task_id", _s(32), nullable=False),
                sa.Column("time", _t(), nullable=False),
                sa.Column("kind", _s(32), nullable=False),
                sa.Column("state", _s(16), nullable=True),
                sa.Column("detail", _s(), nullable=False),
                sa.PrimaryKeyConstraint("id"),
            ],
            [("ix_task_events_task_id", ["task_id"])],
        ),
        (
            "tasks",
            [
                sa.Column("id", _s(32), nullable=False),
                sa.Column("client_request_id", _s(128), nullable=True),
                sa.Column("owner_dn", _s(512), nullable=False),
                sa.Column("owner_vo", _s(128), nullable=True),
                sa.Column("owner_fqans", _s(), nullable=False),
                sa.Column("tool", _s(64), nullable=False),
                sa.Column("request_json", _s(), nullable=False),
                sa.Column("plan_json", _s(), nullable=False),
                sa.Column("job_description", _s(), nullable=False),
                sa.Column("accounting_group", _s(128), nullable=True),
                sa.Column("x509_proxy", _s(), nullable=True),
                sa.Column("state", _s(16), nullable=False),
                sa.Column("state_reason", _s(), nullable=True),
                sa.Column("attempt", sa.Integer(), nullable=False),
                sa.Column("wms", _s(32), nullable=False),
                sa.Column("job_id", _s(256), nullable=True),
                sa.Column("hold_reason", _s(), nullable=True),
                sa.Column("hold_code", sa.Integer(), nullable=True),
                sa.Column("exit_code", sa.Integer(), nullable=True),
                sa.Column("outputs_json", _s(), nullable=True),
                sa.Column("created_at", _t(), nullable=False),
                sa.Column("updated_at", _t(), nullable=False),
                sa.Column("submitted_at", _t(), nullable=True),
                sa.Column("started_at", _t(), nullable=True),
                sa.Column("finished_at", _t(), nullable=True),
                sa.Column("retrieved_at", _t(), nullable=True),
                sa.PrimaryKeyConstraint("id"),
                sa.UniqueConstraint("owner_dn", "client_request_id", name="uq_owner_request"),
            ],
            [
                ("ix_tasks_created_at", ["created_at"]),
                ("ix_tasks_job_id", ["job_id"]),
                ("ix_tasks_owner_dn", ["owner_dn"]),
                ("ix_tasks_owner_vo", ["owner_vo"]),
                ("ix_tasks_state", ["state"]),
                ("ix_tasks_tool", ["tool"]),
            ],
        ),
        (
            "vo_audit",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("time", _t(), nullable=False),
                sa.Column("actor", _s(512), nullable=False),
                sa.Column("vo", _s(64), nullable=False),
                sa.Column("action", _s(32), nullable=False),
                sa.Column("target", _s(600), nullable=False),
                sa.Column("detail", _s(), nullable=False),
                sa.PrimaryKeyConstraint("id"),
            ],
            [("ix_vo_audit_time", ["time"]), ("ix_vo_audit_vo", ["vo"])],
        ),
        (
            "vo_vos",
            [
                sa.Column("name", _s(64), nullable=False),
                sa.Column("description", _s(500), nullable=False),
                sa.Column("created_at", _t(), nullable=False),
                sa.PrimaryKeyConstraint("name"),
            ],
            [],
        ),
        (
            "vo_groups",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("vo", _s(64), nullable=False),
                sa.Column("path", _s(512), nullable=False),
                sa.Column("description", _s(500), nullable=False),
                sa.Column("created_at", _t(), nullable=False),
                sa.ForeignKeyConstraint(["vo"], ["vo_vos.name"]),
                sa.PrimaryKeyConstraint("id"),
                sa.UniqueConstraint("vo", "path", name="uq_vo_group"),
            ],
            [("ix_vo_groups_vo", ["vo"])],
        ),
        (
            "vo_members",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("vo", _s(64), nullable=False),
                sa.Column("dn", _s(512), nullable=False),
                sa.Column("ca_dn", _s(512), nullable=False),
                sa.Column("dn_key", _s(600), nullable=False),
                sa.Column("ca_key", _s(600), nullable=False),
                sa.Column("email", _s(254), nullable=True),
                sa.Column("suspended", sa.Boolean(), nullable=False),
                sa.Column("suspended_reason", _s(500), nullable=True),
                sa.Column("suspended_at", _t(), nullable=True),
                sa.Column("created_at", _t(), nullable=False),
                sa.ForeignKeyConstraint(["vo"], ["vo_vos.name"]),
                sa.PrimaryKeyConstraint("id"),
                sa.UniqueConstraint("vo", "dn_key", "ca_key", name="uq_vo_member"),
            ],
            [("ix_vo_members_dn_key", ["dn_key"]), ("ix_vo_members_vo", ["vo"])],
        ),
        (
            "vo_roles",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("vo", _s(64), nullable=False),
                sa.Column("name", _s(64), nullable=False),
                sa.Column("description", _s(500), nullable=False),
                sa.Column("created_at", _t(), nullable=False),
                sa.ForeignKeyConstraint(["vo"], ["vo_vos.name"]),
                sa.PrimaryKeyConstraint("id"),
                sa.UniqueConstraint("vo", "name", name="uq_vo_role"),
            ],
            [("ix_vo_roles_vo", ["vo"])],
        ),
        (
            "vo_memberships",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("member_id", sa.Integer(), nullable=False),
                sa.Column("group_path", _s(512), nullable=False),
                sa.Column("role", _s(64), nullable=False),
                sa.Column("created_at", _t(), nullable=False),
                sa.ForeignKeyConstraint(["member_id"], ["vo_members.id"]),
                sa.PrimaryKeyConstraint("id"),
                sa.UniqueConstraint("member_id", "group_path", "role", name="uq_vo_membership"),
            ],
            [("ix_vo_memberships_member_id", ["member_id"])],
        ),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items, indexes in _tables():
        if name in existing:  # written by 0.1.0 already
            continue
        op.create_table(name, *items)
        for index, columns in indexes:
            op.create_index(index, name, columns, unique=False)


def downgrade() -> None:
    for name, _items, _indexes in reversed(_tables()):
        op.drop_table(name)
