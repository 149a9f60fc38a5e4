"""``searchtrail metrics``: the search-quality metrics, query lists and ranker comparison.

Each command is one call of the library (``Clickstream.metrics``, ``metrics_queries``,
``compare_rankers``, ``metrics_sessions``, ``refresh_metrics``), so it prints the same
numbers as HTTP; ``--format json`` prints the very object HTTP answers. The range
options (``--since``, ``--until``, ``--include-irrelevant``, ``--format``,
``--database-url``) go before or after a subcommand's name: given on both, the
subcommand's win.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from searchtrail.cli._common import Group, load_settings, scope_options

if TYPE_CHECKING:
    from searchtrail.service import Clickstream

__all__ = ["metrics"]

F = TypeVar("F", bound=Callable[..., Any])

_BY = ("day", "hour", "query", "ranker", "batch")
_FORMATS = ("table", "json", "csv")


_range_options = scope_options(
    "Count sessions marked irrelevant.",
    click.option(
        "--format",
        "fmt",
        type=click.Choice(_FORMATS),
        help="table (for people, the default), json (as HTTP answers) or csv.",
    ),
)


def _given(ctx: click.Context, **mine: Any) -> dict[str, Any]:
    """A subcommand's range options, each missing one taken from the group's."""
    group = ctx.parent.params if ctx.parent is not None else {}
    out = {k: v if v is not None else group.get(k) for k, v in mine.items()}
    out["include_irrelevant"] = bool(mine["include_irrelevant"] or group.get("include_irrelevant"))
    out["fmt"] = out.get("fmt") or "table"
    return out


@contextmanager
def _clickstream(database_url: str | None) -> Iterator[Clickstream]:
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        yield cs


@click.group(cls=Group, invoke_without_command=True)
@_range_options
@click.option(
    "--by",
    type=click.Choice(_BY),
    help="One row per day or hour (UTC), normalized query, ranker (search_meta's "
    "metrics_ranker_key) or batch.",
)
@click.pass_context
def metrics(
    ctx: click.Context,
    since: str | int | None,
    until: str | int | None,
    include_irrelevant: bool,
    fmt: str | None,
    database_url: str | None,
    by: str | None,
) -> None:
    """Search-quality metrics over a range of sessions (docs/metrics.md).

    Without a subcommand: every metric over the range, whole or one row per group
    (--by). With --format json and no --by, one object whose keys are the metric names,
    as the HTTP route .../internal/metrics answers it.
    """
    if ctx.invoked_subcommand is not None:
        if by is not None:
            raise click.UsageError(
                f"--by applies to `searchtrail metrics` alone, not to `{ctx.invoked_subcommand}`"
            )
        return
    from searchtrail.cli._metrics_output import metrics_csv, metrics_table

    with _clickstream(database_url) as cs:
        answer = cs.metrics(
            since,
            until,
            by=by,  # type: ignore[arg-type]  # click.Choice checked it
            include_irrelevant=include_irrelevant,
        )
    fmt = fmt or "table"
    if fmt == "json":
        click.echo(answer.model_dump_json(indent=2))
    else:
        click.echo(metrics_csv(answer) if fmt == "csv" else metrics_table(answer))


@metrics.command()
@_range_options
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Per list."
)
@click.pass_context
def queries(ctx: click.Context, /, limit: int, **options: Any) -> None:
    """The top queries by sessions, by sessions without results, and by sessions with
    results but no interaction, each with its metrics."""
    from searchtrail.cli._metrics_output import queries_csv, queries_table

    o = _given(ctx, **options)
    with _clickstream(o["database_url"]) as cs:
        answer = cs.metrics_queries(
            o["since"], o["until"], include_irrelevant=o["include_irrelevant"], limit=limit
        )
    if o["fmt"] == "json":
        click.echo(answer.model_dump_json(indent=2))
    else:
        click.echo(queries_csv(answer) if o["fmt"] == "csv" else queries_table(answer))


@metrics.command()
@click.option(
    "--ranker",
    "rankers",
    multiple=True,
    required=True,
    help="Give it twice: A, then B (a value of search_meta's metrics_ranker_key).",
)
@click.option(
    "--resamples",
    type=click.IntRange(100, 100_000),
    default=10_000,
    show_default=True,
    help="Bootstrap resamples.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="The bootstrap's seed.",
)
@_range_options
@click.pass_context
def compare(
    ctx: click.Context, /, rankers: tuple[str, ...], resamples: int, seed: int, **options: Any
) -> None:
    """Ranker B against ranker A: ctr, conversion_rate, mrr and zero_result_rate, each
    difference (B - A) with its 95% bootstrap interval and a verdict; the interleaving
    preference where results carry a team label (metrics_team_key)."""
    from searchtrail.cli._metrics_output import compare_csv, compare_table

    if len(rankers) != 2:
        raise click.BadParameter(
            f"give it exactly twice (A, then B), got {len(rankers)}", param_hint="--ranker"
        )
    o = _given(ctx, **options)
    with _clickstream(o["database_url"]) as cs:
        answer = cs.compare_rankers(
            rankers[0],
            rankers[1],
            o["since"],
            o["until"],
            include_irrelevant=o["include_irrelevant"],
            resamples=resamples,
            seed=seed,
        )
    if o["fmt"] == "json":
        click.echo(answer.model_dump_json(indent=2))
    else:
        click.echo(compare_csv(answer) if o["fmt"] == "csv" else compare_table(answer))


@metrics.command()
@click.option("--query", required=True, help="The normalized query, as the query lists name it.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@_range_options
@click.pass_context
def sessions(ctx: click.Context, /, query: str, limit: int, **options: Any) -> None:
    """The newest sessions of a query: what each showed, and what was done to each result."""
    from pydantic import TypeAdapter

    from searchtrail.cli._metrics_output import sessions_csv, sessions_table
    from searchtrail.models import QuerySession

    o = _given(ctx, **options)
    with _clickstream(o["database_url"]) as cs:
        answer = cs.metrics_sessions(
            query, o["since"], o["until"], include_irrelevant=o["include_irrelevant"], limit=limit
        )
    if o["fmt"] == "json":
        click.echo(TypeAdapter(list[QuerySession]).dump_json(answer, indent=2).decode())
    else:
        click.echo(sessions_csv(answer) if o["fmt"] == "csv" else sessions_table(answer))


@metrics.command()
@click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]")
@click.pass_context
def refresh(ctx: click.Context, database_url: str | None) -> None:
    """Bring every session's stats up to date now; prints {"recomputed": N}.

    Every metrics command does this first anyway, and `serve` does it in the background
    every metrics_refresh_s seconds; this is for a cron job or after a large import."""
    database_url = database_url or (ctx.parent.params.get("database_url") if ctx.parent else None)
    with _clickstream(database_url) as cs:
        recomputed = cs.refresh_metrics()
    click.echo(json.dumps({"recomputed": recomputed}))
