"""Alembic environment of the catalogue's chain: runs on the connection handed over
by :mod:`gproc.migrations.catalogue` (never from an ini file)."""

from __future__ import annotations

from alembic import context

from gproc.migrations.catalogue import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through gproc.migrations.catalogue
    raise RuntimeError("run catalogue migrations through gproc (gproc catalogue db upgrade)")

context.configure(
    connection=connection,
    target_metadata=None,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
