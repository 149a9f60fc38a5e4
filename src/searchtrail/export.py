"""Training data from a released batch, streamed page by page into JSONL or Parquet.

A session becomes one record (``layout="sessions"``)::

    {"session_id", "user_id", "timestamp_ms", "query", "results",
     "positives", "positive_weights", "negatives"}

- ``results``: the object ids shown, top first (a repeated id is kept at its first place).
- ``positives``: shown results with at least one event of a weighted type, in shown
  order; ``positive_weights`` is aligned with them. A result's weight is the *largest*
  weight among its events: a click then a purchase is one purchase-strength signal, not
  a sum that would favour long funnels.
- ``negatives``: the skip-above rule: shown results without a weighted event, ranked
  above the lowest-ranked positive (the user saw them on the way down and passed them).

``layout="triplets"`` flattens each record into ``(anchor, positive, negative)`` rows,
one per positive and negative pair: the column order sentence-transformers trains on.

Irrelevant sessions, sessions without events, without a text query or without a
positive are left out and counted; ``include_irrelevant`` writes irrelevant sessions as
their own split, every shown result a negative. Memory holds one page of sessions and
one Parquet row group, whatever the batch size.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import pydantic_core
from pydantic import BaseModel, Field
from tqdm import tqdm

from searchtrail.errors import BadRequest, FieldError, InvalidInput
from searchtrail.storage.api import BatchState, SessionActions, Storage
from searchtrail.timestamps import to_epoch_ms

__all__ = [
    "SESSIONS_SCHEMA",
    "TRIPLETS_SCHEMA",
    "ExportSummary",
    "Format",
    "Judgement",
    "Layout",
    "SessionJudge",
    "export_batch",
    "judge",
    "query_text",
]

Format = Literal["jsonl", "parquet"]
Layout = Literal["sessions", "triplets"]

PAGE_SIZE = 1000
ROW_GROUP_SIZE = 10_000

SESSIONS_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("results", pa.list_(pa.string()), nullable=False),
        pa.field("positives", pa.list_(pa.string()), nullable=False),
        pa.field("positive_weights", pa.list_(pa.float64()), nullable=False),
        pa.field("negatives", pa.list_(pa.string()), nullable=False),
    ]
)
TRIPLETS_SCHEMA = pa.schema(
    [
        pa.field("anchor", pa.string(), nullable=False),
        pa.field("positive", pa.string(), nullable=False),
        pa.field("negative", pa.string(), nullable=False),
    ]
)


class ExportSummary(BaseModel):
    batch_id: int
    format: Format
    layout: Layout
    sessions: int = Field(0, description="Sessions read from the batch.")
    written: dict[str, int] = Field(
        default_factory=dict, description="Sessions written, per split."
    )
    rows: dict[str, int] = Field(
        default_factory=dict, description="Rows written per split (triplets: one per pair)."
    )
    left_out: dict[str, int] = Field(
        default_factory=dict, description="Sessions kept out of train and test, by reason."
    )
    files: dict[str, str] = Field(default_factory=dict, description="Where each split went.")
    test_from_ms: int | None = Field(
        None, description="Sessions created at or after this went to the test split."
    )


@dataclass(frozen=True, slots=True)
class Judgement:
    results: list[str]
    positives: list[str]
    positive_weights: list[float]
    negatives: list[str]


def query_text(query: Any) -> str | None:
    """The anchor text: a text query as typed, a structured one as compact JSON, blank -> None."""
    if query is None:
        return None
    if isinstance(query, str):
        return query if query.strip() else None
    return pydantic_core.to_json(query).decode()


def judge(
    result_ids: list[str],
    actions: list[tuple[str | None, str]],
    weights: Mapping[str, float],
) -> Judgement:
    """Positives with their weights and skip-above negatives, from what was shown and done."""
    shown = list(dict.fromkeys(result_ids))
    weight: dict[str, float] = {}
    for object_id, event_type in actions:
        w = float(weights.get(event_type, 0.0))
        if object_id is not None and w > weight.get(object_id, 0.0):
            weight[object_id] = w
    places = [i for i, oid in enumerate(shown) if oid in weight]
    if not places:
        return Judgement(results=shown, positives=[], positive_weights=[], negatives=[])
    positives = [shown[i] for i in places]
    return Judgement(
        results=shown,
        positives=positives,
        positive_weights=[weight[p] for p in positives],
        negatives=[oid for oid in shown[: places[-1]] if oid not in weight],
    )


class SessionJudge(Protocol):
    """Reworks judgements with a click model (``searchtrail.export_clickmodels``)."""

    fields: list[pa.Field]  # what each sessions-layout record gains

    def page(self, sessions: list[SessionActions]) -> None: ...

    def apply(
        self, s: SessionActions, j: Judgement, *, filter_negatives: bool = True
    ) -> tuple[Judgement, dict[str, Any]]: ...


class _Sink(Protocol):
    rows: int

    def write(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class _JsonlSink:
    """Lines written to ``NAME.partial`` and renamed at the end: no half file under the name."""

    def __init__(self, path: Path, _schema: pa.Schema) -> None:
        self.path = path
        self.rows = 0
        self._file = _partial(path).open("wb")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(pydantic_core.to_json(record) + b"\n")
        self.rows += 1

    def close(self) -> None:
        self._file.close()
        os.replace(_partial(self.path), self.path)

    def abort(self) -> None:
        self._file.close()
        _partial(self.path).unlink(missing_ok=True)


class _ParquetSink:
    """Columns buffered up to one row group, then written: memory holds one group at most."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.rows = 0
        self._schema = schema
        self._columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self._writer = pq.ParquetWriter(_partial(path), schema)

    def write(self, record: dict[str, Any]) -> None:
        for name, column in self._columns.items():
            column.append(record[name])
        self.rows += 1
        if self.rows % ROW_GROUP_SIZE == 0:
            self._flush()

    def _flush(self) -> None:
        if self._columns[self._schema.names[0]]:
            self._writer.write_table(pa.Table.from_pydict(self._columns, schema=self._schema))
            for column in self._columns.values():
                column.clear()

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(_partial(self.path), self.path)

    def abort(self) -> None:
        self._writer.close()
        _partial(self.path).unlink(missing_ok=True)


def _check_options(
    format: str,
    layout: str,
    weights: Mapping[str, float],
    include_irrelevant: bool,
    test_fraction: float | None,
    split_at: int | str | None,
) -> int | None:
    errors: list[FieldError] = []
    if format not in ("jsonl", "parquet"):
        errors.append(FieldError(("format",), f"must be jsonl or parquet, got {format!r}"))
    if layout not in ("sessions", "triplets"):
        errors.append(FieldError(("layout",), f"must be sessions or triplets, got {layout!r}"))
    for event_type, w in weights.items():
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            errors.append(FieldError(("weights", event_type), f"must be a number >= 0, got {w!r}"))
    if test_fraction is not None and not 0 < test_fraction < 1:
        errors.append(
            FieldError(("test_fraction",), f"must be between 0 and 1, got {test_fraction}")
        )
    split_ms = None
    if split_at is not None:
        try:
            split_ms = to_epoch_ms(split_at)
        except ValueError as exc:
            errors.append(FieldError(("split_at",), str(exc)))
    if errors:
        raise InvalidInput(errors)
    if test_fraction is not None and split_at is not None:
        raise BadRequest("Give test_fraction or split_at, not both")
    if include_irrelevant and layout == "triplets":
        raise BadRequest(
            "include_irrelevant needs layout=sessions: irrelevant sessions have no positive "
            "to make a triplet"
        )
    return split_ms


def _paths(out: Path, format: str, splits: list[str]) -> dict[str, Path]:
    """One split: ``out`` is the file. Several: ``out`` is a directory of ``SPLIT.FORMAT``."""
    if splits == ["train"]:
        if out.is_dir():
            raise BadRequest(f"{out} is a directory; with one split the output is a file")
        out.parent.mkdir(parents=True, exist_ok=True)
        return {"train": out}
    if out.exists() and not out.is_dir():
        raise BadRequest(f"{out} is a file; with several splits the output is a directory")
    out.mkdir(parents=True, exist_ok=True)
    return {split: out / f"{split}.{format}" for split in splits}


def _record(s: SessionActions, query: str, j: Judgement) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "user_id": s.user_id or "",
        "timestamp_ms": s.created_at_ms,
        "query": query,
        "results": j.results,
        "positives": j.positives,
        "positive_weights": j.positive_weights,
        "negatives": j.negatives,
    }


def export_batch(
    storage: Storage,
    batch_id: int,
    out: str | Path,
    *,
    format: Format = "jsonl",
    layout: Layout = "sessions",
    weights: Mapping[str, float],
    include_irrelevant: bool = False,
    test_fraction: float | None = None,
    split_at: int | str | None = None,
    progress: bool | None = None,
    judge_with: SessionJudge | None = None,
) -> ExportSummary:
    """Write a released (or later) batch; a collecting batch is refused, it is still changing.

    ``judge_with`` reworks each judgement with a click model (examined negatives,
    labels); records gain its ``fields`` (layout sessions).

    ``test_fraction`` sends the latest sessions by ``created_at`` (that fraction of the
    batch's relevant sessions with events) to a test split; ``split_at`` sends those
    created at or after a timestamp. Files appear under their names only when complete.
    """
    split_ms = _check_options(format, layout, weights, include_irrelevant, test_fraction, split_at)
    info = storage.batches.get(batch_id)
    if info.state == BatchState.COLLECTING.value:
        raise BadRequest(
            f"Batch {batch_id} is collecting; release it first (POST /batch/release): "
            "only a released batch is fixed enough to train on"
        )
    if test_fraction is not None:
        split_ms = storage.reads.created_at_quantile(batch_id, 1 - test_fraction)
    splits = ["train"]
    if test_fraction is not None or split_at is not None:
        splits.append("test")
    if include_irrelevant:
        splits.append("irrelevant")
    paths = _paths(Path(out), format, splits)
    schema = SESSIONS_SCHEMA if layout == "sessions" else TRIPLETS_SCHEMA
    if judge_with is not None and layout == "sessions":
        schema = pa.schema([*SESSIONS_SCHEMA, *judge_with.fields])
    sink_type = _JsonlSink if format == "jsonl" else _ParquetSink
    sinks: dict[str, _Sink] = {}
    summary = ExportSummary(
        batch_id=batch_id,
        format=format,
        layout=layout,
        written=dict.fromkeys(splits, 0),
        left_out=dict.fromkeys(("irrelevant", "no_events", "no_query", "no_positives"), 0),
        files={split: str(path) for split, path in paths.items()},
        test_from_ms=split_ms if "test" in splits else None,
    )
    if layout == "triplets":
        summary.left_out["no_negatives"] = 0
    show = sys.stderr.isatty() if progress is None else progress
    try:
        for split, path in paths.items():
            sinks[split] = sink_type(path, schema)
        with tqdm(total=info.sessions, unit="session", disable=not show, file=sys.stderr) as bar:
            after = 0
            while page := storage.reads.session_actions(batch_id, after, PAGE_SIZE):
                if judge_with is not None:
                    judge_with.page(page)
                for s in page:
                    _export_one(s, weights, layout, split_ms, sinks, summary, judge_with)
                after = page[-1].session_number
                summary.sessions += len(page)
                bar.update(len(page))
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    for split, sink in sinks.items():
        sink.close()
        summary.rows[split] = sink.rows
    return summary


def _export_one(
    s: SessionActions,
    weights: Mapping[str, float],
    layout: str,
    split_ms: int | None,
    sinks: Mapping[str, _Sink],
    summary: ExportSummary,
    judge_with: SessionJudge | None = None,
) -> None:
    query = query_text(s.search_query)
    extra: dict[str, Any] = {}
    if s.is_irrelevant:
        summary.left_out["irrelevant"] += 1
        if "irrelevant" in sinks and query is not None:
            shown = list(dict.fromkeys(s.result_ids))
            j = Judgement(results=shown, positives=[], positive_weights=[], negatives=shown)
            if judge_with is not None:
                j, extra = judge_with.apply(s, j, filter_negatives=False)
            sinks["irrelevant"].write({**_record(s, query, j), **extra})
            summary.written["irrelevant"] += 1
        return
    if s.events == 0:
        summary.left_out["no_events"] += 1
        return
    if query is None:
        summary.left_out["no_query"] += 1
        return
    j = judge(s.result_ids, s.actions, weights)
    if not j.positives:
        summary.left_out["no_positives"] += 1
        return
    if judge_with is not None:
        j, extra = judge_with.apply(s, j)
    split = "test" if split_ms is not None and s.created_at_ms >= split_ms else "train"
    if layout == "sessions":
        sinks[split].write({**_record(s, query, j), **extra} if extra else _record(s, query, j))
    elif j.negatives:
        for positive in j.positives:
            for negative in j.negatives:
                sinks[split].write({"anchor": query, "positive": positive, "negative": negative})
    else:
        summary.left_out["no_negatives"] += 1
        return
    summary.written[split] += 1
