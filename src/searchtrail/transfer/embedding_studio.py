"""Embedding Studio's clickstream, as ``mongoexport`` writes it, read as an import source.

Embedding Studio keeps its clickstream in three MongoDB collections, written by its
``MongoClickstreamDao`` through ``MongoDao.model_to_bson`` (pydantic ``model_dump`` in
JSON mode with ``exclude_none=True``, so a field that is ``None`` is absent):

``session_batches``
    ``_id`` (ObjectId; ``str(_id)`` is the batch id sessions refer to), ``status``
    (collecting, released, fine_tuning, archiving, archived), ``session_counter``,
    ``created_at`` (int epoch seconds), and once released ``release_id`` and
    ``released_at`` (int epoch seconds).
``sessions``
    ``_id`` (an ObjectId Mongo assigned; storage only), ``session_id``, ``search_query``,
    ``created_at`` (int epoch seconds), ``search_results`` (``object_id``, ``rank``,
    ``meta``), ``search_meta``, ``payload_filter``, ``sort_by``, ``user_id``,
    ``is_irrelevant``, ``is_payload_search``, ``batch_id`` (the batch's ``_id`` as hex
    text) and ``session_number`` (the batch's ``session_counter`` when the session was
    registered: a counter per batch, starting at 1).
``session_events``
    ``_id`` (an ObjectId Mongo assigned, the model's ``db_id``; storage only),
    ``event_id``, ``session_id``, ``object_id``, ``event_type``, ``created_at`` (int
    epoch seconds), ``meta``.

``open_source(DIR, options)`` reads ``DIR/session_batches.json``, ``DIR/sessions.json``
and ``DIR/session_events.json``; a missing file is an empty collection. Each file is
what ``mongoexport`` writes: one document a line (its default; ``--pretty`` documents
spanning lines are read too) or one JSON array (``--jsonArray``, detected from the first
character), in relaxed or canonical Extended JSON.

Invariants of what this source yields (the contract is ``transfer.records``):

- Batches come first, oldest first (``created_at``, then ``_id``); ``key`` is the hex
  ``_id``. A batch that is not collecting and has no ``release_id`` (possible only if its
  status was set while it was collecting) gets ``embedding-studio-<_id>``, so a rerun of
  the import identifies it as the original's release id identifies the others.
- Sessions come after every batch, ordered by their batch's position, then by
  ``session_number``: searchtrail numbers sessions globally, so the order within a batch
  is what is kept. The order is established by an on-disk sort (a private temporary
  SQLite database), so memory stays bounded whatever the collection's size.
- Events come last, in file order, streamed.
- Times become epoch milliseconds; ``$date`` values keep their milliseconds exactly.
- Keys the original's models do not map to a searchtrail field go to ``extra`` (of the
  session, the shown result or the event); Mongo's ``_id`` and the event's ``db_id`` are
  storage ids, not data, and are dropped. Values JSON cannot hold (ObjectId, dates,
  decimals, NaN, binary inside ``meta`` or ``extra``) keep their relaxed Extended JSON
  form, so nothing is lost.
- A document that cannot be mapped (malformed JSON, not an object, a required field
  missing, a timestamp that is not one, an id of the wrong type) is a ``Reject``, yielded
  in its collection's stream, naming the file, its line (for a JSON array: its position
  in the array, 1 = first) and the field; reading goes on with the next document.
  A session's reject comes before every session, as sessions are sorted first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bson.datetime_ms import DatetimeMS
from bson.objectid import ObjectId

from searchtrail.timestamps import MAX_EPOCH_MS, to_epoch_ms
from searchtrail.transfer._extended_json import _decode, _documents, _kind, _plain, _Raw, _Refused
from searchtrail.transfer.records import (
    BatchRecord,
    EventRecord,
    ImportOptions,
    KeyRecord,
    QueueRecord,
    Reject,
    SessionRecord,
)

__all__ = [
    "BATCHES_FILE",
    "EVENTS_FILE",
    "SESSIONS_FILE",
    "EmbeddingStudioSource",
    "open_source",
]

BATCHES_FILE: Final = "session_batches.json"
SESSIONS_FILE: Final = "sessions.json"
EVENTS_FILE: Final = "session_events.json"

# Fields of the original's RegisteredSession that map to a SessionRecord field.
_SESSION_MAPPED: Final = frozenset(
    {
        "session_id",
        "search_query",
        "created_at",
        "search_results",
        "search_meta",
        "payload_filter",
        "sort_by",
        "user_id",
        "is_irrelevant",
        "batch_id",
        "session_number",
    }
)
_EVENT_MAPPED: Final = frozenset(
    {"event_id", "session_id", "object_id", "event_type", "created_at", "meta"}
)
# Storage ids of the original, not data: never carried over.
_STORAGE_IDS: Final = frozenset({"_id", "db_id"})
_SESSION_NOT_EXTRA: Final = _SESSION_MAPPED | _STORAGE_IDS
_EVENT_NOT_EXTRA: Final = _EVENT_MAPPED | _STORAGE_IDS


def _required(doc: dict[str, Any], field: str) -> Any:
    if field not in doc:
        raise _Refused(field, "missing (the original's model requires it)")
    return doc[field]


def _ms(value: Any, field: str) -> int:
    """A stored time as epoch milliseconds: the original's int seconds, or a ``$date``."""
    if isinstance(value, DatetimeMS):
        ms = int(value)
        if not 0 <= ms <= MAX_EPOCH_MS:
            raise _Refused(field, f"a date between 1970 and 9999 is needed, got {ms} ms")
        return ms
    try:
        return to_epoch_ms(value)
    except ValueError as exc:
        raise _Refused(field, str(exc)) from None


def _batch_key(value: Any, field: str) -> str:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise _Refused(field, f"must be the batch's ObjectId or its hex text, got {_kind(value)}")


def _batch(doc: dict[str, Any], raw: _Raw, file: str) -> BatchRecord:
    if "_id" in doc:
        key = _batch_key(doc["_id"], "_id")
    elif "batch_id" in doc:
        key = _batch_key(doc["batch_id"], "batch_id")
    else:
        raise _Refused("_id", "missing (the batch's ObjectId, which its sessions refer to)")
    state = _plain(_required(doc, "status"))
    created_at_ms = _ms(_required(doc, "created_at"), "created_at")
    released = doc.get("released_at")
    released_at_ms = None if released is None else _ms(released, "released_at")
    release_id = _plain(doc.get("release_id"))
    if release_id is None and state != "collecting":
        release_id = f"embedding-studio-{key}"
    return BatchRecord(
        key=key,
        state=state,
        release_id=release_id,
        created_at_ms=created_at_ms,
        released_at_ms=released_at_ms,
        file=file,
        line=raw.position,
        raw=_text(raw),
    )


@dataclass(frozen=True, slots=True)
class _SessionOrder:
    batch_key: str
    session_number: int


def _session(doc: dict[str, Any], raw: _Raw, file: str) -> tuple[_SessionOrder, SessionRecord]:
    if "session_id" in doc:
        session_id = _plain(doc["session_id"])
    elif isinstance(doc.get("_id"), str):
        session_id = doc["_id"]  # a model version that stores session_id as _id
    else:
        raise _Refused("session_id", "missing (the original's model requires it)")
    batch_key = _batch_key(_required(doc, "batch_id"), "batch_id")
    number = _required(doc, "session_number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise _Refused("session_number", f"must be an integer, got {_kind(number)}")
    created_at_ms = _ms(_required(doc, "created_at"), "created_at")
    results = _results(_required(doc, "search_results"))
    extra = {k: _plain(v) for k, v in doc.items() if k not in _SESSION_NOT_EXTRA}
    # Later versions store is_payload_search on every session; its default (False) says
    # nothing, and kept it would give every session an extra.
    if extra.get("is_payload_search") is False:
        del extra["is_payload_search"]
    record = SessionRecord(
        session_id=session_id,
        batch_key=batch_key,
        search_query=_plain(doc.get("search_query")),
        search_results=results,
        search_meta=_plain(doc.get("search_meta")),
        payload_filter=_plain(doc.get("payload_filter")),
        sort_by=_plain(doc.get("sort_by")),
        user_id=_plain(doc.get("user_id")),
        created_at_ms=created_at_ms,
        created_at_given=True,
        is_irrelevant=_plain(doc.get("is_irrelevant", False)),
        extra=extra or None,
        file=file,
        line=raw.position,
        raw=_text(raw),
    )
    return _SessionOrder(batch_key, int(number)), record


def _results(value: Any) -> list[dict[str, Any]]:
    """The shown results, each as a client sends it: unknown keys beside the named ones
    (searchtrail keeps them under the result's ``extra``)."""
    if not isinstance(value, list):
        raise _Refused("search_results", f"must be an array, got {_kind(value)}")
    results: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Refused(f"search_results[{i}]", f"must be an object, got {_kind(item)}")
        results.append({k: _plain(v) for k, v in item.items()})
    return results


def _event(doc: dict[str, Any], raw: _Raw, file: str) -> EventRecord:
    session_id = _required(doc, "session_id")
    if not isinstance(session_id, str):
        raise _Refused("session_id", f"must be a string, got {_kind(session_id)}")
    event_id = _plain(_required(doc, "event_id"))
    object_id = _plain(_required(doc, "object_id"))
    event_type = _plain(_required(doc, "event_type"))
    created_at_ms = _ms(_required(doc, "created_at"), "created_at")
    extra = {k: _plain(v) for k, v in doc.items() if k not in _EVENT_NOT_EXTRA}
    return EventRecord(
        event_id=event_id,
        event_type=event_type,
        object_id=object_id,
        created_at_ms=created_at_ms,
        meta=_plain(doc.get("meta")),
        extra=extra or None,
        session_id=session_id,
        file=file,
        line=raw.position,
        raw=_text(raw),
    )


def _text(raw: _Raw) -> str:
    return raw.text.decode("utf-8", errors="replace").strip()


# -- the source -------------------------------------------------------------------------------


class EmbeddingStudioSource:
    """The three collections of one ``mongoexport`` directory; see the module docstring."""

    name = "embedding-studio"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._batch_order: dict[str, int] = {}
        self._sort_db: sqlite3.Connection | None = None

    def _path(self, name: str) -> Path:
        return self.directory / name

    def batches(self) -> Iterator[BatchRecord | Reject]:
        path = self._path(BATCHES_FILE)
        file = str(path)
        records: list[BatchRecord] = []  # batches are few: one per fine-tuning round
        for raw in _documents(path):
            try:
                records.append(_batch(_decode(raw), raw, file))
            except _Refused as refused:
                yield _reject(file, raw, refused)
        records.sort(key=lambda b: (b.created_at_ms, str(b.key)))
        self._batch_order = {str(b.key): i for i, b in enumerate(records)}
        yield from records

    def sessions(self) -> Iterator[SessionRecord | Reject]:
        path = self._path(SESSIONS_FILE)
        file = str(path)
        db = self._sort_db = sqlite3.connect("")  # private, on disk, deleted on close
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE s (batch_rank INT, batch_key TEXT, number INT, seq INT, "
            "position INT, text BLOB)"
        )
        unknown_batch = len(self._batch_order)  # after every batch read, by key
        rows: list[tuple[int, str, int, int, int, bytes]] = []
        in_array = False
        for seq, raw in enumerate(_documents(path)):
            in_array = raw.in_array
            try:
                order, _ = _session(_decode(raw), raw, file)
            except _Refused as refused:
                yield _reject(file, raw, refused)
                continue
            rank = self._batch_order.get(order.batch_key, unknown_batch)
            rows.append((rank, order.batch_key, order.session_number, seq, raw.position, raw.text))
            if len(rows) >= 10_000:
                db.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?, ?)", rows)
                rows.clear()
        db.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?, ?)", rows)
        del rows
        cursor = db.execute(
            "SELECT position, text FROM s ORDER BY batch_rank, batch_key, number, seq"
        )
        for position, text in cursor:
            raw = _Raw(position, text, None, in_array)
            # Mapped once already: the same document maps the same way again.
            yield _session(_decode(raw), raw, file)[1]
        db.close()
        self._sort_db = None

    def events(self) -> Iterator[EventRecord | Reject]:
        path = self._path(EVENTS_FILE)
        file = str(path)
        for raw in _documents(path):
            try:
                yield _event(_decode(raw), raw, file)
            except _Refused as refused:
                yield _reject(file, raw, refused)

    def queue(self) -> Iterator[QueueRecord | Reject]:
        # The original's sessions_for_improvement is a task queue of its workers, not
        # clickstream; it is not read.
        return iter(())

    def keys(self) -> Iterator[KeyRecord | Reject]:
        return iter(())

    def rejects(self) -> Iterator[Reject]:
        # Every reject is yielded in its stream, where it occurs.
        return iter(())

    def close(self) -> None:
        if self._sort_db is not None:
            self._sort_db.close()
            self._sort_db = None


def _reject(file: str, raw: _Raw, refused: _Refused) -> Reject:
    where = f"JSON array element {raw.position}: " if raw.in_array else ""
    return Reject(file, raw.position, f"{where}{refused}", _text(raw))


def open_source(path: Path, options: ImportOptions) -> EmbeddingStudioSource:
    """``path`` is the directory ``mongoexport`` wrote the three collections into.

    Whether a file is a JSON array is read from its first character, so
    ``options.json_array`` need not be set (either way works).
    """
    del options
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is not a directory; give the directory holding {BATCHES_FILE}, "
            f"{SESSIONS_FILE} and {EVENTS_FILE} as mongoexport wrote them"
        )
    if not any((path / name).exists() for name in (BATCHES_FILE, SESSIONS_FILE, EVENTS_FILE)):
        raise FileNotFoundError(
            f"{path} holds none of {BATCHES_FILE}, {SESSIONS_FILE}, {EVENTS_FILE}; "
            "export them with mongoexport --collection NAME --out DIR/NAME.json"
        )
    return EmbeddingStudioSource(path)
