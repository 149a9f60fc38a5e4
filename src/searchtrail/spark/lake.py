"""Reading the Parquet lake, and what every job shares.

The lake (``searchtrail export --lake``; docs/import-export.md)::

    LAKE/sessions/date=YYYY-MM-DD/*.parquet   one row per session, by its created_at (UTC)
    LAKE/events/date=YYYY-MM-DD/*.parquet     one row per event, by the event's created_at
    LAKE/batches/part.parquet                 the batches table

JSON columns (``search_query``, ``search_results``...) hold JSON text as the dump writes
it (``pydantic_core.to_json``: compact, keys in stored order). Files and directories
whose names start with ``_`` or ``.`` are not data; Spark's file listing skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType

from searchtrail.errors import SearchtrailError

__all__ = [
    "BATCHES",
    "EVENTS",
    "SESSIONS",
    "read_table",
    "result_ids",
    "run_main",
    "spark_session",
]


def _schema(*fields: tuple[str, Any]) -> StructType:
    return StructType([StructField(name, kind, nullable=True) for name, kind in fields])


# Only the columns the jobs read: a column the exporter adds later changes nothing here,
# and Parquet reads no other column from disk. ``date`` is the hive partition, kept as
# its text so that no type inference can turn it into something else.
SESSIONS = _schema(
    ("session_number", LongType()),
    ("session_id", StringType()),
    ("batch_id", LongType()),
    ("search_query", StringType()),
    ("search_results", StringType()),
    ("user_id", StringType()),
    ("created_at_ms", LongType()),
    ("is_irrelevant", BooleanType()),
    ("date", StringType()),
)
EVENTS = _schema(
    ("session_number", LongType()),
    ("object_id", StringType()),
    ("event_type", StringType()),
    ("created_at_ms", LongType()),
    ("date", StringType()),
)
BATCHES = _schema(("batch_id", LongType()), ("state", StringType()))


def read_table(spark: SparkSession, lake: str, name: str, schema: StructType) -> DataFrame:
    """``LAKE/NAME`` as a DataFrame of ``schema``; a table not written yet is empty."""
    path = f"{lake.rstrip('/')}/{name}"
    try:
        return spark.read.schema(schema).parquet(path)
    except AnalysisException as exc:
        # A lake exported before its first event has no events directory: no rows, not
        # an error. Any other analysis error (a corrupt file) still ends the job.
        if "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
            raise
        return spark.createDataFrame([], schema)


def result_ids(search_results: str = "search_results") -> Column:
    """The object ids a session showed, in shown order, repeats kept: the JSON text of
    ``search_results`` read as an array."""
    parsed = F.from_json(search_results, "array<struct<object_id:string>>")
    return F.transform(parsed, lambda result: result["object_id"])


def spark_session(master: str | None = None, app: str = "searchtrail") -> SparkSession:
    """The session a job runs in: ``master`` as given, else what spark-submit set."""
    # The console progress bar would mix with the JSON summary a job prints.
    builder = SparkSession.builder.appName(app).config("spark.ui.showConsoleProgress", "false")
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def run_main(
    parser: argparse.ArgumentParser,
    job: Callable[[SparkSession, argparse.Namespace], dict[str, Any]],
    argv: Sequence[str] | None = None,
) -> int:
    """A job's ``__main__`` under spark-submit: parse, run, print the JSON summary.

    A domain error (bad option, unknown batch) is one line on stderr and exit 1, as the
    ``searchtrail`` command ends it.
    """
    args = parser.parse_args(argv)
    spark = spark_session(args.master, parser.prog)
    try:
        print(json.dumps(job(spark, args), indent=2))
    except SearchtrailError as exc:
        print(f"{parser.prog}: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    return 0
