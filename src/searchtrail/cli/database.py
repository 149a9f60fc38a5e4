"""``searchtrail db``: create, upgrade and inspect the schema (Alembic revisions)."""

from __future__ import annotations

import sys

import click

from searchtrail.cli._common import Group, load_settings, safe_url

__all__ = ["db"]


@click.group(cls=Group)
def db() -> None:
    """Create, upgrade and inspect the database schema (Alembic revisions)."""


_DB_URL_HELP = "[SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db]"


@db.command("upgrade")
@click.option("--database-url", help=_DB_URL_HELP)
@click.option("--revision", default="head", show_default=True, help="The revision to reach.")
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Create the schema, or bring it to the newest revision; safe to run again."""
    from searchtrail.storage.sql import unavailable_on_db_outage
    from searchtrail.storage.sql.migrate import upgrade

    settings = load_settings(database_url=database_url)
    with unavailable_on_db_outage():
        before, after = upgrade(settings.database_url, revision)
    where = safe_url(settings.database_url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'nothing'} to revision {after}")


@db.command("current")
@click.option("--database-url", help=_DB_URL_HELP)
def db_current(database_url: str | None) -> None:
    """Print the database's schema revision and the one this searchtrail needs.

    Exits 1 when a server would refuse the database (the schema is behind or unknown, or
    tables are missing).
    """
    from searchtrail.storage.sql import SqlStorage as Store
    from searchtrail.storage.sql import unavailable_on_db_outage
    from searchtrail.storage.sql.migrate import schema_status

    settings = load_settings(database_url=database_url)
    store = Store(settings.database_url, pool_size=1)
    try:
        with unavailable_on_db_outage():
            status = schema_status(store.engine)
    finally:
        store.close()
    current = status.current or ("none (empty database)" if status.empty else "none")
    click.echo(f"current: {current}\nhead: {status.head}")
    problem = status.problem()
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(1)


@db.command("check")
@click.option("--database-url", help=_DB_URL_HELP)
def db_check(database_url: str | None) -> None:
    """Exit 1 unless the database is at the newest revision and its tables match the code."""
    from searchtrail.storage.sql import SqlStorage as Store
    from searchtrail.storage.sql import unavailable_on_db_outage
    from searchtrail.storage.sql.migrate import schema_differences, schema_status

    settings = load_settings(database_url=database_url)
    store = Store(settings.database_url, pool_size=1)
    try:
        with unavailable_on_db_outage():
            status = schema_status(store.engine)
            differences = schema_differences(store.engine) if status.usable else []
    finally:
        store.close()
    if not status.usable:
        problem = status.problem() or "the database is empty: run `searchtrail db upgrade`"
        click.echo(problem, err=True)
        sys.exit(1)
    if differences:
        click.echo("the tables differ from this searchtrail's schema:", err=True)
        for diff in differences:
            click.echo(f"  {diff}", err=True)
        sys.exit(1)
    click.echo(f"revision {status.head}; the tables match")
