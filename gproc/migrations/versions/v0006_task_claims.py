"""Task claims: which replica is submitting a task, and until when.

``tasks.claimed_by`` (the replica's name) and ``tasks.claim_until`` (the lease) make
the "being submitted right now" mark durable across replicas: the tracker's
recovery leaves a task alone while a live claim covers it, and takes it over once
the lease has run out (its claimant died).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("claim_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("claim_until")
        batch.drop_column("claimed_by")
