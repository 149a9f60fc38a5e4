"""``searchtrail insert``, ``export`` and ``import``: sessions and dumps in and out of files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from searchtrail.cli._common import Command, load_settings
from searchtrail.cli.clickmodel import _model

__all__ = ["export", "import_", "insert"]


@click.command(cls=Command)
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


@click.command(cls=Command)
@click.option("--batch", "batch_id", type=int, help="The batch to export.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Instead of one batch's training data: a full dump of every table into the "
    "directory --out (docs/import-export.md).",
)
@click.option(
    "--lake",
    type=click.Path(file_okay=False, path_type=Path),
    help="Instead: export the sessions and events new since the last run into this "
    "Parquet lake directory (docs/lake.md).",
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
    help="The file; a directory of SPLIT.FORMAT files when there is a test or irrelevant "
    "split, or of TABLE.FORMAT files with --all. Required but with --lake.",
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
    "--negatives",
    type=click.Choice(["skip-above", "examined"]),
    default="skip-above",
    show_default=True,
    help="examined: only the skip-above negatives a click model says were examined "
    "(docs/clickmodels.md).",
)
@click.option(
    "--labels",
    metavar="MODEL",
    callback=_model,
    help="Add each positive's and negative's relevance and grade from this click model.",
)
@click.option(
    "--clickmodel",
    metavar="MODEL",
    callback=_model,
    help="The model of --negatives examined [default: the --labels model].",
)
@click.option(
    "--examined-threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="With --negatives examined: the least examination probability kept.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar [default: on a terminal]."
)
def export(
    batch_id: int | None,
    everything: bool,
    lake: Path | None,
    fmt: str,
    out: Path | None,
    database_url: str | None,
    layout: str,
    include_irrelevant: bool,
    test_fraction: float | None,
    split_at: str | None,
    weights: tuple[str, ...],
    negatives: str,
    labels: str | None,
    clickmodel: str | None,
    examined_threshold: float,
    progress: bool | None,
) -> None:
    """Write a released batch as training data (JSONL or Parquet), with --all dump every
    table, or with --lake add what is new to a Parquet lake; prints a JSON summary."""
    from searchtrail.service import Clickstream

    if [everything, batch_id is not None, lake is not None].count(True) != 1:
        raise click.UsageError(
            "give --batch ID (training data), --all (a full dump) or --lake DIR (a Parquet lake)"
        )
    if everything or lake is not None:
        modelled = negatives != "skip-above" or labels or clickmodel
        if layout != "sessions" or include_irrelevant or test_fraction or split_at or weights:
            modelled = True
        if modelled:
            raise click.UsageError(
                "--all and --lake write every row as stored: --layout, --include-irrelevant, "
                "--test-fraction, --split-at, --weight, --negatives, --labels and "
                "--clickmodel apply to --batch only"
            )
    if lake is not None:
        if out is not None:
            raise click.UsageError("--lake writes Parquet into its DIR: no --out")
        with Clickstream(settings=load_settings(database_url=database_url)) as cs:
            written = cs.export_lake(lake, progress=progress)
        click.echo(written.model_dump_json(indent=2))
        click.echo(f"searchtrail export: {written.message}", err=True)
        return
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    if everything:
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
            negatives="examined" if negatives == "examined" else "skip_above",
            labels=labels,
            clickmodel=clickmodel,
            examined_threshold=examined_threshold,
        )
    click.echo(summary.model_dump_json(indent=2))


@click.command("import", cls=Command)
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
