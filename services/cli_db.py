"""``gproc db upgrade|current|history``: the database schema (Alembic revisions).

Reads ``[database] url`` like every other command; the VO database is included
when ``[vo] database_url`` names another one. Exit status 2 with a one-line error
when the database cannot be used (for instance written by a newer gproc).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from gproc import migrations
from gproc.errors import GprocError
from gproc.registry import make_engine
from gproc.services import cli_catalogue_db
from gproc.services.cli_catalogue_db import shown, sqlite_file
from gproc.settings import get_settings

err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _urls() -> Iterator[str]:
    settings = get_settings()
    yield settings.database_url
    if settings.vo_database_url != settings.database_url:
        yield settings.vo_database_url


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}")
    sys.exit(2)


@click.group("db")
def db_group() -> None:
    """The database schema: upgrade older databases, show the revision."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade_cmd(revision: str) -> None:
    """Bring the database forward to REVISION (a new database is created)."""
    for url in _urls():
        if (path := sqlite_file(url)) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(url)
        try:
            before, after = migrations.upgrade(engine, revision)
        except (GprocError, SQLAlchemyError) as exc:
            _fail(exc)
        except Exception as exc:  # alembic: an unknown target revision and the like
            _fail(RuntimeError(f"cannot upgrade to {revision!r}: {exc}"))
        finally:
            engine.dispose()
        what = "already at" if before == after else f"{before or 'unversioned'} ->"
        click.echo(f"{shown(url)}: {what} {after}")
    if cli_catalogue_db.in_use(settings := get_settings()):  # the catalogue's own chain
        click.echo(cli_catalogue_db.upgrade_database(settings))


@db_group.command("current")
def current_cmd() -> None:
    """Print the database's revision and this gproc's newest (exit 1 when they differ)."""
    behind = False
    for url in _urls():
        path = sqlite_file(url)
        if path is not None and not path.exists():
            click.echo(f"{shown(url)}: no database yet (created at {migrations.head()} on use)")
            behind = True
            continue
        engine = make_engine(url)
        try:
            rev = migrations.current(engine)
        except SQLAlchemyError as exc:
            _fail(exc)
        finally:
            engine.dispose()
        head = migrations.head()
        state = "up to date" if rev == head else f"needs upgrade to {head}"
        click.echo(f"{shown(url)}: {rev or 'unversioned'} ({state})")
        behind = behind or rev != head
    sys.exit(1 if behind else 0)


@db_group.command("history")
def history_cmd() -> None:
    """List the schema revisions this gproc knows, oldest first."""
    for rev, doc in migrations.history():
        click.echo(f"{rev}  {doc}")
