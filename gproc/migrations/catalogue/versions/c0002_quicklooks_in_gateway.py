"""Quicklooks move into the gateway: forget the service-local PNG paths.

Before this revision a quicklook was a PNG in the service's state directory; now it
is a gateway file beside its raster (``<folder>/.quicklooks/<name>.png``). Entries
still naming a local file lose that link (the next ``gproc catalogue scan`` of their
folder renders them into the gateway); the rows are otherwise unchanged.
"""

from __future__ import annotations

from alembic import op

revision = "c0002"
down_revision: str | None = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE catalogue_dataset SET quicklook = NULL "
        "WHERE quicklook IS NOT NULL AND quicklook NOT LIKE '%/.quicklooks/%'"
    )


def downgrade() -> None:
    """Nothing to restore: the local files were never part of the gateway."""
