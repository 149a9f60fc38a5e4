"""``searchtrail spark``: the training data and the metrics as Spark jobs over the lake.

Each command starts a Spark session (``--master``, default ``local[*]``: this machine's
cores) and runs the job of ``searchtrail.spark``; on a cluster, spark-submit runs the
same modules without this command (docs/scale.md). pyspark is the optional extra
``searchtrail[spark]``; without it the commands say so and exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from searchtrail.cli._common import Group, _time, load_settings
from searchtrail.cli.data import _parse_weights, export

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]

F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    f = click.option(
        "--master",
        default="local[*]",
        show_default=True,
        help="The Spark master: local[N], spark://HOST:PORT, yarn...",
    )(f)
    return click.option(
        "--lake", required=True, help="The lake's root (`searchtrail export --lake`)."
    )(f)


@contextmanager
def _session(master: str, app: str) -> Iterator[SparkSession]:
    """A Spark session for one command, stopped after it; a session already running in
    this process (the command called from Python) is used as it is and left running."""
    try:
        from pyspark.sql import SparkSession

        from searchtrail.spark.lake import spark_session
    except ImportError:
        click.echo(
            "searchtrail spark: pyspark is not installed; pip install 'searchtrail[spark]'",
            err=True,
        )
        sys.exit(1)
    running = SparkSession.getActiveSession()
    session = running or spark_session(master, app)
    try:
        yield session
    finally:
        if running is None:
            session.stop()


@click.group(cls=Group)
def spark() -> None:
    """Training data and metrics as Apache Spark jobs over the Parquet lake (docs/scale.md)."""


@spark.command("training-data")
@_common
@click.option("--out", required=True, help="The directory of the split directories.")
@click.option("--batch-id", "--batch", "batch_id", type=int, required=True, help="The batch.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "jsonl"]),
    default="parquet",
    show_default=True,
    help="Part files in Parquet or JSON lines.",
)
def training_data(
    lake: str,
    master: str,
    out: str,
    batch_id: int,
    layout: str,
    fmt: str,
    include_irrelevant: bool,
    weights: tuple[str, ...],
) -> None:
    """A released batch's training data, as `searchtrail export --batch` judges it;
    prints a JSON summary."""
    table = {**load_settings().export_event_weights, **_parse_weights(weights)}
    with _session(master, "searchtrail-training-data") as session:
        from searchtrail.spark.training_job import training_data as job

        summary = job(
            session,
            lake,
            out,
            batch_id,
            weights=table,
            format="parquet" if fmt == "parquet" else "jsonl",
            layout="triplets" if layout == "triplets" else "sessions",
            include_irrelevant=include_irrelevant,
        )
    click.echo(json.dumps(summary, indent=2))


# --layout, --include-irrelevant and --weight mean here what they mean to `export`: the
# very same options, so that their names, defaults and help cannot drift apart.
training_data.params.extend(
    p for p in export.params if p.name in ("layout", "include_irrelevant", "weights")
)


@spark.command("metrics")
@_common
@click.option(
    "--since",
    metavar="TIME",
    callback=_time,
    help="Sessions created at or after this (ISO 8601 or epoch digits).",
)
@click.option("--until", metavar="TIME", callback=_time, help="Sessions created before this.")
@click.option("--include-irrelevant", is_flag=True, help="Count sessions marked irrelevant.")
@click.option(
    "--by", type=click.Choice(["day", "hour", "batch"]), help="One entry per day, hour or batch."
)
def metrics(
    lake: str,
    master: str,
    since: str | int | None,
    until: str | int | None,
    include_irrelevant: bool,
    by: str | None,
) -> None:
    """The summary metrics of `searchtrail metrics`, as JSON (as HTTP answers them)."""
    with _session(master, "searchtrail-metrics") as session:
        from searchtrail.spark.metrics_job import metrics as job

        answer = job(session, lake, since, until, include_irrelevant=include_irrelevant, by=by)
    click.echo(json.dumps(answer, indent=2))
