"""Workflows: workflows, workflow_nodes, workflow_events, workflow_notifications.

Tables of gproc.workflow_models (GiSHEO SiLK / structured workflows run by DAGMan):
the workflow rows, one row per DAG node, the append-only history, and the outbox of
callback deliveries.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def _s(length: int | None = None) -> sa.String:
    return sa.String(length)


def _t() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", _s(32), nullable=False),
        sa.Column("time", _t(), nullable=False),
        sa.Column("kind", _s(32), nullable=False),
        sa.Column("state", _s(16), nullable=True),
        sa.Column("detail", _s(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_workflow_events_workflow_id", "workflow_events", ["workflow_id"], unique=False
    )
    op.create_table(
        "workflow_nodes",
        sa.Column("workflow_id", _s(32), nullable=False),
        sa.Column("name", _s(64), nullable=False),
        sa.Column("node", _s(32), nullable=False),
        sa.Column("branch", sa.Integer(), nullable=False),
        sa.Column("tool", _s(64), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("state", _s(16), nullable=False),
        sa.Column("job_id", _s(256), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("hold_reason", _s(), nullable=True),
        sa.Column("detail", _s(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("updated_at", _t(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "name"),
    )
    op.create_table(
        "workflow_notifications",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("workflow_id", _s(32), nullable=False),
        sa.Column("url", _s(2048), nullable=False),
        sa.Column("body", _s(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _t(), nullable=False),
        sa.Column("delivered_at", _t(), nullable=True),
        sa.Column("last_error", _s(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_workflow_notifications_delivered_at",
        "workflow_notifications",
        ["delivered_at"],
        unique=False,
    )
    op.create_index(
        "ix_workflow_notifications_next_attempt_at",
        "workflow_notifications",
        ["next_attempt_at"],
        unique=False,
    )
    op.create_index(
        "ix_workflow_notifications_workflow_id",
        "workflow_notifications",
        ["workflow_id"],
        unique=False,
    )
    op.create_table(
        "workflows",
        sa.Column("id", _s(32), nullable=False),
        sa.Column("name", _s(64), nullable=False),
        sa.Column("client_request_id", _s(128), nullable=True),
        sa.Column("owner_dn", _s(512), nullable=False),
        sa.Column("owner_vo", _s(128), nullable=True),
        sa.Column("owner_fqans", _s(), nullable=False),
        sa.Column("accounting_group", _s(128), nullable=True),
        sa.Column("x509_proxy", _s(), nullable=True),
        sa.Column("form", _s(8), nullable=False),
        sa.Column("document", _s(), nullable=False),
        sa.Column("compiled_json", _s(), nullable=False),
        sa.Column("keep_intermediate", sa.Boolean(), nullable=False),
        sa.Column("state", _s(16), nullable=False),
        sa.Column("state_reason", _s(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_id", _s(256), nullable=True),
        sa.Column("outputs_json", _s(), nullable=True),
        sa.Column("callback_url", _s(2048), nullable=True),
        sa.Column("callback_secret", _s(128), nullable=True),
        sa.Column("created_at", _t(), nullable=False),
        sa.Column("updated_at", _t(), nullable=False),
        sa.Column("submitted_at", _t(), nullable=True),
        sa.Column("finished_at", _t(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_dn", "client_request_id", name="uq_workflow_owner_request"),
    )
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"], unique=False)
    op.create_index("ix_workflows_job_id", "workflows", ["job_id"], unique=False)
    op.create_index("ix_workflows_owner_dn", "workflows", ["owner_dn"], unique=False)
    op.create_index("ix_workflows_owner_vo", "workflows", ["owner_vo"], unique=False)
    op.create_index("ix_workflows_state", "workflows", ["state"], unique=False)


def downgrade() -> None:
    for table in ("workflows", "workflow_notifications", "workflow_nodes", "workflow_events"):
        op.drop_table(table)
