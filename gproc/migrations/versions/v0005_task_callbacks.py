"""Task callbacks: task_subscriptions, task_notifications.

Tables of gproc.task_notify_models: a task's callback (URL and signing secret) and
the outbox of its state-change events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_subscriptions",
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_table(
        "task_notifications",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("delivered_at", "next_attempt_at", "task_id"):
        op.create_index(
            f"ix_task_notifications_{column}", "task_notifications", [column], unique=False
        )


def downgrade() -> None:
    op.drop_table("task_notifications")
    op.drop_table("task_subscriptions")
