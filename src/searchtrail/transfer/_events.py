"""The importer's events: records of any source or the own dump's validated lines, stored
a chunk at a time (``importer`` says the rules).

A chunk is first stored as tuples, every event attached to its session's stored number,
without asking which rows were new (``ImportWriter.insert_new_tuples``); only when a
session is missing or a key was taken are its rows sorted into new, already there,
conflicts and rejects, row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

from searchtrail.storage.api import ImportWriter
from searchtrail.storage.sql.schema import events
from searchtrail.transfer._run import NEW, chunks, through
from searchtrail.transfer._tables import OtherTables
from searchtrail.transfer._validation import EVENTS, validate
from searchtrail.transfer.records import EventRecord

__all__ = ["EVENT_CHUNK", "EventImport"]

EVENT_CHUNK = 20_000
# A valid event, as both paths hand it on (_pipeline.EVENT_FIELDS): session_id, id,
# event_id, object_id, event_type, created_at_ms or None, meta, extra, and the number the
# dump gives its session (None from a record), a hint for ImportWriter.session_numbers.
EventItem = tuple[str, int | None, str, str | None, str, int | None, Any, Any, Any]
EVENT_CONTENT = ("object_id", "event_type", "created_at_ms", "meta", "extra")
# An event row's columns after its id, in the table's order (ImportWriter.insert_new_tuples);
# _all_new_events builds its tuples in this order.
EVENT_COLUMNS = tuple(c.name for c in events.c if c.name != "id")


class EventImport(OtherTables):
    def events(self) -> None:
        lines = self.fast_chunks(events, EVENT_CHUNK)
        if lines is None:
            for chunk in chunks(self.source.events(), EVENT_CHUNK):
                self._event_records(self.split("events", chunk))
            return
        for part, valid in lines:
            if valid is None:
                self._event_records(self.split("events", self._records_of(events, part)))
                continue
            self.counts["events"].read += len(part)
            self.bar.update(len(part))
            # EVENT_FIELDS: the shape of EventItem.
            self._store_events(valid, partial(self._line_record, events, part))

    def _event_records(self, records: list[EventRecord]) -> None:
        data = [
            {
                "session_id": r.session_id,
                "event_id": r.event_id,
                "object_id": r.object_id,
                "event_type": r.event_type,
                "created_at": r.created_at_ms,
                "meta": r.meta,
                "extra": r.extra,
                "id": r.id,
            }
            for r in records
        ]
        valid, bad = validate(EVENTS, data, self.limits)
        for i, why in bad.items():
            self._refuse("events", records[i], why)
        good = [r for i, r in enumerate(records) if i not in bad]
        items = [
            (
                e.session_id,
                e.id,
                e.event_id,
                e.object_id,
                e.event_type,
                e.created_at,
                e.meta,
                e.kept_extra,
                None,
            )
            for e in valid
        ]
        self._store_events(items, good.__getitem__)

    def _store_events(self, items: list[Any], record: Callable[[int], Any]) -> None:
        """Store a chunk of valid events (``EventItem``s); ``record(i)`` is the record of
        ``items[i]``, for a reject."""
        if self.skipped_sessions:
            kept: list[int] = []
            for i, item in enumerate(items):
                if item[0] in self.skipped_sessions:
                    why = f"session_id: session {item[0]!r} was not imported"
                    self._refuse("events", record(i), why)
                else:
                    kept.append(i)
            if len(kept) < len(items):
                items = [items[i] for i in kept]
                record = partial(through, kept, record)
        outcome = self.store.import_transaction(partial(self._event_chunk, items=items))
        counts = self.counts["events"]
        if outcome.count(NEW) == len(outcome):
            counts.new += len(outcome)
            return
        for i, (kind, why) in enumerate(outcome):
            if kind == "new":
                counts.new += 1
            elif kind == "already_there":
                counts.already_there += 1
            else:
                self._refuse("events", record(i), why, conflict=kind == "conflict")

    def _event_chunk(self, w: ImportWriter, items: list[EventItem]) -> list[tuple[str, str]]:
        numbers = w.session_numbers([item[0] for item in items], [item[8] for item in items])
        out: list[tuple[str, str]] = [NEW] * len(items)
        if self._all_new_events(w, items, numbers):
            return out
        rows: list[dict[str, Any]] = []
        where: list[int] = []
        now = self.now
        for i, (
            session_id,
            id_,
            event_id,
            object_id,
            event_type,
            created,
            meta,
            extra,
            _,
        ) in enumerate(items):
            number = numbers.get(session_id)
            if number is None:
                out[i] = ("rejected", f"session_id: no session {session_id!r} in the database")
                continue
            row: dict[str, Any] = {
                "session_number": number,
                "event_id": event_id,
                "object_id": object_id,
                "event_type": event_type,
                "created_at_ms": now if created is None else created,
                "meta": meta,
                "extra": extra,
            }
            if id_ is not None:
                row = {"id": id_, **row}
            rows.append(row)
            where.append(i)
        if w.insert_new(events, rows):
            w.reset_sequence(events)
            return out
        return self._sort_events(w, items, rows, where, out)

    def _all_new_events(
        self, w: ImportWriter, items: list[EventItem], numbers: dict[str, int]
    ) -> bool:
        """The common chunk: every session stored, ids all given or all not, and no key
        taken; its rows stored as tuples (True). False: nothing stored, the chunk goes
        row by row."""
        ids = [item[1] for item in items]
        with_ids = ids.count(None) == 0
        if not with_ids and ids.count(None) != len(ids):
            return False
        now = self.now
        get = numbers.get
        columns: tuple[str, ...] = EVENT_COLUMNS
        rows: list[tuple[Any, ...]]
        if with_ids:
            columns = ("id", *columns)
            rows = [
                (i, get(s), event_id, object_id, event_type, now if t is None else t, meta, extra)
                for s, i, event_id, object_id, event_type, t, meta, extra, _ in items
            ]
        else:
            rows = [
                (get(s), event_id, object_id, event_type, now if t is None else t, meta, extra)
                for s, _, event_id, object_id, event_type, t, meta, extra, _ in items
            ]
        at = columns.index("session_number")
        if list(map(itemgetter(at), rows)).count(None):
            return False  # a session not stored: rejected row by row
        if not w.insert_new_tuples(events, columns, rows):
            return False
        w.reset_sequence(events)
        return True

    def _sort_events(
        self,
        w: ImportWriter,
        items: list[EventItem],
        rows: list[dict[str, Any]],
        where: list[int],
        out: list[tuple[str, str]],
    ) -> list[tuple[str, str]]:
        """A chunk with a key taken: each row new, already there or in conflict."""
        inserted = w.insert(events, rows, ("session_number", "event_id"))
        rest = [
            k for k, r in enumerate(rows) if (r["session_number"], r["event_id"]) not in inserted
        ]
        if rest:
            stored = {
                (s["session_number"], s["event_id"]): s
                for s in w.rows_where(
                    events, "session_number", [rows[k]["session_number"] for k in rest]
                )
            }
            for k in rest:
                row = rows[k]
                found = stored.get((row["session_number"], row["event_id"]))
                if found is None:
                    out[where[k]] = ("conflict", f"id: {row.get('id')} is taken by another event")
                    continue
                differ = [f for f in EVENT_CONTENT if f in row and found.get(f) != row[f]]
                if differ:
                    out[where[k]] = (
                        "conflict",
                        f"event_id: {row['event_id']!r} of session "
                        f"{items[where[k]][0]!r} is stored with a different "
                        f"{', '.join(differ)}; the stored event is kept",
                    )
                else:
                    out[where[k]] = ("already_there", "")
        w.reset_sequence(events)
        return out


# A session is the same session when these are the same (its batch, flags and
# registration time in the target win: the target may have released or flagged it since).
