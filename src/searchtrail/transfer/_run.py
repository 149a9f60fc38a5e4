"""The state of one import run and its reporting, shared by the tables' importers.

Invariants: every row read is counted once under ``read``, and then once as ``new``,
``already_there``, ``merged``, ``rejected`` or ``conflicts``; every refused row is
written to the rejects file (with its source, line, reason and the row as read), the
first ``SUMMARY_REJECTS`` are quoted in the summary too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, TypeVar

import pydantic_core
from sqlalchemy import Table
from tqdm import tqdm

from searchtrail.limits import Limits
from searchtrail.storage.api import Transfer as Store
from searchtrail.storage.sql.schema import api_keys, batches, events, improvement_queue, sessions
from searchtrail.timestamps import now_ms
from searchtrail.transfer._pipeline import Chunk, validated_chunks
from searchtrail.transfer._summary import SUMMARY_REJECTS, TableCounts
from searchtrail.transfer.records import ImportSource, Reject

__all__ = ["NEW", "OTHER_CHUNK", "RunState", "chunks", "ms", "through"]

OTHER_CHUNK = 2000
# Every row of a chunk stored: the same tuple for all, so that a chunk is counted at once.
NEW = ("new", "")

R = TypeVar("R")


def chunks(items: Iterable[R], size: int) -> Iterator[list[R]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def ms(value: int | None, default: int) -> int:
    return default if value is None else value


def through(kept: list[int], record: Callable[[int], Any], i: int) -> Any:
    """``record`` of the ``i``-th of the kept items (``kept``: their places before)."""
    return record(kept[i])


class RunState:
    """What one import knows between its chunks: counts, the batch map, the sessions
    not imported (whose events are refused), and where rejects go."""

    def __init__(
        self,
        store: Store,
        source: ImportSource,
        limits: Limits,
        rejects: IO[bytes] | None,
        bar: tqdm[Any],
    ) -> None:
        self.store = store
        self.source = source
        self.limits = limits
        self.rejects_out = rejects
        self.bar = bar
        self.now = now_ms()
        self.counts = {
            t.name: TableCounts() for t in (batches, sessions, events, improvement_queue, api_keys)
        }
        self.first: list[dict[str, Any]] = []
        # Source batch key -> target batch id; a key missing here was not imported.
        self.batch_map: dict[Any, int] = {}
        self.batch_refused: dict[Any, str] = {}
        # Sessions of the source not imported (rejected or in conflict): their events are
        # not attached to whatever holds the id in the target.
        self.skipped_sessions: set[str] = set()

    # -- reporting ---------------------------------------------------------------------

    def reject(self, table: str, reject: Reject, *, conflict: bool = False) -> None:
        counts = self.counts[table]
        if conflict:
            counts.conflicts += 1
        else:
            counts.rejected += 1
        entry = {"source": reject.source, "line": reject.line, "reason": reject.reason}
        if conflict:
            entry["conflict"] = True
        if len(self.first) < SUMMARY_REJECTS:
            self.first.append(entry)
        if self.rejects_out is not None:
            self.rejects_out.write(
                pydantic_core.to_json({**entry, "raw": reject.raw}, fallback=str) + b"\n"
            )

    def split(self, table: str, chunk: Sequence[R | Reject]) -> list[R]:
        """A chunk as read: counted, its rejects written, its records answered."""
        self.counts[table].read += len(chunk)
        self.bar.update(len(chunk))
        out: list[R] = []
        for item in chunk:
            if isinstance(item, Reject):
                self.reject(table, item)
            else:
                out.append(item)
        return out

    def _refuse(self, table: str, record: Any, reason: str, *, conflict: bool = False) -> None:
        self.reject(table, Reject(record.file, record.line, reason, record.raw), conflict=conflict)

    def _records_of(self, table: Table, part: list[tuple[int, bytes]]) -> list[Any]:
        """The records the source yields for these lines (of a fast-path source)."""
        return self.source.records_of(table, part)  # type: ignore[attr-defined,no-any-return]

    # -- the own dump's fast path --------------------------------------------------------

    def fast_chunks(self, table: Table, size: int) -> Iterator[Chunk] | None:
        """The own dump's JSONL chunks, validated ahead (``_pipeline``); None for any other
        source, whose records go the records' way."""
        jsonl_file = getattr(self.source, "jsonl_file", None)
        path = None if jsonl_file is None else jsonl_file(table)
        if path is None:
            return None
        return validated_chunks(path, table.name, size, self.limits)

    def _line_record(self, table: Table, part: list[tuple[int, bytes]], i: int) -> Any:
        """The record of the ``i``-th line of a fast-path chunk (to refuse it)."""
        return self._records_of(table, [part[i]])[0]
