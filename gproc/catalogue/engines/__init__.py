"""Catalogue engines: SQLite (embedded default) and PostGIS, chosen by the URL."""

from __future__ import annotations

from gproc.catalogue.engines.base import CatalogueEngine


def open_engine(url: str, create: bool = True, *, auto_upgrade: bool = False) -> CatalogueEngine:
    """The engine for a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``);
    with ``create``, its schema brought to head (see :mod:`gproc.migrations.catalogue`)."""
    if url.startswith("sqlite"):
        from gproc.catalogue.engines.sqlite import SqliteEngine

        engine: CatalogueEngine = SqliteEngine(url)
    elif url.startswith("postgresql"):
        from gproc.catalogue.engines.postgis import PostgisEngine

        engine = PostgisEngine(url)
    else:
        raise ValueError(f"no catalogue engine for {url.split(':', 1)[0]!r}")
    if create:
        engine.create_schema(auto_upgrade=auto_upgrade)
    return engine
