"""A test-only lake writer: the layout of ``searchtrail export --lake`` from a database.

Stands in for the real exporter (being written beside this) in the Spark tests; it
produces the same fixed layout from a full Parquet dump (``transfer.dump.export_all``:
every column, JSON columns as JSON text)::

    LAKE/sessions/date=YYYY-MM-DD/part-N.parquet   by the session's created_at (UTC)
    LAKE/events/date=YYYY-MM-DD/part-N.parquet     by the event's created_at (UTC)
    LAKE/batches/part.parquet
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from searchtrail import Clickstream
from searchtrail.transfer.dump import export_all

__all__ = ["write_lake"]


def _with_date(table: pa.Table) -> pa.Table:
    day = pc.strftime(
        pc.cast(table["created_at_ms"], pa.timestamp("ms", tz="UTC")), format="%Y-%m-%d"
    )
    return table.append_column("date", day)


def write_lake(cs: Clickstream, lake: Path) -> Path:
    """Write ``cs``'s sessions, events and batches as a lake under ``lake``."""
    with tempfile.TemporaryDirectory(dir=lake.parent) as tmp:
        export_all(cs.storage.transfer, tmp, format="parquet", progress=False)
        for name in ("sessions", "events"):
            table = _with_date(pq.read_table(Path(tmp) / f"{name}.parquet"))
            ds.write_dataset(
                table,
                lake / name,
                format="parquet",
                partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
                basename_template="part-{i}.parquet",
                max_rows_per_group=50_000,
            )
        (lake / "batches").mkdir(parents=True)
        shutil.copy(Path(tmp) / "batches.parquet", lake / "batches" / "part.parquet")
    return lake
