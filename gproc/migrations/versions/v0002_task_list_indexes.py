"""Task-list indexes: keyset pages by (created_at, id) per owner, VO, state, or all.

Composite indexes replace the single-column ones on owner_dn, owner_vo, state and
created_at (each is a prefix of a new one), so a page of ``ListTasks`` reads only its rows.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

NEW = {
    "ix_tasks_owner_created": ["owner_dn", "created_at", "id"],
    "ix_tasks_owner_state_created": ["owner_dn", "state", "created_at", "id"],
    "ix_tasks_vo_created": ["owner_vo", "created_at", "id"],
    "ix_tasks_state_created": ["state", "created_at", "id"],
    "ix_tasks_created": ["created_at", "id"],
}
OLD = {
    "ix_tasks_owner_dn": ["owner_dn"],
    "ix_tasks_owner_vo": ["owner_vo"],
    "ix_tasks_state": ["state"],
    "ix_tasks_created_at": ["created_at"],
}


def upgrade() -> None:
    for name, columns in NEW.items():
        op.create_index(name, "tasks", columns, unique=False)
    for name in OLD:
        op.drop_index(name, table_name="tasks")


def downgrade() -> None:
    for name, columns in OLD.items():
        op.create_index(name, "tasks", columns, unique=False)
    for name in NEW:
        op.drop_index(name, table_name="tasks")
