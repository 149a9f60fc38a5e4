"""A fitted click model's files (docs/clickmodels.md, "Outputs").

Each file is written to ``NAME.partial`` and renamed when complete, so a crash leaves no
half file under a final name.

- ``propensities.json``: examination by position (relative and raw), params, scope, counts.
- ``fit.json``: the held-out log-likelihood and perplexity, sessions trained and tested.
- ``labels.jsonl``, ``labels.parquet``: one record per (query, object) pair.
- ``qrels.txt`` + ``queries.tsv``: TREC qrels (``query_id 0 doc_id grade``) and the query
  text of each id.
- ``judgments_quepid.csv``: Quepid's ratings CSV (``query,docid,rating``).
- ``judgments_srw.json``: the body of OpenSearch Search Relevance Workbench's
  ``PUT _plugins/_search_relevance/judgments`` (type ``IMPORT_JUDGMENT``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pydantic_core

from searchtrail.clickfit import FittedClickModel

__all__ = ["FILES", "LABELS_SCHEMA", "trec_id", "write_files"]

FILES = (
    "propensities.json",
    "fit.json",
    "labels.jsonl",
    "labels.parquet",
    "qrels.txt",
    "queries.tsv",
    "judgments_quepid.csv",
    "judgments_srw.json",
)
LABELS_SCHEMA = pa.schema(
    [
        pa.field("query", pa.string(), nullable=False),
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("impressions", pa.int64(), nullable=False),
        pa.field("clicks", pa.int64(), nullable=False),
        pa.field("attractiveness", pa.float64()),
        pa.field("satisfaction", pa.float64()),
        pa.field("relevance", pa.float64()),
        pa.field("grade", pa.int64(), nullable=False),
    ]
)
_TREC_ESCAPES = {"%": "%25", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"}


def trec_id(object_id: str) -> str:
    """An object id as one whitespace-free qrels column: ``%``, space, tab, CR and LF
    percent-encoded (every other character as it is)."""
    return "".join(_TREC_ESCAPES.get(c, c) for c in object_id)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _text(path: Path, fill: Callable[[IO[str]], None]) -> None:
    def write(partial: Path) -> None:
        with partial.open("w", encoding="utf-8", newline="") as f:
            fill(f)

    _atomic(path, write)


def _json(path: Path, value: Any) -> None:
    def fill(f: IO[str]) -> None:
        f.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    _text(path, fill)


def _by_query(labels: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Labels grouped by query, in their order (``FittedClickModel.order``), best first."""
    group: list[dict[str, Any]] = []
    for row in labels:
        if group and row["query"] != group[0]["query"]:
            yield group[0]["query"], sorted(group, key=lambda r: -r["grade"])
            group = []
        group.append(row)
    if group:
        yield group[0]["query"], sorted(group, key=lambda r: -r["grade"])


def write_files(fitted: FittedClickModel, out: Path) -> dict[str, str]:
    """Every output file of ``fitted`` into the directory ``out``: name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    head = {"model": fitted.name, "scope": fitted.scope}
    _json(
        paths["propensities.json"],
        {
            "model": fitted.name,
            "examination": fitted.examination,
            "examination_raw": fitted.examination_raw,
            "params": fitted.params,
            "scope": fitted.scope,
            "counts": fitted.counts(),
        },
    )
    _json(paths["fit.json"], {**head, **fitted.fit_quality(), "counts": fitted.counts()})
    labels = fitted.labels()

    def jsonl(f: IO[str]) -> None:
        for row in labels:
            f.write(pydantic_core.to_json(row).decode() + "\n")

    _text(paths["labels.jsonl"], jsonl)
    columns = {name: [row[name] for row in labels] for name in LABELS_SCHEMA.names}
    table = pa.Table.from_pydict(columns, schema=LABELS_SCHEMA)
    _atomic(paths["labels.parquet"], lambda p: pq.write_table(table, p))
    groups = list(_by_query(labels))
    query_ids = {query: n for n, (query, _rows) in enumerate(groups, 1)}

    def qrels(f: IO[str]) -> None:
        for query, rows in groups:
            for row in rows:
                f.write(f"{query_ids[query]} 0 {trec_id(row['object_id'])} {row['grade']}\n")

    def queries(f: IO[str]) -> None:
        for query, n in query_ids.items():
            f.write(f"{n}\t{query}\n")

    def quepid(f: IO[str]) -> None:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["query", "docid", "rating"])
        for query, rows in groups:
            writer.writerows([query, row["object_id"], row["grade"]] for row in rows)

    _text(paths["qrels.txt"], qrels)
    _text(paths["queries.tsv"], queries)
    _text(paths["judgments_quepid.csv"], quepid)
    _json(
        paths["judgments_srw.json"],
        {
            "name": f"searchtrail {fitted.name}",
            "description": f"Implicit judgments: grades 0..3 of the {fitted.name} click model "
            "fitted by searchtrail",
            "type": "IMPORT_JUDGMENT",
            "judgmentRatings": [
                {
                    "query": query,
                    "ratings": [
                        {"docId": row["object_id"], "rating": f"{row['grade']:.3f}"} for row in rows
                    ],
                }
                for query, rows in groups
            ],
        },
    )
    return {name: str(path) for name, path in paths.items()}
