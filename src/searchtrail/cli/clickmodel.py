"""``searchtrail clickmodel``: fit a click model into files, compare models held out.

Each command is one call of the library (``Clickstream.fit_click_model``,
``compare_click_models``), so the numbers are those HTTP answers (docs/clickmodels.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from searchtrail.cli._common import Group, load_settings, scope_options

if TYPE_CHECKING:
    from searchtrail.models.clickmodels import ClickModelComparison

__all__ = ["clickmodel"]

F = TypeVar("F", bound=Callable[..., Any])

# The models issue 22 names; those not registered yet are refused by name.
PLANNED = ("pbm", "cascade", "dbn", "sdbn", "ubm", "coec")


def _model(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from searchtrail.clickmodels.registry import MODELS

    if value is None:
        return None
    names = value if isinstance(value, tuple) else (value,)
    available = ", ".join(sorted(MODELS))
    for name in names:
        if name in MODELS:
            continue
        why = "is not available in this version" if name in PLANNED else "is not a click model"
        raise click.BadParameter(f"{name!r} {why}; available: {available}", ctx, param)
    return value


def _click_types(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    if not types:
        raise click.BadParameter("name at least one event type, e.g. click,purchase", ctx, param)
    return types


_batch = click.option("--batch", "batch_id", type=int, help="Only this batch's sessions.")
_sessions = scope_options(
    "Fit on sessions marked irrelevant too.",
    click.option(
        "--click-types",
        metavar="A,B",
        callback=_click_types,
        help="Event types that count as a click [default: the clickmodel_click_types "
        "setting: click,add_to_cart,purchase].",
    ),
    click.option(
        "--max-position",
        type=click.IntRange(1, 50),
        default=10,
        show_default=True,
        help="Positions modelled: 1..N.",
    ),
)


def _scope_options(f: F) -> F:
    return _batch(_sessions(f))


@click.group(cls=Group)
def clickmodel() -> None:
    """Click models: position bias, debiased labels and judgments (docs/clickmodels.md)."""


@clickmodel.command()
@click.option(
    "--model",
    required=True,
    callback=_model,
    help="pbm, cascade, dbn, sdbn, ubm or coec (those this version has).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory of the output files (created if missing).",
)
@_scope_options
def fit(model: str, out: Path, database_url: str | None, **scope: Any) -> None:
    """Fit a model; write propensities.json, fit.json, labels.jsonl, labels.parquet,
    qrels.txt, queries.tsv, judgments_quepid.csv and judgments_srw.json into --out;
    print a JSON summary."""
    import json

    from searchtrail.clickfiles import write_files
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        fitted = cs.fit_click_model(model, **scope)
    files = write_files(fitted, out)
    summary = {
        "model": fitted.name,
        "files": files,
        "counts": fitted.counts(),
        "fit": fitted.fit_quality(),
        "scope": fitted.scope,
    }
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@clickmodel.command()
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    callback=_model,
    help="A model to compare (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table (for people) or json (the library's answer).",
)
@_scope_options
def compare(models: tuple[str, ...], fmt: str, database_url: str | None, **scope: Any) -> None:
    """Fit each model on the earliest 90% of the sessions and score it on the latest 10%:
    held-out log-likelihood (higher is better) and perplexity (lower is better)."""
    from searchtrail.service import Clickstream

    with Clickstream(settings=load_settings(database_url=database_url)) as cs:
        answer = cs.compare_click_models(list(models), **scope)
    click.echo(answer.model_dump_json(indent=2) if fmt == "json" else compare_table(answer))


_TABLE_POSITIONS = 10


def compare_table(answer: ClickModelComparison) -> str:
    from searchtrail.cli._metrics_output import aligned

    def dec(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    first = answer.models[0]
    shown = min(len(first.perplexity_by_position), _TABLE_POSITIONS)
    header = ["model", "log_likelihood", "perplexity", *(f"ppl@{k}" for k in range(1, shown + 1))]
    rows = [
        [
            m.model,
            dec(m.log_likelihood),
            dec(m.perplexity),
            *(dec(p) for p in m.perplexity_by_position[:shown]),
        ]
        for m in answer.models
    ]
    c = answer.counts
    lines = [
        f"{c.sessions} sessions ({first.train_sessions} trained on, the latest "
        f"{first.test_sessions} held out), {c.pairs} pairs, {c.clicks} clicks",
        aligned(header, rows),
    ]
    return "\n".join(lines)
