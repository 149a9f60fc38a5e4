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

import json
import math
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Final

from bson import json_util
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.json_util import JSONOptions
from bson.objectid import ObjectId

from searchtrail.timestamps import MAX_EPOCH_MS, to_epoch_ms
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

# $date becomes DatetimeMS: exact integer milliseconds, any year, no timezone guessing.
_JSON_OPTIONS: Final = JSONOptions(
    tz_aware=True, tzinfo=UTC, datetime_conversion=DatetimeConversion.DATETIME_MS
)
_CHUNK = 1 << 20  # bytes read at a time from a JSON array

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


class _Refused(Exception):
    """A document that cannot be mapped; ``field`` names where, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Raw:
    """One document as read: its position (line, or place in a JSON array) and text."""

    position: int
    text: bytes
    error: str | None = None  # set when the text could not even be delimited
    in_array: bool = False  # position is the place in a JSON array, not a line


# -- reading mongoexport files ------------------------------------------------------------


def _documents(path: Path) -> Iterator[_Raw]:
    """Every document of ``path`` in file order; nothing if the file does not exist."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        first = _first_byte(fh)
        fh.seek(0)
        if first == b"[":
            yield from _array_elements(fh)
        elif first:
            yield from _lines(fh)


def _first_byte(fh: IO[bytes]) -> bytes:
    while chunk := fh.read(4096):
        stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped:
            return stripped[:1]
    return b""


def _lines(fh: IO[bytes]) -> Iterator[_Raw]:
    """One document a line; a ``--pretty`` document runs from a line ``{`` to a line ``}``."""
    pending: list[bytes] = []
    start = 0
    for number, line in enumerate(fh, start=1):
        stripped = line.strip()
        if number == 1:
            stripped = stripped.removeprefix(b"\xef\xbb\xbf")
        if pending:
            pending.append(line)
            if line.rstrip() == b"}":
                yield _Raw(start, b"".join(pending))
                pending = []
        elif stripped == b"{":
            pending, start = [line], number
        elif stripped:
            yield _Raw(number, stripped)
    if pending:
        yield _Raw(start, b"".join(pending), "the document is not closed before the file ends")


_STRUCTURAL: Final = re.compile(rb'["{}\[\]]')
_STRING_END: Final = re.compile(rb'["\\]')
_SCALAR_END: Final = re.compile(rb"[,\]\s]")
_WHITESPACE: Final = b" \t\r\n"


class _ArrayReader:
    """The elements of one JSON array, read in chunks: memory holds one element at a time.

    Elements are delimited by tracking strings and bracket depth only; each element's
    text is then decoded on its own, so a malformed element is one reject, and reading
    resumes after it.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._fh.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk if self._pos else self._buf + chunk
        self._pos = 0
        return True

    def _skip_whitespace(self) -> bytes:
        """The next significant byte (not consumed), or b"" at the end of the file."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos : pos + 1]
            if not self._more():
                return b""

    def elements(self) -> Iterator[_Raw]:
        if self._skip_whitespace() == b"\xef":  # a UTF-8 byte order mark
            self._pos += 3
            self._skip_whitespace()
        self._pos += 1  # the opening bracket
        index = 0
        if self._skip_whitespace() == b"]":
            return
        while True:
            index += 1
            if self._skip_whitespace() in (b"", b",", b"]"):
                yield _Raw(index, b"", "an element is missing in the JSON array", True)
                return
            text = self._element()
            if text is None:
                rest = self._buf[self._pos :]
                yield _Raw(index, rest, "the element is not closed before the file ends", True)
                return
            yield _Raw(index, text, None, True)
            after = self._skip_whitespace()
            self._pos += 1
            if after == b",":
                continue
            if after == b"]":
                if self._skip_whitespace() != b"":
                    yield _Raw(index + 1, b"", "data after the end of the JSON array", True)
                return
            found = "the end of the file" if after == b"" else repr(after.decode(errors="replace"))
            error = f"expected ',' or ']' after element {index}, got {found}"
            yield _Raw(index + 1, b"", error, True)
            return

    def _element(self) -> bytes | None:
        """The text of the element starting at the current position, consumed; None if
        the file ends inside it."""
        start = self._pos
        first = self._buf[start]
        in_string = first == ord('"')
        i = start + 1
        if first not in b'{["':
            while (m := _SCALAR_END.search(self._buf, i)) is None:
                i, start = self._refill(len(self._buf), start)
                if i < 0:
                    self._pos = len(self._buf)
                    return self._buf[start:]
            self._pos = m.start()
            return self._buf[start : m.start()]
        depth = 0 if in_string else 1
        while True:
            if in_string:
                m = _STRING_END.search(self._buf, i)
                if m is not None and m.group() == b"\\":
                    i = m.end() + 1
                    if i <= len(self._buf):
                        continue
                    m = None
                elif m is not None:
                    in_string = False
                    i = m.end()
                    if depth == 0:
                        break
                    continue
            else:
                m = _STRUCTURAL.search(self._buf, i)
                if m is not None:
                    i = m.end()
                    byte = m.group()
                    if byte == b'"':
                        in_string = True
                    elif byte in (b"{", b"["):
                        depth += 1
                    else:
                        depth -= 1
                        if depth == 0:
                            break
                    continue
            # The element goes on past the buffer: read more, keep its start.
            i, start = self._refill(i, start)
            if i < 0:
                return None
        text = self._buf[start:i]
        self._pos = i
        return text

    def _refill(self, i: int, start: int) -> tuple[int, int]:
        """Read more input keeping the element from ``start``; the shifted (i, start), or
        (-1, start) at the end of the file."""
        offset = i - start
        self._pos = start
        if not self._more():
            return -1, self._pos
        return self._pos + offset, self._pos


def _array_elements(fh: IO[bytes]) -> Iterator[_Raw]:
    yield from _ArrayReader(fh).elements()


# -- decoding and mapping -------------------------------------------------------------------


def _extended(obj: dict[str, Any]) -> Any:
    # Only an object with a "$" key can be Extended JSON; the others stay as json made them.
    for key in obj:
        if key[:1] == "$":
            return json_util.object_hook(obj, _JSON_OPTIONS)
    return obj


# One decoder for every document: the C scanner, bson.json_util only where "$" keys are.
_DECODER: Final = json.JSONDecoder(object_hook=_extended)


def _decode(raw: _Raw) -> dict[str, Any]:
    if raw.error is not None:
        raise _Refused("document", raw.error)
    try:
        doc = _DECODER.decode(raw.text.decode("utf-8"))
    except Exception as exc:  # any failure of the decoder on one document is that document's
        reason = str(exc) or type(exc).__name__
        raise _Refused("document", f"not valid (Extended) JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise _Refused("document", f"must be a JSON object, got {_kind(doc)}")
    return doc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _plain(value: Any) -> Any:
    """``value`` as JSON: BSON types JSON has no word for keep their relaxed Extended JSON."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)  # Int64 is an int subclass
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if math.isnan(value):
            return {"$numberDouble": "NaN"}
        return {"$numberDouble": "-Infinity" if value < 0 else "Infinity"}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


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
