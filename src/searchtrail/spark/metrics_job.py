"""The summary metrics (docs/metrics.md) from the lake on Spark.

The definitions are ``searchtrail.metrics.definitions``'s: per session first (an event
interacts when its object is shown, at the object's first position; an event on an
object never shown is an unshown event; an event without ``object_id`` counts nowhere),
then sums over the sessions created in ``[since, until)``, irrelevant ones left out
unless ``include_irrelevant``. The sums fill a ``Counts`` and ``metrics_of`` makes the
ratios, so each ratio is the single-machine formula; the time-to-first-interaction
percentiles are Spark's exact ``percentile`` (linear interpolation, as numpy's).

``by``: ``day``, ``hour`` (of created_at, UTC) or ``batch``; ``query`` and ``ranker``
are not here (their normalization is Python's). Runs as it is under spark-submit::

    spark-submit .../searchtrail/spark/metrics_job.py --lake LAKE --since 2026-01-01
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from searchtrail.errors import FieldError, InvalidInput
from searchtrail.metrics.definitions import MAX_POSITION, Counts, metrics_of
from searchtrail.spark.lake import EVENTS, SESSIONS, read_table, result_ids, run_main
from searchtrail.timestamps import ms_to_iso, to_epoch_ms

__all__ = ["BY", "main", "metrics", "session_stats"]

BY = ("day", "hour", "batch")
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _in_range(since: int | None, until: int | None) -> Column:
    """``created_at`` in ``[since, until)``; the ``date`` partitions outside it are not read."""
    cond = F.lit(True)
    if since is not None:
        day = (_EPOCH + timedelta(milliseconds=since)).strftime("%Y-%m-%d")
        cond = cond & (F.col("date") >= day) & (F.col("created_at_ms") >= since)
    if until is not None:
        day = (_EPOCH + timedelta(milliseconds=until)).strftime("%Y-%m-%d")
        cond = cond & (F.col("date") <= day) & (F.col("created_at_ms") < until)
    return cond


def session_stats(sessions: DataFrame, events: DataFrame) -> DataFrame:
    """One row per session: ``definitions.session_stats``'s fields the summary needs."""
    shown = sessions.select(
        "session_number",
        "batch_id",
        "created_at_ms",
        result_ids().alias("ids"),
    )
    # array_position is 1-based and finds an id's first place; 0: never shown.
    placed = (
        events.filter(F.col("object_id").isNotNull())
        .select("session_number", "object_id", "event_type", F.col("created_at_ms").alias("at"))
        .join(shown.select("session_number", "ids"), "session_number")
        .select(
            "session_number",
            "event_type",
            "at",
            F.array_position("ids", F.col("object_id")).alias("pos"),
        )
    )
    hit = F.col("pos") > 0
    bit = F.expr("shiftleft(1, CAST(pos AS INT) - 1)")  # bit k-1: an interaction at k
    click = hit & (F.col("event_type") == "click")
    per_session = placed.groupBy("session_number").agg(
        F.count(F.when(hit, 1)).alias("interactions"),
        F.min(F.when(hit, F.col("pos"))).alias("first_position"),
        F.max(hit & (F.col("event_type") == "purchase")).alias("purchased"),
        F.count(F.when(click, 1)).alias("clicks"),
        F.sum(F.when(click, F.col("pos"))).alias("click_positions"),
        F.min(F.when(hit, F.col("at"))).alias("first_at"),
        F.count(F.when(~hit, 1)).alias("unshown_events"),
        F.bit_or(F.when(hit & (F.col("pos") <= MAX_POSITION), bit)).alias("positions_mask"),
    )
    return (
        shown.join(per_session, "session_number", "left")
        .withColumn("results", F.size("ids"))
        .withColumn("interactions", F.coalesce("interactions", F.lit(0)))
        .withColumn("purchased", F.coalesce("purchased", F.lit(False)))
        .withColumn("clicks", F.coalesce("clicks", F.lit(0)))
        .withColumn("click_positions", F.coalesce("click_positions", F.lit(0)))
        .withColumn("unshown_events", F.coalesce("unshown_events", F.lit(0)))
        .withColumn("positions_mask", F.coalesce("positions_mask", F.lit(0)))
        .withColumn("first_interaction_ms", F.col("first_at") - F.col("created_at_ms"))
    )


def _sums() -> list[Column]:
    has_results = F.col("results") > 0
    sums = [
        F.count(F.lit(1)).alias("sessions"),
        F.count(F.when(has_results, 1)).alias("with_results"),
        F.count(F.when(F.col("interactions") > 0, 1)).alias("interacted"),
        F.count(F.when(F.col("purchased"), 1)).alias("purchased"),
        F.sum(F.when(has_results, F.coalesce(1.0 / F.col("first_position"), F.lit(0.0)))).alias(
            "reciprocal_ranks"
        ),
        F.sum("clicks").alias("clicks"),
        F.sum("click_positions").alias("click_positions"),
        F.sum("interactions").alias("interactions"),
        F.sum("unshown_events").alias("unshown_events"),
        F.percentile("first_interaction_ms", F.lit(0.5)).alias("ttfi_median"),
        F.percentile("first_interaction_ms", F.lit(0.9)).alias("ttfi_p90"),
    ]
    for k in range(1, MAX_POSITION + 1):
        sums.append(F.count(F.when(F.col("results") >= k, 1)).alias(f"shown_{k}"))
        bit = F.col("positions_mask").bitwiseAND(1 << (k - 1)) != 0
        sums.append(F.count(F.when(bit, 1)).alias(f"interacted_{k}"))
    return sums


def _values(row: Any) -> dict[str, Any]:
    counts = Counts(
        sessions=row["sessions"],
        with_results=row["with_results"],
        interacted=row["interacted"],
        purchased=row["purchased"],
        reciprocal_ranks=row["reciprocal_ranks"] or 0.0,
        clicks=row["clicks"] or 0,
        click_positions=row["click_positions"] or 0,
        interactions=row["interactions"] or 0,
        unshown_events=row["unshown_events"] or 0,
        shown_at=[row[f"shown_{k}"] for k in range(1, MAX_POSITION + 1)],
        interacted_at=[row[f"interacted_{k}"] for k in range(1, MAX_POSITION + 1)],
    )
    values = metrics_of(counts)
    values["time_to_first_interaction_ms"] = {
        "median": row["ttfi_median"],
        "p90": row["ttfi_p90"],
    }
    return values


def _key(by: str) -> Column:
    if by == "day":
        return F.floor(F.col("created_at_ms") / _DAY_MS)
    if by == "hour":
        return F.floor(F.col("created_at_ms") / 3_600_000)
    return F.col("batch_id")


def _label(by: str, key: int) -> str | int:
    if by == "day":
        return (_EPOCH + timedelta(days=key)).strftime("%Y-%m-%d")
    if by == "hour":
        return (_EPOCH + timedelta(hours=key)).strftime("%Y-%m-%dT%H:00Z")
    return key


def _bound(name: str, value: object) -> int | None:
    if value is None:
        return None
    try:
        return to_epoch_ms(value)
    except ValueError as exc:
        raise InvalidInput([FieldError((name,), str(exc))]) from None


def metrics(
    spark: SparkSession,
    lake: str,
    since: object = None,
    until: object = None,
    *,
    include_irrelevant: bool = False,
    by: str | None = None,
) -> dict[str, Any]:
    """``Clickstream.metrics`` over the lake: the same object, as its JSON answers it."""
    if by is not None and by not in BY:
        raise InvalidInput([FieldError(("by",), f"must be one of {', '.join(BY)}, not {by!r}")])
    start, stop = _bound("since", since), _bound("until", until)
    sessions = read_table(spark, lake, "sessions", SESSIONS).filter(_in_range(start, stop))
    if not include_irrelevant:
        sessions = sessions.filter(~F.coalesce("is_irrelevant", F.lit(False)))
    stats = session_stats(sessions, read_table(spark, lake, "events", EVENTS))
    described = {
        "since": None if start is None else ms_to_iso(start),
        "until": None if stop is None else ms_to_iso(stop),
        "include_irrelevant": include_irrelevant,
    }
    if by is None:
        [row] = stats.agg(*_sums()).collect()
        return {**_values(row), **described}
    rows = stats.groupBy(_key(by).alias("key")).agg(*_sums()).orderBy("key").collect()
    groups = [{"key": _label(by, int(r["key"])), **_values(r)} for r in rows]
    return {"by": by, **described, "groups": groups}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="searchtrail-spark-metrics",
        description="The summary search-quality metrics (docs/metrics.md) from the lake.",
    )
    p.add_argument("--lake", required=True, help="The lake's root (a path or URI).")
    p.add_argument("--since", help="Sessions created at or after this (ISO 8601 or epoch).")
    p.add_argument("--until", help="Sessions created before this.")
    p.add_argument("--include-irrelevant", action="store_true")
    p.add_argument("--by", choices=BY, help="One entry per day, hour (UTC) or batch.")
    p.add_argument("--master", help="Spark master [default: what spark-submit gives].")
    return p


def _time(value: str | None) -> str | int | None:
    """Epoch digits as a number (seconds, or ms from 10^11), anything else as ISO text."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() else text


def _job(spark: SparkSession, args: argparse.Namespace) -> dict[str, Any]:
    return metrics(
        spark,
        args.lake,
        _time(args.since),
        _time(args.until),
        include_irrelevant=args.include_irrelevant,
        by=args.by,
    )


def main(argv: list[str] | None = None) -> int:
    return run_main(_parser(), _job, argv)


if __name__ == "__main__":
    raise SystemExit(main())
