"""``searchtrail users`` (erase, export) and ``searchtrail prune`` (retention)."""

from __future__ import annotations

from pathlib import Path

import click

from searchtrail.cli._common import Command, Group, load_settings

__all__ = ["prune", "users"]


@click.group(cls=Group)
def users() -> None:
    """A user's data: erase it, or export it for an access request (docs/privacy.md)."""


@users.command("delete")
@click.argument("user_id")
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def users_delete(user_id: str, database_url: str | None) -> None:
    """Erase every session of USER_ID (raw id; its pseudonyms too), their events and queue
    entries, in one transaction; prints the counts."""
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        deleted = cs.delete_user(user_id, path="cli")
    click.echo(deleted.model_dump_json())


@users.command("export")
@click.argument("user_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (whole or not at all) [default: standard output].",
)
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def users_export(user_id: str, out: Path | None, database_url: str | None) -> None:
    """Everything held about USER_ID as JSON Lines: each session with every event and its
    improvement-queue entries."""
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        written = cs.export_user(user_id, out)
    click.echo(f"searchtrail users export: {written} sessions", err=True)


@click.command(cls=Command)
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    help="Retention in days [default: the retention_days setting].",
)
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def prune(dry_run: bool, days: float | None, database_url: str | None) -> None:
    """Remove sessions older than the retention (with their events, queue entries and
    metrics stats), keeping unarchived batches' unless retention_keep_unarchived is off;
    prints the counts."""
    from searchtrail.service import Clickstream

    settings = load_settings(database_url=database_url)
    if days is None and settings.retention_days is None:
        raise click.UsageError("set SEARCHTRAIL_RETENTION_DAYS or give --days")
    with Clickstream(settings=settings) as cs:
        summary = cs.prune(dry_run=dry_run, retention_days=days, path="cli")
    click.echo(summary.model_dump_json())
