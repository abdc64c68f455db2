"""Alembic environment: runs on the connection gproc hands over (see __init__.py).

gproc never runs Alembic from an ini file; :mod:`gproc.migrations` builds the
configuration and passes an open connection in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from gproc.migrations import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through gproc.migrations
    raise RuntimeError("run migrations through gproc.migrations (gproc db upgrade)")

context.configure(
    connection=connection,
    target_metadata=metadata(),
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
