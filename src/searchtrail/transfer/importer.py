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
- Ids kept (the own dump): batch_id, session_number, event id, entry_id and key_id are
  inserted as given, and PostgreSQL's id sequences are moved past them.
- Exactly one batch collects: an imported collecting batch becomes the target's
  collecting batch when the target has none; otherwise its sessions join the target's
  collecting batch (counted ``merged``), and the imported batch is not created.
- Streamed: ``CHUNK`` records at a time, one transaction per chunk, written through the
  Store; memory holds one chunk, the batch map, and the ids of rejected sessions.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypeVar

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from tqdm import tqdm

from searchtrail.limits import DEFAULT_LIMITS, Limits
from searchtrail.models import (
    BatchStateName,
    JsonObject,
    NewSessionEvent,
    NonNegativeInt64,
    PositiveInt64,
    SessionCreateRequest,
    Timestamp,
    _check_id,
    _check_no_nul,
    _limits,
    _Strict,
)
from searchtrail.models import (
    QueueStateName as QueueState,  # the Literal of storage.api.QueueState
)
from searchtrail.storage.api import BatchState, ImportWriter
from searchtrail.storage.api import Transfer as Store
from searchtrail.storage.sql.schema import api_keys, batches, events, improvement_queue, sessions
from searchtrail.timestamps import now_ms
from searchtrail.transfer.records import (
    BatchRecord,
    EventRecord,
    ImportSource,
    Reject,
    SessionRecord,
)

__all__ = ["EXIT_REJECTED", "ImportSummary", "TableCounts", "import_source"]

# Exit code of `searchtrail import` when rows were rejected or in conflict (the rest is
# imported); 0 when every row was imported or already there.
EXIT_REJECTED = 3
SESSION_CHUNK = 2000
EVENT_CHUNK = 20_000
OTHER_CHUNK = 2000
# Rejects quoted in the summary itself (all of them go to the rejects file).
SUMMARY_REJECTS = 10

R = TypeVar("R")


# -- validation: the API's models, with the columns an import also carries --------------


class _SessionIn(SessionCreateRequest):
    # A record is structured: its unknown keys are in "extra" already, and its results'
    # unknown keys sit flat in each result, as a client sends them.
    model_config = ConfigDict(extra="forbid")

    session_id: str
    created_at_given: StrictBool = True
    is_irrelevant: StrictBool = False
    registered_at: Timestamp
    kept_extra: JsonObject | None = Field(None, validation_alias="extra")
    session_number: PositiveInt64 | None = None


class _EventIn(NewSessionEvent):
    model_config = ConfigDict(extra="forbid")  # unknown keys are in "extra" already

    session_id: str
    id: PositiveInt64 | None = None
    kept_extra: JsonObject | None = Field(None, validation_alias="extra")

    @model_validator(mode="before")
    @classmethod
    def _derive_event_id(cls, data: Any) -> Any:
        # The API's derivation, over what a push would have held: an event imported without
        # an event_id gets the id the API gives the same event pushed.
        if isinstance(data, dict) and data.get("event_id") is None:
            pushed = {k: v for k, v in data.items() if k not in ("session_id", "id", "extra")}
            derive: Callable[[Any], dict[str, Any]] = NewSessionEvent._derive_event_id  # type: ignore[assignment]
            data = {**data, "event_id": derive(pushed)["event_id"]}
        return data

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars, "a session id")


class _BatchIn(_Strict):
    batch_id: PositiveInt64 | None = None
    state: BatchStateName
    release_id: str | None = None
    created_at: Timestamp
    released_at: Timestamp
    updated_at: Timestamp

    @field_validator("release_id")
    @classmethod
    def _rid(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars, "a release id")


class _QueueIn(_Strict):
    entry_id: PositiveInt64 | None = None
    session_id: str
    state: QueueState
    attempts: NonNegativeInt64 = 0
    enqueued_at: Timestamp
    claimed_at: Timestamp
    claimed_by: str | None = None
    finished_at: Timestamp
    error: str | None = None

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars, "a session id")

    @field_validator("claimed_by")
    @classmethod
    def _worker(cls, v: str | None, info: ValidationInfo) -> str | None:
        # claimed_by is 256 characters wide, as ClaimRequest's worker.
        return None if v is None else _check_id(v, min(_limits(info).max_id_chars, 256))

    @field_validator("error")
    @classmethod
    def _error(cls, v: str | None) -> str | None:
        if v is not None:
            _check_no_nul(v, "error")
        return v


class _KeyIn(_Strict):
    key_id: PositiveInt64 | None = None
    name: str
    prefix: str
    key_hash: str
    scopes: str
    created_at: Timestamp
    revoked_at: Timestamp

    @field_validator("name", "prefix", "key_hash")
    @classmethod
    def _text(cls, v: str, info: ValidationInfo) -> str:
        width = {"name": 256, "prefix": 32, "key_hash": 128}[str(info.field_name)]
        return _check_id(v, width, str(info.field_name))

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: str) -> str:
        from searchtrail.keys import Scope

        for scope in v.split():
            Scope(scope)  # ValueError names the unknown scope
        if not v.split():
            raise ValueError("a key needs at least one scope")
        return v


# The record's names of the fields a model calls otherwise (timestamps in milliseconds).
_FIELD_NAMES = {
    "created_at": "created_at_ms",
    "registered_at": "registered_at_ms",
    "released_at": "released_at_ms",
    "updated_at": "updated_at_ms",
    "enqueued_at": "enqueued_at_ms",
    "claimed_at": "claimed_at_ms",
    "finished_at": "finished_at_ms",
    "revoked_at": "revoked_at_ms",
    "batch_id": "batch_id",
}


def _flat_results(results: Any) -> Any:
    """Results as a client sends them: a stored result's ``extra`` keys back at its top."""
    if not isinstance(results, list):
        return results
    return [
        {**r["extra"], **{k: v for k, v in r.items() if k != "extra"}}
        if isinstance(r, dict) and isinstance(r.get("extra"), dict)
        else r
        for r in results
    ]


def _reason(errors: Sequence[Any]) -> str:
    parts = []
    for e in errors:
        loc = [str(x) for x in e["loc"]]
        if loc:
            loc[0] = _FIELD_NAMES.get(loc[0], loc[0])
        where = ".".join(loc) or "row"
        parts.append(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _validate(
    adapter: TypeAdapter[list[Any]], data: list[dict[str, Any]], limits: Limits
) -> tuple[list[Any], dict[int, str]]:
    """Validate a chunk in one call: the valid items (in order) and each bad one's reason.

    One call for the whole chunk: pydantic's per-call overhead was paid once per chunk
    instead of once per row. A chunk with bad rows is validated again without them.
    """
    context = {"limits": limits}
    try:
        return adapter.validate_python(data, context=context), {}
    except ValidationError as exc:
        by_row: dict[int, list[Any]] = {}
        for e in exc.errors(include_url=False):
            index = e["loc"][0]
            assert isinstance(index, int)
            by_row.setdefault(index, []).append({**e, "loc": e["loc"][1:]})
    bad = {i: _reason(errs) for i, errs in by_row.items()}
    good = [d for i, d in enumerate(data) if i not in bad]
    return adapter.validate_python(good, context=context), bad


_SESSIONS = TypeAdapter(list[_SessionIn])
_EVENTS = TypeAdapter(list[_EventIn])
_BATCHES = TypeAdapter(list[_BatchIn])
_QUEUE = TypeAdapter(list[_QueueIn])
_KEYS = TypeAdapter(list[_KeyIn])


# -- the summary -----------------------------------------------------------------------


class TableCounts(BaseModel):
    read: int = Field(0, description="Rows read from the source.")
    new: int = Field(0, description="Rows stored by this import.")
    already_there: int = Field(0, description="Rows the database held already, unchanged.")
    merged: int = Field(
        0, description="Collecting batches whose sessions joined the target's collecting batch."
    )
    rejected: int = Field(0, description="Rows refused (invalid, or their session was).")
    conflicts: int = Field(0, description="Rows whose key is taken by different content.")


class ImportSummary(BaseModel):
    source: str
    format: str
    database: str
    tables: dict[str, TableCounts]
    new: int = Field(0, description="Rows stored, all tables.")
    already_there: int = 0
    rejected: int = 0
    conflicts: int = 0
    rejects_file: str | None = Field(None, description="Where every refused row went.")
    first_rejects: list[dict[str, Any]] = Field(
        default_factory=list, description="The first few refused rows' source, line, reason."
    )
    message: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_REJECTED if self.rejected or self.conflicts else 0


# -- the run ---------------------------------------------------------------------------


def _chunks(items: Iterable[R], size: int) -> Iterator[list[R]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _ms(value: int | None, default: int) -> int:
    return default if value is None else value


class _Run:
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
        self.has_extra = {t.name: "extra" in t.c for t in (sessions, events)}

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

    def _split(self, table: str, chunk: Sequence[R | Reject]) -> list[R]:
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

    def _no_extra(self, table: str, records: list[Any], data: list[dict[str, Any]]) -> None:
        """Until the schema has an ``extra`` column, a row carrying extra fields is refused
        rather than stored without them."""
        if self.has_extra[table]:
            return
        for i in reversed(range(len(data))):
            if data[i].pop("extra", None):
                self._refuse(table, records[i], "extra: this database has no extra column")
                del data[i], records[i]

    # -- batches -----------------------------------------------------------------------

    def batches(self) -> None:
        for chunk in _chunks(self.source.batches(), OTHER_CHUNK):
            records: list[BatchRecord] = self._split("batches", chunk)
            data = [
                {
                    "batch_id": r.batch_id,
                    "state": r.state,
                    "release_id": r.release_id,
                    "created_at": r.created_at_ms,
                    "released_at": r.released_at_ms,
                    "updated_at": r.updated_at_ms,
                }
                for r in records
            ]
            valid, bad = _validate(_BATCHES, data, self.limits)
            for i, why in bad.items():
                self._refuse("batches", records[i], why)
                self.batch_refused[records[i].key] = f"batch {records[i].key!r} was rejected"
            good = [r for i, r in enumerate(records) if i not in bad]
            outcome = self.store.import_transaction(partial(self._batch_chunk, valid=valid))
            for record, (kind, target, why) in zip(good, outcome, strict=True):
                counts = self.counts["batches"]
                if kind == "conflict":
                    self._refuse("batches", record, why, conflict=True)
                    self.batch_refused[record.key] = f"batch {record.key!r} is in conflict"
                    continue
                setattr(counts, kind, getattr(counts, kind) + 1)
                self.batch_map[record.key] = target

    def _batch_chunk(self, w: ImportWriter, valid: list[_BatchIn]) -> list[tuple[str, int, str]]:
        """Each batch's fate: (new | already_there | merged | conflict, target id, why)."""
        out: list[tuple[str, int, str]] = []
        for b in valid:
            created = _ms(b.created_at, self.now)
            collecting = b.state == BatchState.COLLECTING.value
            row: dict[str, Any] = {
                "state": b.state,
                "collecting": 1 if collecting else None,
                "release_id": b.release_id,
                "created_at_ms": created,
                "released_at_ms": b.released_at,
                "updated_at_ms": _ms(b.updated_at, created),
            }
            if b.batch_id is not None:
                row = {"batch_id": b.batch_id, **row}
            out.append(self._one_batch(w, b, row, collecting, created))
        w.reset_sequence(batches)
        return out

    def _one_batch(
        self, w: ImportWriter, b: _BatchIn, row: dict[str, Any], collecting: bool, created: int
    ) -> tuple[str, int, str]:
        if b.batch_id is not None:
            found = w.rows_where(batches, "batch_id", [b.batch_id])
            if found:
                if found[0]["created_at_ms"] == created:
                    return "already_there", b.batch_id, ""
                return "conflict", 0, f"batch_id: {b.batch_id} is taken by another batch"
        else:
            same = w.batch_without_id(b.release_id, created, b.state)
            if same is not None and not collecting:
                return "already_there", same, ""
        if collecting:
            current = w.collecting_batch()
            if current is not None:
                return "merged", current, ""
        if inserted := w.insert(batches, [row], ("batch_id",)):
            ((batch_id,),) = inserted
            return "new", int(batch_id), ""
        if collecting and (current := w.collecting_batch()) is not None:
            return "merged", current, ""  # one opened meanwhile
        taken = w.rows_where(batches, "release_id", [b.release_id]) if b.release_id else []
        if taken:
            return "conflict", 0, f"release_id: {b.release_id!r} is taken by another batch"
        return "conflict", 0, "batch_id: taken by another batch"

    # -- sessions ----------------------------------------------------------------------

    def sessions(self) -> None:
        for chunk in _chunks(self.source.sessions(), SESSION_CHUNK):
            records: list[SessionRecord] = self._split("sessions", chunk)
            data = [
                {
                    "session_id": r.session_id,
                    "search_query": r.search_query,
                    "search_results": _flat_results(r.search_results),
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
            self._no_extra("sessions", records, data)
            valid, bad = _validate(_SESSIONS, data, self.limits)
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
                created = _ms(s.created_at, self.now)
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
                    "registered_at_ms": _ms(s.registered_at, created),
                }
                if self.has_extra["sessions"]:
                    row["extra"] = s.kept_extra
                if s.session_number is not None:
                    row = {"session_number": s.session_number, **row}
                rows.append(row)
                placed.append(record)
            outcome = self.store.import_transaction(partial(self._session_chunk, rows=rows))
            counts = self.counts["sessions"]
            for record, row, (kind, why) in zip(placed, rows, outcome, strict=True):
                if kind == "conflict":
                    self._refuse("sessions", record, why, conflict=True)
                    self.skipped_sessions.add(row["session_id"])
                elif kind == "new":
                    counts.new += 1
                else:
                    counts.already_there += 1

    def _session_chunk(self, w: ImportWriter, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        if any(r["batch_id"] is None for r in rows):
            collecting = w.open_collecting(self.now)
            rows = [r if r["batch_id"] is not None else {**r, "batch_id": collecting} for r in rows]
        inserted = w.insert(sessions, rows, ("session_id",))
        out: list[tuple[str, str]] = [("new", "")] * len(rows)
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

    def events(self) -> None:
        for chunk in _chunks(self.source.events(), EVENT_CHUNK):
            records: list[EventRecord] = self._split("events", chunk)
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
            self._no_extra("events", records, data)
            valid, bad = _validate(_EVENTS, data, self.limits)
            for i, why in bad.items():
                self._refuse("events", records[i], why)
            good = [r for i, r in enumerate(records) if i not in bad]
            kept_records: list[EventRecord] = []
            kept: list[_EventIn] = []
            for record, e in zip(good, valid, strict=True):
                if e.session_id in self.skipped_sessions:
                    self._refuse(
                        "events",
                        record,
                        f"session_id: session {e.session_id!r} was not imported",
                    )
                else:
                    kept_records.append(record)
                    kept.append(e)
            outcome = self.store.import_transaction(partial(self._event_chunk, valid=kept))
            counts = self.counts["events"]
            for record, (kind, why) in zip(kept_records, outcome, strict=True):
                if kind in ("conflict", "rejected"):
                    self._refuse("events", record, why, conflict=kind == "conflict")
                elif kind == "new":
                    counts.new += 1
                else:
                    counts.already_there += 1

    def _event_chunk(self, w: ImportWriter, valid: list[_EventIn]) -> list[tuple[str, str]]:
        numbers = w.session_numbers([e.session_id for e in valid])
        out: list[tuple[str, str]] = [("new", "")] * len(valid)
        rows: list[dict[str, Any]] = []
        where: list[int] = []
        extra = self.has_extra["events"]
        for i, e in enumerate(valid):
            number = numbers.get(e.session_id)
            if number is None:
                out[i] = ("rejected", f"session_id: no session {e.session_id!r} in the database")
                continue
            row: dict[str, Any] = {
                "session_number": number,
                "event_id": e.event_id,
                "object_id": e.object_id,
                "event_type": e.event_type,
                "created_at_ms": _ms(e.created_at, self.now),
                "meta": e.meta,
            }
            if extra:
                row["extra"] = e.kept_extra
            if e.id is not None:
                row = {"id": e.id, **row}
            rows.append(row)
            where.append(i)
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
                differ = [f for f in _EVENT_CONTENT if f in row and found.get(f) != row[f]]
                if differ:
                    out[where[k]] = (
                        "conflict",
                        f"event_id: {row['event_id']!r} of session "
                        f"{valid[where[k]].session_id!r} is stored with a different "
                        f"{', '.join(differ)}; the stored event is kept",
                    )
                else:
                    out[where[k]] = ("already_there", "")
        w.reset_sequence(events)
        return out

    # -- the improvement queue and API keys --------------------------------------------

    def queue(self) -> None:
        self._by_id(
            "improvement_queue",
            self.source.queue(),
            _QUEUE,
            lambda r: {
                "entry_id": r.entry_id,
                "session_id": r.session_id,
                "state": r.state,
                "attempts": r.attempts,
                "enqueued_at": r.enqueued_at_ms,
                "claimed_at": r.claimed_at_ms,
                "claimed_by": r.claimed_by,
                "finished_at": r.finished_at_ms,
                "error": r.error,
            },
            lambda q: {
                "entry_id": q.entry_id,
                "session_id": q.session_id,
                "state": q.state,
                "attempts": q.attempts,
                "enqueued_at_ms": _ms(q.enqueued_at, self.now),
                "claimed_at_ms": q.claimed_at,
                "claimed_by": q.claimed_by,
                "finished_at_ms": q.finished_at,
                "error": q.error,
            },
            natural=("session_id", "enqueued_at_ms"),
        )

    def keys(self) -> None:
        self._by_id(
            "api_keys",
            self.source.keys(),
            _KEYS,
            lambda r: {
                "key_id": r.key_id,
                "name": r.name,
                "prefix": r.prefix,
                "key_hash": r.key_hash,
                "scopes": r.scopes,
                "created_at": r.created_at_ms,
                "revoked_at": r.revoked_at_ms,
            },
            lambda k: {
                "key_id": k.key_id,
                "name": k.name,
                "prefix": k.prefix,
                "key_hash": k.key_hash,
                "scopes": k.scopes,
                "created_at_ms": _ms(k.created_at, self.now),
                "revoked_at_ms": k.revoked_at,
            },
            natural=("prefix",),
        )

    def _by_id(
        self,
        name: str,
        items: Iterable[Any],
        adapter: TypeAdapter[list[Any]],
        to_input: Callable[[Any], dict[str, Any]],
        to_row: Callable[[Any], dict[str, Any]],
        natural: tuple[str, ...],
    ) -> None:
        """Queue entries and keys: matched by their kept id, else by a natural key."""
        table = improvement_queue if name == "improvement_queue" else api_keys
        (pk,) = table.primary_key.columns
        for chunk in _chunks(items, OTHER_CHUNK):
            records = self._split(name, chunk)
            valid, bad = _validate(adapter, [to_input(r) for r in records], self.limits)
            for i, why in bad.items():
                self._refuse(name, records[i], why)
            good = [r for i, r in enumerate(records) if i not in bad]
            rows = []
            for v in valid:
                row = to_row(v)
                if row[pk.name] is None:
                    del row[pk.name]
                rows.append(row)

            def work(w: ImportWriter, rows: list[dict[str, Any]] = rows) -> list[tuple[str, str]]:
                out: list[tuple[str, str]] = []
                for row in rows:
                    if pk.name in row:
                        found = w.rows_where(table, pk.name, [row[pk.name]])
                    else:
                        found = [
                            s
                            for s in w.rows_where(table, natural[0], [row[natural[0]]])
                            if all(s[c] == row[c] for c in natural)
                        ]
                    if found:
                        differ = [c for c in row if found[0][c] != row[c]]
                        if differ:
                            what = f"{pk.name} {found[0][pk.name]}"
                            out.append(
                                (
                                    "conflict",
                                    f"{differ[0]}: {what} is stored with different "
                                    f"{', '.join(differ)}; the stored row is kept",
                                )
                            )
                        else:
                            out.append(("already_there", ""))
                    elif w.insert(table, [row], (pk.name,)):
                        out.append(("new", ""))
                    else:
                        out.append(("conflict", f"{natural[0]}: {row[natural[0]]!r} is taken"))
                w.reset_sequence(table)
                return out

            outcome = self.store.import_transaction(work)
            counts = self.counts[name]
            for record, (kind, why) in zip(good, outcome, strict=True):
                if kind == "conflict":
                    self._refuse(name, record, why, conflict=True)
                elif kind == "new":
                    counts.new += 1
                else:
                    counts.already_there += 1


# A session is the same session when these are the same (its batch, flags and
# registration time in the target win: the target may have released or flagged it since).
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
_EVENT_CONTENT = ("object_id", "event_type", "created_at_ms", "meta", "extra")


def import_source(
    store: Store,
    source: ImportSource,
    *,
    limits: Limits = DEFAULT_LIMITS,
    rejects: str | Path | None = None,
    progress: bool | None = None,
    source_name: str = "",
    database: str = "",
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
    summary.message = _message(summary)
    return summary


def _table_of(source_file: str) -> str:
    for name in ("improvement_queue", "api_keys", "batches", "sessions", "events"):
        if name in source_file:
            return name
    return "sessions"


def _message(s: ImportSummary) -> str:
    refused = s.rejected + s.conflicts
    if s.new == 0 and refused == 0:
        return "nothing new: every row was already there"
    text = f"imported {s.new} new rows, {s.already_there} already there"
    if refused:
        where = (
            f" (see {s.rejects_file})" if s.rejects_file else " (pass --rejects FILE to keep them)"
        )
        text += f"; {s.rejected} rejected and {s.conflicts} in conflict{where}"
    return text
