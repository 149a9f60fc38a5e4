"""The storage protocols: what the service asks of storage, one protocol per aggregate.

The service (``service``, ``keys``, ``export``, ``transfer``, ``http``, ``cli``) talks
to a ``Storage`` and its parts only, opened by ``searchtrail.storage.open_storage``;
``searchtrail.storage.sql`` is the one backend. Nothing here knows SQL: a second backend
(a columnar store for metrics, say) implements the protocols it serves, and
docs/architecture.md says which those are.

Every write a method makes is committed before it returns: an answer is a durable fact.
Errors are ``searchtrail.errors``' (``SessionNotFound``, ``Unavailable`` for a database
that is locked or unreachable, ...), never a driver's.

``BatchState`` and ``QueueState`` are the one vocabulary of batch and queue states:
``models``' ``BatchStateName`` and ``QueueStateName`` are checked against them
(tests/test_architecture.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from searchtrail.keyinfo import ApiKeyInfo
from searchtrail.limits import DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_SESSION_EVENTS_LIMIT
from searchtrail.metrics.definitions import Counts
from searchtrail.models import (
    BatchInfo,
    BatchSessionsPage,
    JsonObject,
    QueueCounts,
    QueueEntry,
    ReleaseResult,
    Session,
)
from searchtrail.storage.privacy import Privacy, PruneResult, Removed, UserRecord

__all__ = [
    "ApiKeys",
    "BatchSizes",
    "BatchState",
    "Batches",
    "ClickRow",
    "DumpPage",
    "EventRow",
    "Health",
    "ImportWriter",
    "ImprovementQueue",
    "Metrics",
    "MetricsScope",
    "Outcome",
    "Privacy",
    "PruneResult",
    "QueueState",
    "Reads",
    "Registration",
    "Removed",
    "RowPage",
    "SessionActions",
    "SessionRow",
    "Sessions",
    "Storage",
    "StorageOptions",
    "Transfer",
    "UserRecord",
]

T = TypeVar("T")


class BatchState(StrEnum):
    COLLECTING = "collecting"
    RELEASED = "released"
    FINE_TUNING = "fine_tuning"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"


class QueueState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


# -- row types ----------------------------------------------------------------------

# A pushed event, checked and filled: event_id, object_id, event_type, created_at_ms, meta,
# extra (the keys the contract does not name). A tuple: under ``serve`` it is pickled to
# the writer process, and a tuple pickles in about half the time of a dict.
EventRow = tuple[str, str | None, str, int, JsonObject | None, JsonObject | None]

# A registration's row: the sessions columns a client decides (session_id, search_query,
# search_results, search_meta, payload_filter, sort_by, user_id, created_at_ms,
# created_at_given, is_irrelevant, extra), as plain values.
SessionRow = dict[str, Any]

# A registration's outcome: the stored session, whether this call created it, and whether
# its created_at was given by a client (a replay is judged on that).
Registration = tuple[Session, bool, bool]

# A dump's page of one table: ``page(table, after, limit)``, the rows (every column) whose
# primary key is larger than ``after``, in key order.
DumpPage = Callable[[Any, int, int], list[dict[str, Any]]]
# A page of rows, every column, as a dump reads them.
RowPage = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SessionActions:
    """What training data needs of a session: what was shown and what was done to it.

    ``actions`` holds each distinct ``(object_id, event_type)`` once, so a session's
    size here is bounded by its results, not by how many events it collected.
    """

    session_number: int
    session_id: str
    user_id: str | None
    created_at_ms: int
    search_query: Any
    result_ids: list[str]
    is_irrelevant: bool
    events: int
    actions: list[tuple[str | None, str]]


@dataclass(frozen=True, slots=True)
class ClickRow:
    """What a click model needs of a session: what it showed, in order, and what was
    clicked (the objects of its events of the click types)."""

    session_number: int
    created_at_ms: int
    search_query: Any
    result_ids: list[str]
    clicked: set[str]


@dataclass(frozen=True, slots=True)
class BatchSizes:
    """Batches by state, and the sessions the collecting batch holds so far."""

    batches: dict[str, int]
    collecting_sessions: int


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How to open a storage (``open_storage``); the service derives it from its settings.

    ``writer_process``: commit the event loop's registrations and pushes in a process of
    their own (``searchtrail serve``). ``max_events_per_session``: the cap a push is
    checked against, by whichever process commits it.
    """

    url: str
    busy_timeout_ms: int = 30_000
    synchronous: str = "FULL"
    pool_size: int = 10
    writer_process: bool = False
    max_events_per_session: int = DEFAULT_MAX_EVENTS_PER_SESSION


# -- the aggregates -------------------------------------------------------------------


class Sessions(Protocol):
    """Sessions and their events: the hot path. ``*_async`` are for the event loop."""

    def register(self, row: SessionRow, now: int) -> Registration:
        """Insert a session into the collecting batch unless its id exists."""

    async def register_async(self, row: SessionRow, now: int) -> Registration: ...

    def get(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session:
        """A session with at most ``events_limit`` of its events after ``after``
        (``(created_at_ms, id)``, as an ``events_cursor`` encodes it), in keyset order."""

    async def get_async(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session: ...

    def push(self, session_id: str, rows: Sequence[EventRow]) -> tuple[int, int]:
        """Store a push whole or not at all: (stored, duplicates)."""

    async def push_async(self, session_id: str, rows: Sequence[EventRow]) -> tuple[int, int]: ...

    def mark_irrelevant(self, session_id: str) -> None: ...

    def bulk_register(
        self, rows: Sequence[SessionRow], event_rows: Sequence[dict[str, Any]], now: int
    ) -> None:
        """Load sessions and their events (each naming its ``session_id``) unchecked, in
        one transaction: for fixtures, benchmarks and data already clean."""


class Batches(Protocol):
    def release(self, release_id: str, now: int) -> ReleaseResult:
        """Close the collecting batch under ``release_id``; the same key answers the same
        batch. No session lands in a batch after its release was answered."""

    def set_state(
        self, batch_id: int, state: BatchState | str, check: Callable[[str], None], now: int
    ) -> BatchInfo:
        """Move a batch to ``state``; ``check(current)`` raises if the move is not allowed."""

    def get(self, batch_id: int) -> BatchInfo: ...

    def list(self, state: str | None = None) -> builtins.list[BatchInfo]: ...

    def sessions_page(
        self, batch_id: int, after_number: int, limit: int, events_limit: int | None
    ) -> BatchSessionsPage:
        """A keyset page of a batch's sessions after ``after_number``, with their events."""

    def sizes(self) -> BatchSizes:
        """Counts cheap enough to read on every scrape of /metrics: no scan of events."""


class ImprovementQueue(Protocol):
    def enqueue(self, session_id: str, now: int, lease_ms: int) -> QueueEntry:
        """Queue a session once: while an entry is pending or claimed, answer that one."""

    def claim(
        self, worker: str | None, limit: int, now: int, lease_ms: int, max_attempts: int
    ) -> list[QueueEntry]:
        """Hand out up to ``limit`` entries, oldest first, each to one claimer only."""

    def finish(
        self,
        entry_id: int,
        attempt: int,
        state: QueueState | str,
        error: str | None,
        now: int,
        lease_ms: int,
    ) -> QueueEntry:
        """Acknowledge a claim as done or failed; the same acknowledgement again is a no-op."""

    def counts(self) -> QueueCounts: ...


class ApiKeys(Protocol):
    def create(
        self, *, name: str, prefix: str, key_hash: str, scopes: str, now: int
    ) -> ApiKeyInfo: ...

    def by_prefix(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key's record and stored hash, for the caller to compare in constant time."""

    def exist(self) -> bool: ...

    def list(self) -> builtins.list[ApiKeyInfo]: ...

    def revoke(self, key: int | str, now: int) -> ApiKeyInfo:
        """Revoke by key_id or prefix; a revoked key keeps its first revocation."""


class Reads(Protocol):
    """The read side that training data (and metrics) use: scans of a batch."""

    def session_actions(self, batch_id: int, after_number: int, limit: int) -> list[SessionActions]:
        """A keyset page of a batch's sessions, their events grouped by (object, type)."""

    def created_at_quantile(self, batch_id: int, fraction: float) -> int | None:
        """The ``created_at_ms`` below which ``fraction`` of the batch's relevant sessions
        with events lie; ``None`` when none is at or above it."""

    def click_rows(
        self, scope: MetricsScope, click_types: Sequence[str], after_number: int, limit: int
    ) -> builtins.list[ClickRow]:
        """A keyset page (``session_number`` after ``after_number``) of the sessions of
        ``scope``: shown results in order and the clicked objects, for click models."""


@dataclass(frozen=True, slots=True)
class MetricsScope:
    """Which sessions a metric is over: ``created_at`` in ``[since_ms, until_ms)``,
    irrelevant ones left out unless included, optionally one ranker, query key or batch."""

    since_ms: int | None = None
    until_ms: int | None = None
    include_irrelevant: bool = False
    ranker: str | None = None
    query: str | None = None
    batch_id: int | None = None


# How many sessions of a ranker had one outcome: (results shown, the first position
# interacted with or None, purchased, count).
Outcome = tuple[bool, int | None, bool, int]


class Metrics(Protocol):
    """Search-quality metrics' reads over per-session stats (metrics/definitions.py)."""

    def refresh(self, ranker_key: str, team_key: str, limit: int | None = None) -> int:
        """Recompute the stats of sessions changed since (at most ``limit``): how many."""

    def stale(self) -> int:
        """How many sessions' stats wait for a refresh."""

    def counts(self, scope: MetricsScope, by: str | None) -> builtins.list[tuple[Any, Counts]]:
        """The sums of every metric over ``scope``, by group key (``day``, ``hour``: the
        number of whole days or hours since the epoch; ``query``; ``ranker``; ``batch``;
        ``None``: one group), in key order."""

    def top_queries(self, scope: MetricsScope, order: str, limit: int) -> builtins.list[str]:
        """Query keys by most ``sessions``, ``zero_results`` or ``no_interaction``."""

    def outcomes(
        self, scope: MetricsScope, rankers: Sequence[str]
    ) -> dict[str, builtins.list[Outcome]]: ...

    def teams(self, scope: MetricsScope) -> builtins.list[dict[str, int]]:
        """Interleaved sessions: interactions by the results' team, one dict each."""

    def session_ids(self, scope: MetricsScope, limit: int) -> builtins.list[str]:
        """The newest sessions of ``scope``, newest first."""


class ImportWriter(Protocol):
    """What one import chunk may do in its transaction (``Transfer.import_transaction``).
    Tables are the backend's (``searchtrail.storage.sql.schema``)."""

    def insert(
        self, table: Any, rows: Sequence[dict[str, Any]], returning: tuple[str, ...]
    ) -> set[tuple[Any, ...]]: ...

    def rows_where(
        self, table: Any, column_name: str, values: Sequence[Any]
    ) -> list[dict[str, Any]]: ...

    def insert_new(self, table: Any, rows: Sequence[dict[str, Any]]) -> bool:
        """Insert the rows if none of their unique keys is taken (True); else store none
        of them (False) and leave the transaction as it was."""

    def insert_new_tuples(
        self, table: Any, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> bool:
        """``insert_new`` of rows given as tuples of ``columns``' values (in the table's
        column order; every row gives every column)."""

    def session_numbers(
        self, session_ids: Sequence[str], near: Sequence[Any] = ()
    ) -> dict[str, int]: ...

    def collecting_batch(self) -> int | None: ...

    def open_collecting(self, now: int) -> int: ...

    def batch_without_id(
        self, release_id: str | None, created_at_ms: int, state: str
    ) -> int | None: ...

    def reset_sequence(self, table: Any) -> None: ...


class Transfer(Protocol):
    """Whole-database dump and import."""

    def dump_reader(self) -> AbstractContextManager[DumpPage]:
        """Pages of whole tables, all from one snapshot (no event without its session)."""

    def rows_by_time(
        self, table: Any, low: int, high: int
    ) -> AbstractContextManager[Iterator[RowPage]]:
        """Pages of the rows of sessions or events keyed ``low`` to ``high``, in order of
        ``created_at_ms`` (then key), from one snapshot; events with their ``session_id``."""

    def settled_top(self, table: Any) -> int:
        """The largest primary key of ``table`` (0: empty) such that no row at or below
        it can commit later, even where ids commit out of order (a lake's horizon)."""

    def import_transaction(self, work: Callable[[ImportWriter], T]) -> T:
        """Run ``work`` in one committed transaction of its own; it may run again."""


class Health(Protocol):
    """What ``/health/ready`` asks of the database."""

    def write(self, process: str, now_ms: int) -> None:
        """Commit a small write of ``process``'s own, by the path every write takes."""

    async def write_async(self, process: str, now_ms: int) -> None:
        """``write`` from the event loop, by the path the loop's pushes take."""

    def free_bytes(self) -> int | None:
        """Room left on the database's disk, where this process can see it (SQLite)."""


class Storage(Protocol):
    """A database opened for the service: its aggregates and its lifecycle."""

    @property
    def sessions(self) -> Sessions: ...

    @property
    def batches(self) -> Batches: ...

    @property
    def queue(self) -> ImprovementQueue: ...

    @property
    def keys(self) -> ApiKeys: ...

    @property
    def reads(self) -> Reads: ...

    @property
    def transfer(self) -> Transfer: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def health(self) -> Health: ...

    @property
    def privacy(self) -> Privacy: ...

    @property
    def dialect(self) -> str:
        """What the database is (``sqlite``, ``postgresql``), for health checks and advice."""

    @property
    def location(self) -> str:
        """Where the data lives, credentials hidden: for summaries and logs."""

    def create_schema(self) -> None:
        """Create an empty database at the head revision; refuse one whose schema is behind."""

    def close(self) -> None:
        """Commit what was accepted, then let go of every connection and process."""

    def ping(self) -> None: ...

    def ensure_partitions(self, now_ms: int, months_ahead: int = 1) -> list[str]:
        """PostgreSQL: create the partitions of ``now_ms``'s month and the next
        ``months_ahead``, and number new sessions in ``now_ms``'s month; answers the
        partitions created. Elsewhere nothing (storage/sql/partitions.py)."""

    def drop_expired_partitions(
        self, cutoff_ms: int, *, keep_unarchived: bool, dry_run: bool
    ) -> tuple[int, int, int, int]:
        """Retention's fast part, before the row-by-row prune: drop the months whose
        sessions are all older than ``cutoff_ms`` (and, with ``keep_unarchived``, none in
        a batch not archived); answers (partitions, sessions, events, queue entries)."""

    def start_writer_process(self) -> None:
        """Start the writer process, if there is one, and wait until it is ready."""

    def reads_on_loop(self) -> AbstractAsyncContextManager[None]:
        """While open, the running event loop may read on itself (the app's lifespan)."""

    def count(self, table_name: str) -> int: ...
