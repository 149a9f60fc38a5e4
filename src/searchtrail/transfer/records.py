"""The normalized records every import source yields and the importer consumes.

An import source (searchtrail's own dump, Embedding Studio's MongoDB export, ...) reads
its input and yields these records; ``searchtrail.transfer.importer`` validates them with
the API's own models (``searchtrail.models``: the same id, size, NUL, JSON-type and
timestamp rules), writes them through the Store in chunks, and counts what was new,
already there, rejected or in conflict. A source therefore does **no** validation of
its own beyond what it needs to read its format: a field that holds the wrong thing is
passed on as read, and the importer rejects the row naming the field.

What a source must yield (the contract for ``transfer/embedding_studio.py`` too):

- ``batches()``: every batch, in the order they were created (oldest first). ``key``
  is whatever names the batch in the source (Mongo ``_id``, or the dump's ``batch_id``);
  ``SessionRecord.batch_key`` refers to it. A source without batches yields nothing,
  and its sessions (``batch_key=None``) go to the target's collecting batch.
- ``sessions()``: every session, after all batches. ``session_id`` is the natural key:
  a stored session with the same id and the same content is "already there", with
  different content a conflict (reported, never overwritten).
- ``events()``: every event, after all sessions. An event names its session by
  ``session_id`` (the own dump writes it beside each event for that purpose). An event
  of a session that was rejected or in conflict is not attached to any other session.
- ``queue()`` and ``keys()``: improvement-queue entries and API keys (hashes only);
  a source without them yields nothing.
- Rows the source cannot even read as a record (malformed JSON, a document of the wrong
  shape) are yielded as ``Reject`` in the stream where they occur (every iterator may
  yield them), or answered by ``rejects()`` after the other iterators are exhausted.
  The importer writes them to the rejects file next to its own.

Every iterator streams: a source must not hold its whole input in memory.

Timestamps (``*_at_ms``) may be given in any form ``searchtrail.timestamps.to_epoch_ms``
accepts (epoch seconds, epoch milliseconds, ISO 8601 text); the importer normalizes them
to epoch milliseconds. No time window applies: history is what an import is for.

``file`` and ``line`` say where the row came from (line 1 is the first; for a source
that is not line-oriented, the position of the document in its file) and ``raw`` is
the row as read, written to the rejects file when the row is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BatchRecord",
    "EventRecord",
    "ImportOptions",
    "ImportSource",
    "KeyRecord",
    "QueueRecord",
    "Reject",
    "SessionRecord",
    "SourceFactory",
]


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch. ``batch_id`` is set only by a source that keeps ids (the own dump)."""

    key: str | int
    state: Any  # one of models.BatchStateName
    release_id: Any = None
    created_at_ms: Any = None  # None: the earliest session's time, else the import's time
    released_at_ms: Any = None
    updated_at_ms: Any = None  # None: created_at_ms
    batch_id: int | None = None
    file: str = ""
    line: int = 0
    raw: Any = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A registered session.

    ``search_results`` is a list of dicts with the keys of ``models.SearchResultItem``
    (object_id, rank, meta; and extra where the model has it). ``batch_key`` names a
    ``BatchRecord.key`` of the same source (None: the target's collecting batch).
    ``session_number`` is set only by a source that keeps ids (the own dump).
    ``extra``: source fields searchtrail has no column for, kept as a JSON object.
    """

    session_id: Any
    batch_key: str | int | None
    search_query: Any = None
    search_results: Any = ()
    search_meta: Any = None
    payload_filter: Any = None
    sort_by: Any = None
    user_id: Any = None
    created_at_ms: Any = None
    created_at_given: bool = True
    is_irrelevant: Any = False
    registered_at_ms: Any = None  # None: created_at_ms
    extra: Any = None
    session_number: int | None = None
    file: str = ""
    line: int = 0
    raw: Any = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event of the session ``session_id``.

    ``event_id`` None: derived from the event's content, as the API does. ``id`` (the
    events table's own key) is set only by a source that keeps ids (the own dump).
    """

    event_id: Any
    event_type: Any = "click"
    object_id: Any = None
    created_at_ms: Any = None
    meta: Any = None
    extra: Any = None
    session_id: Any = None
    id: int | None = None
    file: str = ""
    line: int = 0
    raw: Any = None


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """An improvement-queue entry; ``entry_id`` is set only by a source that keeps ids."""

    session_id: Any
    state: Any  # one of models.QueueState
    attempts: Any = 0
    enqueued_at_ms: Any = None
    claimed_at_ms: Any = None
    claimed_by: Any = None
    finished_at_ms: Any = None
    error: Any = None
    entry_id: int | None = None
    file: str = ""
    line: int = 0
    raw: Any = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key: its hash only (keys never exist in clear in a database)."""

    name: Any
    prefix: Any
    key_hash: Any
    scopes: Any
    created_at_ms: Any = None
    revoked_at_ms: Any = None
    key_id: int | None = None
    file: str = ""
    line: int = 0
    raw: Any = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A row not imported: where it came from, why (naming the field), and the row as read."""

    source: str
    line: int
    reason: str
    raw: Any

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason, "raw": self.raw}


@runtime_checkable
class ImportSource(Protocol):
    """What the importer reads. It calls the iterators once each, in this order."""

    name: str  # the --format name, e.g. "searchtrail", "embedding-studio"

    def batches(self) -> Iterator[BatchRecord | Reject]: ...

    def sessions(self) -> Iterator[SessionRecord | Reject]: ...

    def events(self) -> Iterator[EventRecord | Reject]: ...

    def queue(self) -> Iterator[QueueRecord | Reject]: ...

    def keys(self) -> Iterator[KeyRecord | Reject]: ...

    def rejects(self) -> Iterator[Reject]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ImportOptions:
    """What a source factory is told: ``json_array`` means the input files are JSON arrays
    (``mongoexport --jsonArray``) rather than one document per line."""

    json_array: bool = False


class SourceFactory(Protocol):
    """The hook a format plugs in through: open ``path`` (a directory or file) as a source.

    The Embedding Studio source is ``transfer.embedding_studio.open_source`` with this
    signature; ``transfer.open_source(path, format, options)`` dispatches by format name.
    """

    def __call__(self, path: Path, options: ImportOptions) -> ImportSource: ...
