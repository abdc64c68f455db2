"""Portal sessions: portal_sessions, portal_submissions.

Tables of gproc.portal_models: the web portal's server-side sessions (the user's
sealed proxy, CSRF token, expiry), shared by every portal replica, and the input
datasets of what the portal submitted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("dn", sa.String(1024), nullable=False),
        sa.Column("vo", sa.String(128), nullable=True),
        sa.Column("fqans", sa.String(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("proxy", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_portal_sessions_expires", "portal_sessions", ["expires"], unique=False)
    op.create_table(
        "portal_submissions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dn", sa.String(1024), nullable=False),
        sa.Column("inputs", sa.String(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portal_submissions_dn", "portal_submissions", ["dn"], unique=False)


def downgrade() -> None:
    op.drop_table("portal_submissions")
    op.drop_table("portal_sessions")
