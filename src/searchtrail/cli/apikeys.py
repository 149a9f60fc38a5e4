"""``searchtrail keys``: create, list and revoke API keys."""

from __future__ import annotations

import click

from searchtrail.cli._common import Group, load_settings

__all__ = ["keys"]


@click.group(cls=Group)
def keys() -> None:
    """API keys: create, list, revoke (docs/security.md)."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key, for `keys list`.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["ingest", "read", "admin"]),
    help="ingest, read or admin (repeatable).",
)
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def keys_create(name: str, scopes: tuple[str, ...], database_url: str | None) -> None:
    """Create a key and print it once: only its hash is stored."""
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        created = cs.keys.create(name, list(scopes))
    click.echo(
        f"created key {created.key_id} ({created.prefix}) {created.name!r} with scopes "
        f"{' '.join(created.scopes)}; it is shown only now:",
        err=True,
    )
    click.echo(created.key)


@keys.command("list")
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def keys_list(database_url: str | None) -> None:
    """List keys (id, prefix, name, scopes, created, revoked), never the keys themselves."""
    from searchtrail.service import Clickstream
    from searchtrail.timestamps import ms_to_iso

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        infos = cs.keys.list()
    click.echo("id\tprefix\tname\tscopes\tcreated\trevoked")
    for k in infos:
        revoked = ms_to_iso(k.revoked_at_ms) if k.revoked_at_ms is not None else "-"
        click.echo(
            f"{k.key_id}\t{k.prefix}\t{k.name}\t{','.join(k.scopes)}\t"
            f"{ms_to_iso(k.created_at_ms)}\t{revoked}"
        )


@keys.command("revoke")
@click.argument("key_id")
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
def keys_revoke(key_id: str, database_url: str | None) -> None:
    """Revoke a key by id or prefix; running servers refuse it within auth_cache_sec."""
    from searchtrail.service import Clickstream

    settings = load_settings(database_url=database_url)
    with Clickstream(settings=settings) as cs:
        info = cs.keys.revoke(key_id)
    click.echo(
        f"revoked key {info.key_id} ({info.prefix}); running servers refuse it within "
        f"{settings.auth_cache_sec:g} s"
    )
