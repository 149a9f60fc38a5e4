"""Training data and metrics as Apache Spark jobs over the Parquet lake (docs/scale.md).

``training_data`` (the records and triplets of ``searchtrail.export``) and ``metrics``
(the summary of ``Clickstream.metrics``) read the lake that ``searchtrail export --lake``
writes: ``sessions/date=YYYY-MM-DD/*.parquet``, ``events/date=.../*.parquet`` and
``batches/part.parquet``. Each job module also runs as it is under ``spark-submit``.

pyspark is an optional extra (``pip install searchtrail[spark]``): only this package
imports it, and only when a job is called, so ``import searchtrail`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from searchtrail.spark.metrics_job import metrics
    from searchtrail.spark.training_job import training_data

__all__ = ["metrics", "training_data"]


def __getattr__(name: str) -> Any:
    # Lazy: importing pyspark starts no JVM but takes a second and may be absent.
    if name == "metrics":
        from searchtrail.spark import metrics_job

        return metrics_job.metrics
    if name == "training_data":
        from searchtrail.spark import training_job

        return training_job.training_data
    raise AttributeError(name)
