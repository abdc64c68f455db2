"""Catalogue tables: datasets, their properties, the gazetteer's places.

The schema the catalogue created for itself before it had migrations, so such an
unversioned catalogue is stamped at this revision. Engine-aware: on SQLite an R*Tree
virtual table of footprint boxes; on PostgreSQL the PostGIS extension and a
``geometry`` footprint column with a GiST index.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

_DATASET_INDEXES = (
    ("ix_catalogue_dataset_area", ["area"]),
    ("ix_catalogue_dataset_type", ["type"]),
    ("ix_catalogue_dataset_vendor", ["vendor"]),
    ("ix_catalogue_dataset_acquired", ["acquired"]),
    ("ix_catalogue_dataset_name", ["name", "rid"]),
    ("ix_catalogue_dataset_acquired_rid", ["acquired", "rid"]),
)


def _dataset_columns() -> list[sa.Column[Any]]:
    s, f, i = sa.String, sa.Float, sa.Integer
    cols: list[sa.Column[Any]] = [
        sa.Column("rid", i(), primary_key=True, autoincrement=True),
        sa.Column("id", s(32), nullable=False, unique=True),
        sa.Column("location", s(4096), nullable=False, unique=True),
        sa.Column("area", s(512), nullable=False),
        sa.Column("datagroup", s(128), nullable=False),
        sa.Column("dataset", s(128), nullable=False),
        sa.Column("name", s(257), nullable=False),
        sa.Column("type", s(160), nullable=False),
        sa.Column("vendor", s(1024)),
        sa.Column("sensor", s(1024)),
        sa.Column("title", s(1024)),
        sa.Column("acquired", f(), nullable=False),
        sa.Column("registered", f(), nullable=False),
        sa.Column("updated", f(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("crs", sa.Text(), nullable=False),
        sa.Column("res_x", f(), nullable=False),
        sa.Column("res_y", f(), nullable=False),
        sa.Column("width", i(), nullable=False),
        sa.Column("height", i(), nullable=False),
        sa.Column("bands", i(), nullable=False),
        sa.Column("dtype", s(32), nullable=False),
        sa.Column("nodata", f()),
        sa.Column("driver", s(64), nullable=False),
        sa.Column("size", i(), nullable=False),
        sa.Column("mtime", f(), nullable=False),
        sa.Column("adler32", s(8), nullable=False),
        sa.Column("sha256", s(64), nullable=False),
        sa.Column("owner", s(1024)),
        sa.Column("quicklook", s(4096)),
        sa.Column("provenance", sa.Text()),
        sa.Column("missing", sa.Boolean(), nullable=False),
        sa.Column("footprint_wkt", sa.Text(), nullable=False),
        sa.Column("minx", f(), nullable=False),
        sa.Column("miny", f(), nullable=False),
        sa.Column("maxx", f(), nullable=False),
        sa.Column("maxy", f(), nullable=False),
    ]
    return cols


def upgrade() -> None:
    postgis = op.get_bind().dialect.name == "postgresql"
    if postgis:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "catalogue_dataset",
        *_dataset_columns(),
        sa.UniqueConstraint("datagroup", "dataset", name="uq_catalogue_dataset_name"),
    )
    for name, columns in _DATASET_INDEXES:
        op.create_index(name, "catalogue_dataset", columns)
    if postgis:
        op.execute(
            "ALTER TABLE catalogue_dataset ADD COLUMN footprint geometry(Geometry, 4326) NOT NULL"
        )
        op.execute(
            "CREATE INDEX ix_catalogue_dataset_footprint ON catalogue_dataset "
            "USING gist (footprint)"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE catalogue_dataset_rtree USING rtree(rid, minx, maxx, miny, maxy)"
        )
    op.create_table(
        "catalogue_property",
        sa.Column(
            "rid",
            sa.Integer(),
            sa.ForeignKey("catalogue_dataset.rid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(1024), nullable=False),
    )
    op.create_index("ix_catalogue_property_kv", "catalogue_property", ["key", "value"])
    op.create_table(
        "catalogue_place",
        sa.Column("pid", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("country", sa.String(256), nullable=False),
        sa.Column("admin", sa.String(256), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("geometry_wkt", sa.Text(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_catalogue_place_key", "catalogue_place", ["key"])


def downgrade() -> None:
    op.drop_table("catalogue_place")
    op.drop_table("catalogue_property")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE catalogue_dataset_rtree")
    op.drop_table("catalogue_dataset")
