"""Training data from the lake on Spark: the records and triplets of ``searchtrail export``.

The same judgement as ``searchtrail.export`` (its docstring is the definition), written
as DataFrame operations so that no row passes through the driver and no Python runs on
the executors:

- ``results``: the shown ids, a repeated id kept at its first place;
- a result's weight is the largest weight of its events (types without a weight, or 0,
  make no positive); ``positives`` are the shown results with a weight, in shown order;
- ``negatives``: unweighted results ranked above the lowest positive (skip-above);
- left out and counted: irrelevant sessions, sessions without events, without a text
  query (blank, or none) or without a positive (triplets: also without a negative).

Click-model judges (``export --negatives examined``, ``--labels``) and the test split
(``--test-fraction``, ``--split-at``) are not here. Output: ``OUT/SPLIT/`` (``train``,
and ``irrelevant`` with ``include_irrelevant``), each a Spark directory of part files
in Parquet or JSON lines, complete when its ``_SUCCESS`` marker is there.

Runs as it is under spark-submit::

    spark-submit .../searchtrail/spark/training_job.py --lake LAKE --out OUT --batch-id 3
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from searchtrail.errors import BadRequest, BatchNotFound
from searchtrail.export import ExportSummary, Format, Layout, _check_options
from searchtrail.spark.lake import BATCHES, EVENTS, SESSIONS, read_table, result_ids, run_main
from searchtrail.storage.api import BatchState

__all__ = ["judged_sessions", "main", "query_text", "training_data"]

# Python's str.strip() removes what str.isspace() calls space: Unicode White_Space
# (Java's (?U)\s) plus the separators U+001C..U+001F. Without them a query of only
# those characters would be kept here and left out by `searchtrail export`.
_BLANK = r"(?U)\A[\s\x1c-\x1f]*\z"
_RECORD = [
    "session_id",
    "user_id",
    "timestamp_ms",
    "query",
    "results",
    "positives",
    "positive_weights",
    "negatives",
]


def query_text(search_query: Column) -> Column:
    """``searchtrail.export.query_text`` on JSON text: a JSON string decoded (blank ->
    null); any other JSON value as its text, which the lake holds in the same compact
    form as ``pydantic_core.to_json``."""
    decoded = F.from_json(F.concat(F.lit('{"q":'), search_query, F.lit("}")), "q STRING")["q"]
    return (
        F.when(search_query.isNull(), F.lit(None))
        .when(search_query.startswith('"'), F.when(~decoded.rlike(_BLANK), decoded))
        .otherwise(search_query)
    )


def _weight_map(weights: Mapping[str, float]) -> Column:
    pairs = [x for event_type, w in weights.items() for x in (F.lit(event_type), F.lit(float(w)))]
    return F.create_map(*pairs) if pairs else F.lit(None).cast("map<string,double>")


def judged_sessions(
    sessions: DataFrame, events: DataFrame, batch_id: int, weights: Mapping[str, float]
) -> DataFrame:
    """One row per session of the batch: its record's columns plus ``is_irrelevant``,
    ``events`` (how many) and the judgement; nothing decided about splits yet."""
    batch = (
        sessions.filter(F.col("batch_id") == batch_id)
        .withColumn("ids", result_ids())
        .select(
            "session_number",
            "session_id",
            F.coalesce("user_id", F.lit("")).alias("user_id"),
            F.col("created_at_ms").alias("timestamp_ms"),
            query_text(F.col("search_query")).alias("query"),
            # array_position finds an id's first place: later repeats are dropped.
            F.filter("ids", lambda x, i: F.array_position("ids", x) == i + 1).alias("results"),
            F.coalesce("is_irrelevant", F.lit(False)).alias("is_irrelevant"),
        )
    )
    # Per (session, object): how many events and the largest weight; then per session:
    # the event count and a map object -> weight of the weighted objects.
    table = _weight_map(weights)
    per_object = (
        events.join(batch.select("session_number"), "session_number", "left_semi")
        .withColumn("w", F.coalesce(F.try_element_at(table, F.col("event_type")), F.lit(0.0)))
        .groupBy("session_number", "object_id")
        .agg(F.count(F.lit(1)).alias("n"), F.max("w").alias("w"))
    )
    weighted = F.when(F.col("object_id").isNotNull() & (F.col("w") > 0), F.struct("object_id", "w"))
    per_session = per_object.groupBy("session_number").agg(
        F.sum("n").alias("events"), F.map_from_entries(F.collect_list(weighted)).alias("weight")
    )

    def weight_of(object_id: Column) -> Column:
        return F.try_element_at(F.col("weight"), object_id)

    last = F.array_max(F.transform("results", lambda x, i: F.when(weight_of(x).isNotNull(), i)))
    return (
        batch.join(per_session, "session_number", "left")
        .withColumn("events", F.coalesce("events", F.lit(0)))
        .withColumn("positives", F.filter("results", lambda x: weight_of(x).isNotNull()))
        .withColumn("positive_weights", F.transform("positives", weight_of))
        .withColumn(
            "negatives", F.filter("results", lambda x, i: (i < last) & weight_of(x).isNull())
        )
    )


def _status(layout: str) -> Column:
    status = (
        F.when(F.col("is_irrelevant"), "irrelevant")
        .when(F.col("events") == 0, "no_events")
        .when(F.col("query").isNull(), "no_query")
        .when(F.size("positives") == 0, "no_positives")
    )
    if layout == "triplets":
        status = status.when(F.size("negatives") == 0, "no_negatives")
    return status.otherwise("train")


def _batch_state(spark: SparkSession, lake: str, batch_id: int) -> None:
    found = read_table(spark, lake, "batches", BATCHES).filter(F.col("batch_id") == batch_id)
    rows = found.select("state").limit(1).collect()
    if not rows:
        raise BatchNotFound(batch_id)
    if rows[0]["state"] == BatchState.COLLECTING.value:
        raise BadRequest(
            f"Batch {batch_id} is collecting; release it first (POST /batch/release): "
            "only a released batch is fixed enough to train on"
        )


def _write(df: DataFrame, path: str, format: str) -> None:
    writer = df.write.mode("errorifexists")
    writer.parquet(path) if format == "parquet" else writer.json(path)


def training_data(
    spark: SparkSession,
    lake: str,
    out: str,
    batch_id: int,
    *,
    weights: Mapping[str, float],
    format: Format = "parquet",
    layout: Layout = "sessions",
    include_irrelevant: bool = False,
) -> dict[str, Any]:
    """Write a released batch's training data under ``out``; answers the summary that
    ``searchtrail export`` prints (``files`` are the split directories)."""
    _check_options(format, layout, weights, include_irrelevant, None, None)
    _batch_state(spark, lake, batch_id)
    sessions = read_table(spark, lake, "sessions", SESSIONS)
    events = read_table(spark, lake, "events", EVENTS)
    judged = (
        judged_sessions(sessions, events, batch_id, weights)
        .withColumn("status", _status(layout))
        .persist()
    )
    try:
        counted = (
            judged.groupBy("status")
            .agg(
                F.count(F.lit(1)).alias("sessions"),
                F.sum(F.size("positives") * F.size("negatives")).alias("pairs"),
                F.count("query").alias("with_query"),
            )
            .collect()
        )
        by_status = {r["status"]: r for r in counted}
        splits = ["train", "irrelevant"] if include_irrelevant else ["train"]
        root = out.rstrip("/")
        summary = ExportSummary(
            batch_id=batch_id,
            format=format,
            layout=layout,
            sessions=sum(r["sessions"] for r in counted),
            left_out={
                reason: by_status[reason]["sessions"] if reason in by_status else 0
                for reason in ("irrelevant", "no_events", "no_query", "no_positives")
                + (("no_negatives",) if layout == "triplets" else ())
            },
            files={split: f"{root}/{split}" for split in splits},
        )
        train = judged.filter(F.col("status") == "train")
        written = by_status["train"]["sessions"] if "train" in by_status else 0
        summary.written["train"] = written
        if layout == "sessions":
            _write(train.select(_RECORD), f"{root}/train", format)
            summary.rows["train"] = written
        else:
            pairs = train.select(
                F.col("query").alias("anchor"),
                F.explode("positives").alias("positive"),
                "negatives",
            ).select("anchor", "positive", F.explode("negatives").alias("negative"))
            _write(pairs, f"{root}/train", format)
            summary.rows["train"] = by_status["train"]["pairs"] if "train" in by_status else 0
        if include_irrelevant:
            irrelevant = judged.filter(F.col("is_irrelevant") & F.col("query").isNotNull())
            record = irrelevant.select(
                *_RECORD[:5],
                F.array().cast("array<string>").alias("positives"),
                F.array().cast("array<double>").alias("positive_weights"),
                F.col("results").alias("negatives"),
            )
            _write(record, f"{root}/irrelevant", format)
            n = by_status["irrelevant"]["with_query"] if "irrelevant" in by_status else 0
            summary.written["irrelevant"] = summary.rows["irrelevant"] = n
    finally:
        judged.unpersist()
    return summary.model_dump()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="searchtrail-spark-training-data",
        description="A released batch's training data from the Parquet lake.",
    )
    p.add_argument("--lake", required=True, help="The lake's root (a path or URI).")
    p.add_argument("--out", required=True, help="Where the split directories go.")
    p.add_argument("--batch-id", type=int, required=True)
    p.add_argument("--layout", choices=["sessions", "triplets"], default="sessions")
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    p.add_argument("--include-irrelevant", action="store_true")
    p.add_argument(
        "--weights",
        type=json.loads,
        help='Event type weights as JSON, e.g. {"click": 1, "purchase": 3} '
        "[default: the export_event_weights setting]",
    )
    p.add_argument("--master", help="Spark master [default: what spark-submit gives].")
    return p


def _job(spark: SparkSession, args: argparse.Namespace) -> dict[str, Any]:
    from searchtrail.settings import Settings

    weights = Settings().export_event_weights if args.weights is None else args.weights
    return training_data(
        spark,
        args.lake,
        args.out,
        args.batch_id,
        weights=weights,
        format=args.format,
        layout=args.layout,
        include_irrelevant=args.include_irrelevant,
    )


def main(argv: list[str] | None = None) -> int:
    return run_main(_parser(), _job, argv)


if __name__ == "__main__":
    raise SystemExit(main())
