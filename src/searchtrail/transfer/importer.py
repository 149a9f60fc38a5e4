"""The importer: records of any source, validated as the API validates, stored in chunks.

Rules (docs/import-export.md):

- Every row is validated with the API's models (``searchtrail.models``) under the
  configured limits; a row that fails is written to the rejects file with the field it
  failed on, and the rest is imported. No time window applies: history is welcome, but
  timestamps must still parse.
- Idempotent: a row already stored is counted ``already_there`` and not written again.
  A session is the same when its content (query, results, context, user, created_at,
  extra) is the same; its batch, flags and registration time in the target win.
- Never overwrites: a row whose key (``session_id``, an event's ``(session, event_id)``,
  or a kept id) is taken by different content is a conflict, reported like a reject. The
  events of a session that was rejected or in conflict are not attached to anything.
- User ids are stored as the service stores them (``user_ids``: keyed pseudonyms under
  ``user_id_key``, docs/privacy.md), after validation, so raw ids never reach the disk.
- Ids kept (the own dump): batch_id, session_number, event id, entry_id and key_id are
  inserted as given, and PostgreSQL's id sequences are moved past them.
- Exactly one batch collects: an imported collecting batch becomes the target's
  collecting batch when the target has none; otherwise its sessions join the target's
  collecting batch (counted ``merged``), and the imported batch is not created.
- Streamed: ``CHUNK`` records at a time, one transaction per chunk, written through the
  Store; memory holds a few chunks, the batch map, and the ids of rejected sessions.

Two ways in, to the same rows: the own dump's JSONL sessions and events are validated
from their lines, a chunk at a time, ahead of the writes (``_pipeline``, ``_validation``);
every other source, and a chunk the fast way refuses, goes record by record through the
API's models, which name the bad row's field. Either way a chunk is first inserted
without asking which rows were new (``ImportWriter.insert_new``); only when a key was
taken are its rows sorted into new, already there and conflicts.

Events: ``_events``; batches, queue entries and keys: ``_tables``; counts and rejects:
``_run``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from searchtrail.limits import DEFAULT_LIMITS, Limits
from searchtrail.storage.api import ImportWriter
from searchtrail.storage.api import Transfer as Store
from searchtrail.storage.sql.schema import sessions
from searchtrail.transfer._events import EVENT_CHUNK, EventImport
from searchtrail.transfer._run import NEW, chunks, ms
from searchtrail.transfer._summary import (
    EXIT_REJECTED,
    ImportSummary,
    TableCounts,
    message,
)
from searchtrail.transfer._validation import (
    SESSIONS,
    flat_results,
    validate,
)
from searchtrail.transfer.records import (
    ImportSource,
    SessionRecord,
)

__all__ = [
    "EVENT_CHUNK",
    "EXIT_REJECTED",
    "SESSION_CHUNK",
    "ImportSummary",
    "TableCounts",
    "import_source",
]

SESSION_CHUNK = 2000


class _Run(EventImport):
    # What a session's user id is stored as (the service's pseudonyms); None: as read.
    user_ids: Callable[[str | None], str | None] | None = None

    # -- sessions ----------------------------------------------------------------------

    def sessions(self) -> None:
        lines = self.fast_chunks(sessions, SESSION_CHUNK)
        if lines is None:
            for chunk in chunks(self.source.sessions(), SESSION_CHUNK):
                self._session_records(self.split("sessions", chunk))
            return
        for part, valid in lines:
            if valid is None or not self._fast_sessions(part, valid):
                records = self.split("sessions", self._records_of(sessions, part))
                self._session_records(records)

    def _fast_sessions(self, part: list[tuple[int, bytes]], valid: list[tuple[Any, ...]]) -> bool:
        """A chunk of the own dump's sessions that ``FastAdapters`` accepted: its rows, as
        ``_session_records`` builds them. False (nothing done) for a chunk with a session
        of a batch not imported: ``_session_records`` says why, session by session."""
        rows: list[dict[str, Any]] = []
        for (
            number,
            session_id,
            key,
            query,
            results,
            meta,
            payload_filter,
            sort_by,
            user_id,
            created_at,
            created_at_given,
            is_irrelevant,
            registered_at,
            extra,
        ) in valid:  # SESSION_FIELDS
            batch_id = self.batch_map.get(key) if type(key) is int else None
            if batch_id is None:
                return False
            created = ms(created_at, self.now)
            row: dict[str, Any] = {
                "session_id": session_id,
                "batch_id": batch_id,
                "search_query": query,
                "search_results": results,  # as stored: extra only where kept
                "search_meta": meta,
                "payload_filter": payload_filter,
                "sort_by": sort_by,
                "user_id": user_id,
                "created_at_ms": created,
                "created_at_given": created_at_given and created_at is not None,
                "is_irrelevant": is_irrelevant,
                "registered_at_ms": ms(registered_at, created),
                "extra": extra,
            }
            if number is not None:
                row = {"session_number": number, **row}
            rows.append(row)
        self.counts["sessions"].read += len(part)
        self.bar.update(len(part))
        self._store_sessions(rows, partial(self._line_record, sessions, part))
        return True

    def _session_records(self, records: list[SessionRecord]) -> None:
        data = [
            {
                "session_id": r.session_id,
                "search_query": r.search_query,
                "search_results": flat_results(r.search_results),
                "search_meta": r.search_meta,
                "payload_filter": r.payload_filter,
                "sort_by": r.sort_by,
                "user_id": r.user_id,
                "created_at": r.created_at_ms,
                "created_at_given": r.created_at_given,
                "is_irrelevant": r.is_irrelevant,
                "registered_at": r.registered_at_ms,
                "extra": r.extra,
                "session_number": r.session_number,
            }
            for r in records
        ]
        valid, bad = validate(SESSIONS, data, self.limits)
        for i, why in bad.items():
            self._refuse("sessions", records[i], why)
            if isinstance(records[i].session_id, str):
                self.skipped_sessions.add(records[i].session_id)
        good = [r for i, r in enumerate(records) if i not in bad]
        rows: list[dict[str, Any]] = []
        placed: list[SessionRecord] = []
        for record, s in zip(good, valid, strict=True):
            batch_id: int | None = None
            if record.batch_key is not None:
                found = self.batch_map.get(record.batch_key)
                if found is None:
                    why = self.batch_refused.get(
                        record.batch_key, f"no batch {record.batch_key!r} in the source"
                    )
                    self._refuse("sessions", record, f"batch_id: {why}")
                    self.skipped_sessions.add(s.session_id)
                    continue
                batch_id = found
            created = ms(s.created_at, self.now)
            row: dict[str, Any] = {
                "session_id": s.session_id,
                "batch_id": batch_id,
                "search_query": s.search_query,
                "search_results": s.results_as_stored(),
                "search_meta": s.search_meta,
                "payload_filter": s.payload_filter,
                "sort_by": s.sort_by,
                "user_id": s.user_id,
                "created_at_ms": created,
                "created_at_given": s.created_at_given and s.created_at is not None,
                "is_irrelevant": s.is_irrelevant,
                "registered_at_ms": ms(s.registered_at, created),
                "extra": s.kept_extra,
            }
            if s.session_number is not None:
                row = {"session_number": s.session_number, **row}
            rows.append(row)
            placed.append(record)
        self._store_sessions(rows, placed.__getitem__)

    def _store_sessions(self, rows: list[dict[str, Any]], record: Callable[[int], Any]) -> None:
        """Store a chunk's rows; ``record(i)`` is the record of ``rows[i]`` (for a reject)."""
        user_ids = self.user_ids
        if user_ids is not None:
            rows = [{**r, "user_id": user_ids(r["user_id"])} for r in rows]
        outcome = self.store.import_transaction(partial(self._session_chunk, rows=rows))
        counts = self.counts["sessions"]
        if outcome.count(NEW) == len(outcome):
            counts.new += len(outcome)
            return
        for i, (kind, why) in enumerate(outcome):
            if kind == "conflict":
                self._refuse("sessions", record(i), why, conflict=True)
                self.skipped_sessions.add(rows[i]["session_id"])
            elif kind == "new":
                counts.new += 1
            else:
                counts.already_there += 1

    def _session_chunk(self, w: ImportWriter, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        if any(r["batch_id"] is None for r in rows):
            collecting = w.open_collecting(self.now)
            rows = [r if r["batch_id"] is not None else {**r, "batch_id": collecting} for r in rows]
        out: list[tuple[str, str]] = [NEW] * len(rows)
        # The first import into an empty database: every row is new, and nothing more is
        # asked of the database than storing them.
        if w.insert_new(sessions, rows):
            w.reset_sequence(sessions)
            return out
        inserted = w.insert(sessions, rows, ("session_id",))
        rest = [i for i, r in enumerate(rows) if (r["session_id"],) not in inserted]
        if not rest:
            w.reset_sequence(sessions)
            return out
        stored = {
            s["session_id"]: s
            for s in w.rows_where(sessions, "session_id", [rows[i]["session_id"] for i in rest])
        }
        for i in rest:
            row = rows[i]
            found = stored.get(row["session_id"])
            if found is None:
                number = row.get("session_number")
                out[i] = ("conflict", f"session_number: {number} is taken by another session")
                continue
            differ = [f for f in _SESSION_CONTENT if f in row and found.get(f) != row[f]]
            if differ:
                out[i] = (
                    "conflict",
                    f"session_id: {row['session_id']!r} is stored with a different "
                    f"{', '.join(differ)}; the stored session is kept",
                )
            else:
                out[i] = ("already_there", "")
        w.reset_sequence(sessions)
        return out

    # -- events ------------------------------------------------------------------------


_SESSION_CONTENT = (
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "user_id",
    "created_at_ms",
    "extra",
)


def import_source(
    store: Store,
    source: ImportSource,
    *,
    limits: Limits = DEFAULT_LIMITS,
    rejects: str | Path | None = None,
    progress: bool | None = None,
    source_name: str = "",
    database: str = "",
    user_ids: Callable[[str | None], str | None] | None = None,
) -> ImportSummary:
    """Import everything ``source`` yields into ``store``; see the module docstring."""
    started = time.monotonic()
    show = sys.stderr.isatty() if progress is None else progress
    counts = getattr(source, "counts", None)
    total = sum(counts.values()) if isinstance(counts, dict) else None
    rejects_path = Path(rejects) if rejects is not None else None
    out = rejects_path.open("wb") if rejects_path is not None else None
    try:
        with tqdm(total=total, unit="row", disable=not show, file=sys.stderr) as bar:
            run = _Run(store, source, limits, out, bar)
            run.user_ids = user_ids
            run.batches()
            run.sessions()
            run.events()
            run.queue()
            run.keys()
            for reject in source.rejects():
                run.reject(_table_of(reject.source), reject)
    finally:
        if out is not None:
            out.close()
        source.close()
    tables = run.counts
    summary = ImportSummary(
        source=source_name,
        format=source.name,
        database=database,
        tables=tables,
        new=sum(t.new for t in tables.values()),
        already_there=sum(t.already_there for t in tables.values()),
        rejected=sum(t.rejected for t in tables.values()),
        conflicts=sum(t.conflicts for t in tables.values()),
        rejects_file=str(rejects_path) if rejects_path is not None else None,
        first_rejects=run.first,
        seconds=round(time.monotonic() - started, 3),
    )
    summary.message = message(summary)
    return summary


def _table_of(source_file: str) -> str:
    for name in ("improvement_queue", "api_keys", "batches", "sessions", "events"):
        if name in source_file:
            return name
    return "sessions"
