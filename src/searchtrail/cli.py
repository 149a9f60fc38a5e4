"""The ``searchtrail`` command: ``serve`` is the main one.

Every option of ``serve`` is also a ``SEARCHTRAIL_*`` environment variable; flags are
written into the environment so that each uvicorn worker process builds the same
``Settings``. Settings are validated here first, so a wrong value stops the command
with the variable's name instead of starting workers that fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from searchtrail import __version__
from searchtrail.settings import Settings, describe_settings_error

__all__ = ["main"]


def load_settings(**overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        os.environ[f"SEARCHTRAIL_{key.upper()}"] = str(value)
    try:
        return Settings()
    except ValidationError as exc:
        click.echo(f"searchtrail: invalid setting\n{describe_settings_error(exc)}", err=True)
        click.echo("Hint: see `searchtrail serve --help` and docs/settings.md.", err=True)
        sys.exit(2)


class _Command(click.Command):
    """Every command ends a domain error the same way: one line naming it, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from searchtrail.errors import SearchtrailError

        try:
            return super().invoke(ctx)
        except SearchtrailError as exc:
            names = []
            while ctx.parent is not None:
                names.append(ctx.info_name or "")
                ctx = ctx.parent
            click.echo(f"searchtrail {' '.join(reversed(names))}: {_why(exc)}", err=True)
            sys.exit(1)


class _Group(click.Group):
    command_class = _Command
    group_class = type


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="searchtrail")
def main() -> None:
    """searchtrail: clickstream for search, as a service, a library and this command."""


@main.command()
@click.option("--host", help="Address to bind [SEARCHTRAIL_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to bind [SEARCHTRAIL_PORT, default 8000].")
@click.option(
    "--database-url",
    help="sqlite:///PATH or postgresql://... [SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db].",
)
@click.option("--workers", type=int, help="Worker processes [SEARCHTRAIL_WORKERS, default 1].")
@click.option("--log-level", help="critical|error|warning|info|debug [SEARCHTRAIL_LOG_LEVEL].")
@click.option("--max-events-per-push", type=int, help="[SEARCHTRAIL_MAX_EVENTS_PER_PUSH, 1000]")
@click.option(
    "--max-results-per-session", type=int, help="[SEARCHTRAIL_MAX_RESULTS_PER_SESSION, 1000]"
)
@click.option("--max-body-bytes", type=int, help="[SEARCHTRAIL_MAX_BODY_BYTES, 2000000]")
@click.option(
    "--strict-fields",
    is_flag=True,
    default=None,
    help="Refuse keys the contract does not name with 422 [SEARCHTRAIL_STRICT_FIELDS].",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Bind a non-loopback --host although no API key exists [SEARCHTRAIL_INSECURE].",
)
def serve(**options: Any) -> None:
    """Start the HTTP service (uvicorn)."""
    import uvicorn

    from searchtrail.service import Clickstream

    settings = load_settings(**options)
    # Check (or create, when empty) the schema once here, not racing in every worker.
    with Clickstream(settings=settings) as cs:
        has_keys = cs.storage.keys.exist()
        on_sqlite = cs.storage.dialect == "sqlite"
    if has_keys:
        click.echo("searchtrail: API keys are required (see `searchtrail keys list`).", err=True)
    else:
        if not _is_loopback(settings.host) and not settings.insecure:
            click.echo(
                f"searchtrail: refusing to listen on {settings.host} with no API key: anyone "
                "who reaches the port could read and change everything.\n"
                "Create a key first (searchtrail keys create --name NAME --scope ingest), "
                "listen on 127.0.0.1, or pass --insecure (SEARCHTRAIL_INSECURE=1) if "
                "something in front of the service guards it.",
                err=True,
            )
            sys.exit(2)
        click.echo(
            "searchtrail: no API key exists, so authentication is OFF"
            + (
                f" and --insecure exposes the service on {settings.host}"
                if not _is_loopback(settings.host)
                else "; listening on loopback only"
            )
            + " (create one with `searchtrail keys create`).",
            err=True,
        )
    click.echo(
        f"searchtrail {__version__} on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker(s), database {_safe_url(settings.database_url)})",
        err=True,
    )
    if settings.workers > 1 and on_sqlite:
        click.echo(
            "searchtrail: on SQLite more workers make writes slower, not faster: each "
            "worker writes on its own and waits its turn for the database's one write "
            "lock (docs/settings.md, workers). Use one worker, or PostgreSQL.",
            err=True,
        )
    uvicorn.run(
        "searchtrail.http.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
    )


@main.command()
@click.argument("source", type=click.File("r"))
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db]")
@click.option(
    "--any-age",
    is_flag=True,
    help="Accept timestamps of any age (replaying history); the future limit still holds.",
)
def insert(source: Any, database_url: str | None, any_age: bool) -> None:
    """Replay sessions from JSON Lines (one session a line, with an optional "events" list).

    Goes through the same validation and idempotency as the API, so replaying a file
    twice stores nothing new. Stops at the first bad line, naming it.
    """
    import json

    from searchtrail.errors import SearchtrailError
    from searchtrail.service import Clickstream

    settings = load_settings(database_url=database_url)
    if any_age:
        settings = settings.model_copy(update={"time_max_delta_minus_sec": 10**11})
    counts = {"sessions": 0, "events_stored": 0, "events_duplicate": 0}
    with Clickstream(settings=settings) as cs:
        for lineno, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("a line must be a JSON object")
                events = record.pop("events", None) or []
                session = cs.create_session(record)
                if events:
                    pushed = cs.push_events(session.session_id, events)
                    counts["events_stored"] += pushed.stored
                    counts["events_duplicate"] += pushed.duplicates
            except (SearchtrailError, ValueError) as exc:
                click.echo(f"searchtrail insert: line {lineno}: {exc}", err=True)
                click.echo(json.dumps(counts), err=True)
                sys.exit(1)
            counts["sessions"] += 1
    click.echo(json.dumps(counts))


def _parse_weights(values: tuple[str, ...]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for value in values:
        event_type, sep, number = value.partition("=")
        try:
            weights[event_type] = float(number)
        except ValueError:
            sep = ""
        if not sep or not event_type:
            raise click.BadParameter(f"expected TYPE=WEIGHT, got {value!r}", param_hint="--weight")
    return weights


@main.command()
@click.option("--batch", "batch_id", type=int, help="The batch to export.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Instead of one batch's training data: a full dump of every table into the "
    "directory --out (docs/import-export.md).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="File format.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The file; a directory of SPLIT.FORMAT files when there is a test or irrelevant "
    "split, or of TABLE.FORMAT files with --all.",
)
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
@click.option(
    "--layout",
    type=click.Choice(["sessions", "triplets"]),
    default="sessions",
    show_default=True,
    help="One record per session, or one (anchor, positive, negative) row per pair.",
)
@click.option(
    "--include-irrelevant", is_flag=True, help="Write irrelevant sessions as their own split."
)
@click.option(
    "--test-fraction",
    type=float,
    help="Send the latest fraction of sessions (by created_at) to a test split.",
)
@click.option(
    "--split-at", help="Send sessions created at or after this time (epoch or ISO) to test."
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="TYPE=WEIGHT",
    help="Override one event type's weight (repeatable); 0 removes the type.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar [default: on a terminal]."
)
def export(
    batch_id: int | None,
    everything: bool,
    fmt: str,
    out: Path,
    database_url: str | None,
    layout: str,
    include_irrelevant: bool,
    test_fraction: float | None,
    split_at: str | None,
    weights: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Write a released batch as training data (JSONL or Parquet), or with --all dump every
    table; prints a JSON summary."""
    from searchtrail.service import Clickstream

    if everything == (batch_id is not None):
        raise click.UsageError("give --batch ID (training data) or --all (a full dump)")
    if everything:
        if layout != "sessions" or include_irrelevant or test_fraction or split_at or weights:
            raise click.UsageError(
                "--all dumps every table as stored: --layout, --include-irrelevant, "
                "--test-fraction, --split-at and --weight apply to --batch only"
            )
        with Clickstream(settings=load_settings(database_url=database_url)) as cs:
            dumped = cs.export_all(
                out, format="parquet" if fmt == "parquet" else "jsonl", progress=progress
            )
        click.echo(dumped.model_dump_json(indent=2))
        return
    assert batch_id is not None
    overrides = _parse_weights(weights)
    settings = load_settings(database_url=database_url)
    table = {**settings.export_event_weights, **overrides}
    with Clickstream(settings=settings) as cs:
        summary = cs.export(
            batch_id,
            out,
            format="parquet" if fmt == "parquet" else "jsonl",
            layout="triplets" if layout == "triplets" else "sessions",
            weights=table,
            include_irrelevant=include_irrelevant,
            test_fraction=test_fraction,
            split_at=split_at,
            progress=progress,
        )
    click.echo(summary.model_dump_json(indent=2))


@main.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["searchtrail", "embedding-studio"]),
    default="searchtrail",
    show_default=True,
    help="searchtrail: a directory written by `export --all`; embedding-studio: an export "
    "of Embedding Studio's MongoDB (docs/embedding-studio.md).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every refused row here (JSONL: source, line, reason, raw).",
)
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db]")
@click.option(
    "--json-array",
    is_flag=True,
    help="The source's files are JSON arrays (mongoexport --jsonArray), not JSON Lines.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar [default: on a terminal]."
)
def import_(
    source: Path,
    fmt: str,
    rejects: Path | None,
    database_url: str | None,
    json_array: bool,
    progress: bool | None,
) -> None:
    """Import a dump or another service's data; prints a JSON summary.

    Rows already stored are skipped, so running it again stores nothing new. Exits 0 when
    every row was imported or already there, 3 when rows were rejected or in conflict
    (the rest is imported; --rejects keeps them).
    """
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        summary = cs.import_from(
            source, format=fmt, rejects=rejects, json_array=json_array, progress=progress
        )
    click.echo(summary.model_dump_json(indent=2))
    click.echo(f"searchtrail import: {summary.message}", err=True)
    sys.exit(summary.exit_code)


@main.group()
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


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@main.group()
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
    where = _safe_url(settings.database_url)
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


def _why(exc: Any) -> str:
    """The error's detail, plus the driver's first line (refused, bad password...) if any."""
    cause = getattr(exc.__cause__, "orig", None)
    first = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
    return f"{exc.detail}: {first}" if first else str(exc.detail)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
