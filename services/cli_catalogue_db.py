"""``gproc catalogue db upgrade|current|history``: the catalogue database's schema.

The catalogue's database (``[catalogue] database_url``, default
``<state_dir>/catalogue.db``) has its own chain of revisions
(:mod:`gproc.migrations.catalogue`); ``gproc db upgrade`` upgrades it too, when
there is one. Exit status 2 with a one-line error when it cannot be used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gproc.errors import GprocError
from gproc.migrations import catalogue as migrations
from gproc.registry import make_engine
from gproc.settings import Settings, get_settings


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another engine, memory or a URI form)."""
    u = make_url(url)
    db = u.database if u.get_backend_name() == "sqlite" else None
    return Path(db) if db and db != ":memory:" and not db.startswith("file:") else None


def shown(url: str) -> str:
    """The URL as printed: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def in_use(settings: Settings) -> bool:
    """Whether there is a catalogue database: configured, or the default file exists."""
    if settings.catalogue.database_url:
        return True
    path = sqlite_file(settings.catalogue_database_url)
    return path is not None and path.exists()


def upgrade_database(settings: Settings, revision: str = "head") -> str:
    """Upgrade the catalogue database (created if new); the line to print."""
    url = settings.catalogue_database_url
    if (path := sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        before, after = migrations.upgrade(engine, revision)
    except (GprocError, SQLAlchemyError) as exc:
        _fail(exc)
    except Exception as exc:  # alembic: an unknown target revision and the like
        _fail(RuntimeError(f"cannot upgrade the catalogue to {revision!r}: {exc}"))
    finally:
        engine.dispose()
    what = "already at" if before == after else f"{before or 'unversioned'} ->"
    return f"{shown(url)} (catalogue): {what} {after}"


@click.group("db")
def catalogue_db_group() -> None:
    """The catalogue database's schema: upgrade it, show its revision."""


@catalogue_db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade_cmd(revision: str) -> None:
    """Bring the catalogue database forward to REVISION (a new database is created)."""
    click.echo(upgrade_database(get_settings(), revision))


@catalogue_db_group.command("current")
def current_cmd() -> None:
    """Print the catalogue's revision and this gproc's newest (exit 1 when they differ)."""
    settings = get_settings()
    url, head = settings.catalogue_database_url, migrations.head()
    if not in_use(settings):
        click.echo(f"{shown(url)}: no catalogue database yet (created at {head} on use)")
        sys.exit(1)
    engine = make_engine(url)
    try:
        rev = migrations.current(engine)
    except SQLAlchemyError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    state = "up to date" if rev == head else f"needs upgrade to {head}"
    click.echo(f"{shown(url)}: {rev or 'unversioned'} ({state})")
    sys.exit(0 if rev == head else 1)


@catalogue_db_group.command("history")
def history_cmd() -> None:
    """List the catalogue's schema revisions, oldest first."""
    for rev, doc in migrations.history():
        click.echo(f"{rev}  {doc}")
