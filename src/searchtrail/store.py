"""The store: the only code that speaks SQL.

One class over SQLAlchemy Core serves SQLite and PostgreSQL with the same statements;
the few dialect differences (the upsert spelling, SQLite's connection pragmas and its
``BEGIN IMMEDIATE``) are set up once in ``_make_engine`` and ``_insert``.

Every write runs in one transaction that is committed before the method returns, so a
caller that got an answer holds a durable fact. On SQLite, writers take the database
lock up front (``BEGIN IMMEDIATE``) on one kept connection, and two processes wait on
each other through the busy timeout instead of failing on a lock upgrade. On both
dialects a process's writes go through one group commit (``groupcommit.py``): all
writes have one owner, and writes that arrive together share a transaction. The HTTP
service awaits its writes (``create_session_async``, ``insert_events_async``): the
group commit's writer thread runs them, or under ``searchtrail serve`` a writer process
(``writerprocess.py``) with a group commit of its own and a GIL of its own. Its hot read
(``get_session_async``) runs on the event loop itself (``loopreads.py``): on SQLite
within a budget of work, on PostgreSQL through async connections while the app runs;
otherwise in the store's own few reader threads (``_read_async``).

The hot paths (a push, a registration, a get) run statements built once; a push's rows
go straight to the driver, because SQLAlchemy's per-row parameter processing cost more
than SQLite's storing of the rows: as one multi-row ``VALUES`` on SQLite (``_DriverMany``),
as one JSON document on PostgreSQL (``_JsonRowsInsert``). A get is one statement.

On PostgreSQL (psycopg 3, a pool of ``pool_size`` connections plus as many overflow,
READ COMMITTED) the writers of several processes run side by side, and batch numbering
updates no counter row:

- ``session_number`` comes from the table's identity sequence; ``nextval`` takes no
  row lock and is not rolled back, so numbers are unique and increasing, with gaps.
- A registration takes the *batch gate* shared (``pg_advisory_xact_lock_shared``),
  once per group (per savepoint when a group runs in savepoints), and inserts its
  session with an ``INSERT ... SELECT`` of the collecting batch; the group holds the
  gate until it commits. Shared holders never wait for each other
  (tests/test_postgres.py holds one open and registers another).
- A release takes the gate exclusive, in a transaction of its own outside the group
  (inside a group that holds it shared, two releases would wait for each other): it
  waits for the registrations in flight, and
  the lock manager queues later registrations behind it, so a release is not starved.
  Registrations that pass after it commits find no collecting batch and open the next
  one (a unique ``collecting`` value lets one insert it; the others' ``ON CONFLICT DO
  NOTHING`` waits for that insert, then they read it). So a session never lands in a
  batch whose release was answered.
- Nothing else takes the gate. A group may hold row locks when its first registration
  asks for the gate behind a queued release; if the release waits for a registration
  that waits for those rows, PostgreSQL's deadlock check lets the queued registration
  pass the release, after ``deadlock_timeout``. Two processes' groups inserting the
  same unique keys in crossed order (the same events or sessions sent to two processes
  at the same instant) do deadlock: PostgreSQL aborts one statement, and the group
  commit rolls that whole group back, giving back its locks, and runs it again; a
  release retries too.
- Two registrations of one ``session_id`` race on its unique index: the loser's
  ``ON CONFLICT DO NOTHING`` waits for the winner's commit and inserts nothing, and the
  loser answers the winner's row. (Where a batch had to be opened first, the plain insert
  that follows raises ``IntegrityError`` instead, and the group commit runs it again.)

Why a gate rather than share-locking the collecting batch row (``FOR SHARE``, the
first design): both let registrations run together, and pgbench measured them alike
(about 2,000 to 3,000 registrations a second at 1, 4 and 16 clients on a 2-core test
server, far above what one service process sends). But PostgreSQL's row locks are not
fair: share lockers keep overtaking a queued ``FOR UPDATE``, so under steady traffic a
release could wait indefinitely; the lock manager queues them behind it. The
``sessions.batch_id`` foreign key still locks that row ``FOR KEY SHARE`` on each
insert; that lock does not conflict with anything a registration or release takes
while the gate is held.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

import pydantic_core
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Engine,
    Integer,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    column,
    create_engine,
    event,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from searchtrail.errors import (
    BatchNotFound,
    Conflict,
    NoCollectingBatch,
    NotFound,
    QueueEntryNotFound,
    SessionFull,
    SessionNotFound,
    Unavailable,
)
from searchtrail.groupcommit import GroupCommit, GroupCommitClosed
from searchtrail.keys import ApiKeyInfo, scopes_of
from searchtrail.limits import DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_SESSION_EVENTS_LIMIT
from searchtrail.loopreads import PgLoopReader, Rows, SqliteLoopReader
from searchtrail.models import (
    INT64_MAX,
    INT64_MIN,
    BatchInfo,
    BatchSessionsPage,
    JsonObject,
    QueueCounts,
    QueueEntry,
    ReleaseResult,
    Session,
    StoredEvent,
    encode_events_cursor,
)
from searchtrail.schema import api_keys, batches, events, improvement_queue, metadata, sessions
from searchtrail.writerprocess import WriterProcess

__all__ = [
    "DB_OUTAGES",
    "BatchState",
    "EventRow",
    "ImportWriter",
    "QueueState",
    "SessionActions",
    "Store",
    "normalize_database_url",
    "unavailable",
    "unavailable_on_db_outage",
]

T = TypeVar("T")

# A pushed event, checked and filled: event_id, object_id, event_type, created_at_ms, meta,
# extra (the keys the contract does not name).
EventRow = tuple[str, str | None, str, int, JsonObject | None, JsonObject | None]

# pg_advisory_xact_lock key of the batch gate; the schema lock in migrate.py is another.
_BATCH_GATE_KEY = 0x5EA2C4BA7C
# Connection.info key: the transaction or savepoint that took the gate shared.
_GATE_HOLDER = "searchtrail_gate_holder"


class BatchState:
    COLLECTING = "collecting"
    RELEASED = "released"
    FINE_TUNING = "fine_tuning"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"
    ALL = (COLLECTING, RELEASED, FINE_TUNING, ARCHIVING, ARCHIVED)


class QueueState:
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    ALL = (PENDING, CLAIMED, DONE, FAILED)


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


def normalize_database_url(url: str) -> str:
    """Let operators write ``postgresql://`` and still get psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _json_dumps(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _json_or_none(value: Any) -> str | None:
    return None if value is None else _json_dumps(value)


def _event_fields(cols: Any) -> list[Any]:
    """An event's answered fields, in the order ``_stored_event`` reads them: the last
    columns of every query that reads events (of ``events`` or of a subquery of it)."""
    return [
        cols.event_id,
        cols.object_id,
        cols.event_type,
        cols.created_at_ms.label("event_created_at_ms"),  # a session has a created_at_ms too
        cols.meta,
        cols.extra.label("event_extra"),  # a session has an extra too
    ]


_EVENT_FIELDS = _event_fields(events.c)
# In a get's rows: the event's id (its keyset tiebreak), then _EVENT_FIELDS.
_ROW_ID = -len(_EVENT_FIELDS) - 1
_EVENT_CREATED_AT = [c.key for c in _EVENT_FIELDS].index("event_created_at_ms") - len(_EVENT_FIELDS)


def _events_page(
    found: Sequence[Sequence[Any]], limit: int | None
) -> tuple[list[StoredEvent], str | None]:
    """A page of one session's event rows (its id, then ``_EVENT_FIELDS``, last), read in
    keyset order up to one past ``limit``: the events answered and the cursor to the rest."""
    if limit is None or len(found) <= limit:
        return [_stored_event(r) for r in found], None
    answered = found[:limit]
    # After the last event answered; with none answered (limit 0), just before the first
    # event left: ids are integers, so no event sorts between that position and it.
    last = answered[-1] if answered else found[0]
    tiebreak = last[_ROW_ID] if answered else last[_ROW_ID] - 1
    cursor = encode_events_cursor(last[_EVENT_CREATED_AT], tiebreak)
    return [_stored_event(r) for r in answered], cursor


def _get_params(
    session_id: str, events_limit: int, after: tuple[int, int] | None
) -> dict[str, Any]:
    """A get's parameters; no ``after`` reads from before any event (ids are positive)."""
    after_ms, after_id = (INT64_MIN, 0) if after is None else after
    return {
        "session_id": session_id,
        "after_ms": after_ms,
        "after_id": after_id,
        "rows_limit": events_limit + 1,
    }


# A session's JSON columns, which a get reads as text: the join repeats them on every
# event's row, and the driver would otherwise decode them once per row.
_SESSION_JSON = (
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "extra",
)


def _stored_event(r: Sequence[Any]) -> StoredEvent:
    event_id, object_id, event_type, created_at_ms, meta, extra = r[-len(_EVENT_FIELDS) :]
    return StoredEvent(
        event_id=event_id,
        object_id=object_id,
        event_type=event_type,
        created_at=created_at_ms // 1000,
        created_at_ms=created_at_ms,
        meta=meta,
        extra=extra,
    )


class _DriverMany:
    """A many-row INSERT compiled from Core once and handed straight to the driver.

    Why: for a many-row write, SQLAlchemy processes every row's parameters in Python
    (``construct_params`` and the type processors); for a 100-event push that cost more
    than SQLite spent storing the rows. The statement is still built from schema.py; the
    rows handed to ``execute`` must already hold the column values (JSON as text).

    SQLite's (qmark, positional): the rows go as one multi-row ``VALUES`` statement per
    chunk, compiled once per row count. ``executemany`` steps the statement once per row,
    and the sqlite3 module releases the GIL around every step: with the event loop busy
    in another thread, each row then waited for the GIL, and a 100-row push took many
    times its CPU. PostgreSQL has ``_JsonRowsInsert``.
    """

    def __init__(
        self, statement: Any, dialect: Any, columns: Sequence[str], chunk: int = 100
    ) -> None:
        self._statement = statement
        self._dialect = dialect
        self._columns = list(columns)
        self._chunk = chunk
        compiled = statement.compile(
            dialect=dialect, column_keys=self._columns, for_executemany=True
        )
        self._order: list[str] = list(compiled.positiontup or [])
        if not self._order:
            raise ValueError("a positional paramstyle was expected (SQLite's)")
        # Positional paramstyles take tuples, in the statement's column order.
        self._values = itemgetter(*self._order)
        self._multi_sql: dict[int, str] = {}

    def _sql_for(self, n: int) -> str:
        """The statement inserting ``n`` rows, parameters row by row (as ``execute`` flattens)."""
        sql = self._multi_sql.get(n)
        if sql is None:
            rows: list[dict[str, Any]] = [
                {c: bindparam(f"{c}_{i}") for c in self._columns} for i in range(n)
            ]
            compiled = self._statement.values(rows).compile(dialect=self._dialect)
            expected = [f"{c}_{i}" for i in range(n) for c in self._order]
            if list(compiled.positiontup or []) != expected:
                raise AssertionError("a multi-row INSERT's parameters are not row by row")
            sql = self._multi_sql[n] = str(compiled)
        return sql

    def fetch(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert the rows with a statement that has a RETURNING clause: what it returned."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), self._chunk):
            part = rows[start : start + self._chunk]
            flat = tuple(chain.from_iterable(map(self._values, part)))
            out.extend(map(tuple, conn.exec_driver_sql(self._sql_for(len(part)), flat)))
        return out

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows; answers how many the database inserted."""
        stored = 0
        for start in range(0, len(rows), self._chunk):
            part = rows[start : start + self._chunk]
            flat = tuple(chain.from_iterable(map(self._values, part)))
            stored += conn.exec_driver_sql(self._sql_for(len(part)), flat).rowcount
        return stored


def _unbounded(t: Any) -> Any:
    return Text() if isinstance(t, String) else t


def _event_params(number: int, rows: Sequence[EventRow]) -> list[dict[str, Any]]:
    """A push's rows as ``_DriverMany`` takes them: one dict per row, JSON as text."""
    return [
        {
            "session_number": number,
            "event_id": event_id,
            "object_id": object_id,
            "event_type": event_type,
            "created_at_ms": created_at_ms,
            "meta": _json_or_none(meta),
            "extra": _json_or_none(extra),
        }
        for event_id, object_id, event_type, created_at_ms, meta, extra in rows
    ]


class _JsonRowsInsert:
    """PostgreSQL's insert of a push: one statement, its rows sent as one JSON document.

    Why: ``executemany`` pipelines one INSERT per row, which the server runs a hundred
    times for a 100-event push. One array per column (``unnest``) made it one statement,
    but psycopg dumps those arrays in Python: 1.9 to 2.1 ms of client CPU per 100-row
    push, against 1.0 ms for one JSON document that ``jsonb_to_recordset`` takes apart
    in the server, for about the same server CPU. Each row carries its position, so the
    rows are inserted, and numbered, in the push's order.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], conflict: Sequence[str], dialect: Any
    ) -> None:
        self._columns = list(columns)
        # Strings as text: a cast to varchar(n) would cut an over-long value silently.
        rows = (
            func.jsonb_to_recordset(bindparam("rows", type_=postgresql.JSONB))
            .table_valued(
                *(column(c, _unbounded(table.c[c].type)) for c in columns),
                column("position", Integer),
            )
            .render_derived(with_types=True)
        )
        number = bindparam("session_number", type_=table.c.session_number.type)
        statement = (
            postgresql.insert(table)
            .from_select(
                ["session_number", *self._columns],
                select(number, *(rows.c[c] for c in columns)).order_by(rows.c.position),
            )
            .on_conflict_do_nothing(index_elements=list(conflict))
        )
        self.sql = str(statement.compile(dialect=dialect))

    def execute(self, conn: Connection, number: int, rows: Sequence[EventRow]) -> int:
        """Insert the rows; answers how many the database inserted."""
        document = [
            dict(zip(self._columns, row, strict=True), position=i) for i, row in enumerate(rows)
        ]
        params = {"session_number": number, "rows": _json_dumps(document)}
        return int(conn.exec_driver_sql(self.sql, params).rowcount)


SQLITE_POOL_SIZE = 40
# A SQLite read is CPU work under the GIL: threads beyond two only take turns on it. At 16
# connections a get ran at about 330/s in anyio's 40 threads and 640/s in one or two.
SQLITE_READ_THREADS = 2
# How long a PostgreSQL get on the event loop waits for a connection of its pool: while
# the server is down, how long it takes to answer 503 (psycopg's pool keeps reconnecting
# in the background and does not fail a waiting request sooner).
PG_READ_WAIT_S = 5.0
# PostgreSQL: a pooled connection unused for longer than this is pinged before it is handed
# out, since a server restart ends every connection. In steady use none is pinged: the
# request that finds a broken one is a 503, and the pool then replaces every connection
# made before it. A ping at every checkout (pool_pre_ping) cost a round trip per request,
# 0.35 ms of a 1.9 ms get.
PG_PING_IDLE_AFTER_S = 1.0


def _total_changes(conn: Connection) -> int:
    """Rows SQLite's connection has inserted, updated or deleted since it opened."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


def _pg_changes(conn: Connection) -> int:
    """Rows this PostgreSQL connection has inserted, updated or deleted (``_count_changes``)."""
    return int(conn.info.get(_PG_CHANGES, 0))


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def _pg_statement_failure(exc: BaseException) -> bool:
    """PostgreSQL refused one statement (a lock timeout, a cancelled query, a deadlock) and
    the connection is fine: a savepoint undoes that statement alone."""
    if getattr(exc, "connection_invalidated", False):
        return False
    state = _sqlstate(exc)
    return state is not None and not state.startswith(_PG_CONNECTION_STATES)


def _pg_conflict(exc: BaseException) -> bool:
    """PostgreSQL ended the transaction to break a deadlock or a serialization conflict."""
    return _sqlstate(exc) in _PG_RETRY_STATES


# connection_exception, and the server shutting down or starting
_PG_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
# deadlock_detected, serialization_failure
_PG_RETRY_STATES = ("40P01", "40001")
_PG_CHANGES = "searchtrail_changes"
_WRITE_LOCK_POLL_S = 0.0005
_CHANGING = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _while_locked(statement: Callable[[], object], timeout_s: float, pause_s: float) -> None:
    """Run ``statement`` again every ``pause_s`` while SQLite answers "database is locked",
    for up to ``timeout_s``; then, or on any other error, raise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause_s)


def _enter_wal(cur: Any, timeout_s: float) -> None:
    """Switch a SQLite connection to WAL, waiting out other connections that switch too.

    On a new file, connections that switch at the same instant can be refused with
    "database is locked" at once, without SQLite's busy handler waiting: 2 of 360 opens
    in tests/test_migrations.py's six processes opening one empty database.
    """
    _while_locked(partial(cur.execute, "PRAGMA journal_mode=WAL"), timeout_s, 0.005)


def _begin_write(conn: Connection, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE on the group commit's connection, trying again every 0.5 ms while
    another process holds the write lock.

    SQLite's busy handler sleeps 1, 2, 5, 10 and so on up to 100 ms between tries, so a
    writer often slept on long after the lock was free: with two ``serve`` workers, whose
    writer processes take turns, create p99 was 380 to 665 ms, and 27 to 79 ms after.
    Only taking the lock waits here; the transaction's statements keep the busy timeout.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA busy_timeout=0")
    try:
        begin = partial(driver.execute, "BEGIN IMMEDIATE")
        _while_locked(begin, busy_timeout_ms / 1000, _WRITE_LOCK_POLL_S)
    except sqlite3.OperationalError:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # once more, to raise SQLAlchemy's error
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def _make_engine(
    url: str, *, busy_timeout_ms: int, synchronous: str, pool_size: int, writer: bool = False
) -> Engine:
    """An engine; on SQLite ``writer`` makes the one-connection engine of the group commit."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url,
            # Readers: one kept connection per request thread (anyio's pool has 40), so
            # none is opened and closed per request; LIFO, so a light load keeps reusing
            # the connection whose page cache is warm. The writer: always the same one.
            pool_size=1 if writer else max(pool_size, SQLITE_POOL_SIZE),
            max_overflow=0 if writer else pool_size,
            pool_use_lifo=True,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            json_serializer=_json_dumps,
            json_deserializer=pydantic_core.from_json,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Transactions are begun by hand below, so pysqlite must not begin its own.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            _enter_wal(cur, busy_timeout_ms / 1000)
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if not options.get("searchtrail_begin", True):
                return  # each statement commits on its own (Store._read, snapshot=False)
            if writer:
                _begin_write(conn, busy_timeout_ms)
                return
            write = options.get("searchtrail_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Like SQLite's busy timeout: a lock held too long is a 503 to retry, not a hang.
        connect_args={"options": f"-c lock_timeout={int(busy_timeout_ms)}"},
        json_serializer=_json_dumps,
        json_deserializer=pydantic_core.from_json,
    )

    @event.listens_for(engine, "after_cursor_execute")
    def _count_changes(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # The group commit's count of changed rows, which SQLite's connection keeps itself.
        # The command tag names the outer statement, WITH ... UPDATE included ("UPDATE 3");
        # a SELECT over a data-modifying CTE would go uncounted, and none is used.
        tag = (cursor.statusmessage or "").partition(" ")[0]
        if tag in _CHANGING and cursor.rowcount > 0:
            conn.info[_PG_CHANGES] = conn.info.get(_PG_CHANGES, 0) + cursor.rowcount

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PG_PING_IDLE_AFTER_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool connects anew

    return engine


# A locked or unreachable database: a 503 the client may retry, never a 500.
DB_OUTAGES = (OperationalError, InterfaceError, PoolTimeout)


def unavailable(exc: BaseException) -> Unavailable:
    """The ``Unavailable`` answered for one of ``DB_OUTAGES``."""
    cause = getattr(exc, "orig", None) or exc
    return Unavailable(f"the database is unavailable ({type(cause).__name__})")


@contextmanager
def unavailable_on_db_outage() -> Iterator[None]:
    """A locked or unreachable database is a 503 the client may retry, never a 500."""
    try:
        yield
    except DB_OUTAGES as exc:
        raise unavailable(exc) from exc


class Store:
    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "FULL",
        pool_size: int = 10,
        writer_process: bool = False,
        max_events_per_session: int = DEFAULT_MAX_EVENTS_PER_SESSION,
    ) -> None:
        self.url = url
        self.max_events_per_session = max_events_per_session
        self._pool_size = pool_size
        self.engine = _make_engine(
            url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, pool_size=pool_size
        )
        self.dialect = self.engine.dialect.name
        # Reads that need no snapshot across statements: no transaction around them.
        self._unbegun = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine.execution_options(searchtrail_begin=False)
        )
        # On SQLite every write goes through one connection, under the group commit: its
        # page cache stays warm, where a pooled connection finds its cache stale (another
        # connection wrote since) and reads the tree again from the file.
        self._writer = (
            _make_engine(
                url,
                busy_timeout_ms=busy_timeout_ms,
                synchronous=synchronous,
                pool_size=1,
                writer=True,
            )
            if self.dialect == "sqlite"
            else self.engine
        )
        self._writer_conn: Connection | None = None
        # PostgreSQL's reads wait on the network, so they get one thread per connection.
        self._readers = ThreadPoolExecutor(
            SQLITE_READ_THREADS if self.dialect == "sqlite" else pool_size,
            thread_name_prefix="searchtrail-read",
        )
        self._group = (
            GroupCommit(self._kept_write_transaction, changes=_total_changes)
            if self.dialect == "sqlite"
            else GroupCommit(
                self._write_transaction,
                changes=_pg_changes,
                contained=_pg_statement_failure,
                transient=_pg_conflict,
            )
        )
        # searchtrail serve: registrations and pushes from the event loop are committed by
        # a child process (searchtrail.writerprocess), which has a GIL of its own. On
        # PostgreSQL a thread per write took turns on the GIL after every round trip.
        self._closed = False
        self._remote = (
            WriterProcess(
                url,
                busy_timeout_ms=busy_timeout_ms,
                synchronous=synchronous,
                max_events_per_session=max_events_per_session,
            )
            if writer_process
            else None
        )
        key = ["session_number", "event_id"]
        # An EventRow's fields, in its order.
        fields = ["event_id", "object_id", "event_type", "created_at_ms", "meta", "extra"]
        self._insert_events: Callable[[Connection, int, Sequence[EventRow]], int]
        if self.dialect == "postgresql":
            self._insert_events = _JsonRowsInsert(events, fields, key, self.engine.dialect).execute
        else:
            many = _DriverMany(
                self._insert(events).on_conflict_do_nothing(index_elements=key),
                self.engine.dialect,
                ["session_number", *fields],
            )
            self._insert_events = lambda conn, number, rows: many.execute(
                conn, _event_params(number, rows)
            )
        # Statements built once: building a Core statement costs more than running it.
        self._session_by_id = select(sessions).where(
            sessions.c.session_id == bindparam("session_id")
        )
        # A push's target and the events it holds, in the one statement a push needs
        # anyway: the count bounds the push's new events from above without another
        # round trip (see _store_events).
        self._push_target = select(
            sessions.c.session_number,
            select(func.count())
            .where(events.c.session_number == sessions.c.session_number)
            .scalar_subquery()
            .label("held"),
        ).where(sessions.c.session_id == bindparam("session_id"))
        # One statement, so one round trip to PostgreSQL: one page of a session's events,
        # keyset on (created_at_ms, id). The keyset condition is in the join, not in WHERE,
        # so a session with no events left is still one row (of NULL event fields); the
        # page reads one event more than it answers, to know whether more follow.
        after = tuple_(events.c.created_at_ms, events.c.id) > tuple_(
            bindparam("after_ms", type_=BigInteger), bindparam("after_id", type_=BigInteger)
        )
        self._session_with_events = (
            select(
                *(
                    cast(c, Text).label(c.name) if c.name in _SESSION_JSON else c
                    for c in sessions.c
                ),
                events.c.id.label("event_row_id"),
                *_EVENT_FIELDS,
            )
            .outerjoin(events, and_(events.c.session_number == sessions.c.session_number, after))
            .where(sessions.c.session_id == bindparam("session_id"))
            .order_by(events.c.created_at_ms, events.c.id)
            .limit(bindparam("rows_limit", type_=Integer))
        )
        self._session_keys = list(self._session_with_events.selected_columns.keys())
        # Gets on the event loop: SQLite's always, PostgreSQL's while reads_on_loop is open.
        self._sqlite_reader = (
            SqliteLoopReader(self._unbegun, self._session_with_events)
            if self.dialect == "sqlite"
            else None
        )
        self._pg_reader: PgLoopReader | None = None
        self._import_inserts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _ImportInsert] = {}
        self._register_into = sessions.insert().returning(*sessions.c)
        given = [c for c in sessions.c if c.name not in ("session_number", "batch_id")]
        self._register_into_collecting = (
            self._insert(sessions)
            .from_select(
                [*given, sessions.c.batch_id],
                select(*(bindparam(c.name, type_=c.type) for c in given), batches.c.batch_id).where(
                    batches.c.collecting == 1
                ),
            )
            .on_conflict_do_nothing(index_elements=["session_id"])
            .returning(*sessions.c)
        )

    # -- plumbing -------------------------------------------------------------

    def create_schema(self) -> None:
        """Create an empty database at the head revision; refuse one whose schema is behind."""
        from searchtrail.migrate import ensure_schema

        with unavailable_on_db_outage():
            ensure_schema(self.engine)

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()  # what the event loop handed over is committed first
        self._group.stop()  # what the event loop queued is committed first
        with self._group.paused():  # not under a write that is still running
            # A write that queued after stop() commits nothing and is refused: the engines
            # below would open a new connection for it, which nobody would close.
            self._closed = True
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None
        self._readers.shutdown(wait=True)
        self._pg_reader = None
        if self._sqlite_reader is not None:
            self._sqlite_reader.close()
        self.engine.dispose()
        self._writer.dispose()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    async def _read_async(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a blocking read, from the event loop: in the store's reader threads."""
        try:
            read = asyncio.get_running_loop().run_in_executor(self._readers, partial(fn, *args))
        except RuntimeError as exc:  # the executor was shut down by close()
            raise Unavailable("the store is closed") from exc
        return await read

    @contextmanager
    def _read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read; ``snapshot=False`` where each statement may see a snapshot of its own.

        Such a read runs outside a transaction. On PostgreSQL that saves the BEGIN and
        ROLLBACK round trips (0.25 ms of a 1.5 ms get); on SQLite, statements that took
        15% of a get's samples.
        """
        self._refuse_if_closed()
        if not snapshot:
            with unavailable_on_db_outage(), self._unbegun.connect() as conn:
                yield conn
        else:
            with unavailable_on_db_outage(), self.engine.connect() as conn, conn.begin():
                yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        self._refuse_if_closed()
        with (
            self.engine.connect().execution_options(searchtrail_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def _kept_write_transaction(self) -> Iterator[Connection]:
        """SQLite's group commit: every transaction on one connection, kept checked out.

        Only the holder of the group commit's lock comes here (its writer thread, or a
        blocking caller committing for its group), one at a time. Checking a connection
        out and back in for each transaction cost more than a small push's SQL.
        """
        self._refuse_if_closed()
        conn = self._writer_conn
        if conn is None or conn.invalidated or conn.closed:
            conn = self._writer_conn = self._writer.connect()
        try:
            with conn.begin():
                yield conn
        except (OperationalError, InterfaceError):
            # The database failed, not the work: the next write starts on a new connection.
            self._writer_conn = None
            conn.invalidate()
            conn.close()
            raise

    def _write(self, fn: Callable[[Connection], T], *, alone: bool = False) -> T:
        """Run ``fn`` in a committed write transaction, retrying a lost uniqueness race.

        Concurrent writes are grouped into one transaction (``GroupCommit``), and ``fn``
        returns only after the group's commit. ``alone``: on PostgreSQL, a transaction of
        its own outside the group, for the release, which takes the batch gate exclusive.
        """
        with unavailable_on_db_outage():
            if alone and self.dialect == "postgresql":
                return self._group.run_alone(fn)
            return self._group.run(fn)

    async def _write_async(self, build: Callable[..., Callable[[Connection], T]], *args: Any) -> T:
        """``_write`` for the event loop, of the write ``build(*args)`` makes.

        Under ``serve`` the writer process builds and commits it (so ``build`` goes there
        by name: ``writerprocess.OPS``); otherwise the group commit's writer thread.
        """
        if self._remote is not None:
            result: T = await self._remote.run(build.__name__, *args)
            return result
        fn = build(*args)
        with unavailable_on_db_outage():
            try:
                return await self._group.run_async(fn)
            except GroupCommitClosed as exc:
                # Nothing was written; a client may retry against a store that is open.
                raise Unavailable("the store is closed") from exc

    def start_writer_process(self) -> None:
        """Start the writer process, if there is one, and wait until it is ready."""
        if self._remote is not None:
            self._remote.start()

    def run_group(
        self, fns: Sequence[Callable[[Connection], Any]]
    ) -> list[tuple[Any, BaseException | None]]:
        """The writer process's side: commit writes it received together as one group."""
        return self._group.run_group(fns)

    def _insert(self, table: Any) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` on both."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- batches ----------------------------------------------------------------

    def _batch_gate(self, conn: Connection, *, exclusive: bool) -> None:
        """Registrations pass together (shared), a release alone (exclusive); see the top.

        A PostgreSQL advisory lock, held to the end of the transaction: it lives in the
        lock manager, so registrations touch no shared row. Registrations grouped in one
        transaction take it once: a savepoint that took it and was rolled back gave it
        back, so it is remembered per savepoint. On SQLite every write already holds the
        database lock.
        """
        if self.dialect != "postgresql":
            return
        if exclusive:
            conn.execute(select(func.pg_advisory_xact_lock(_BATCH_GATE_KEY)))
            return
        holder = conn.get_nested_transaction() or conn.get_transaction()
        if conn.info.get(_GATE_HOLDER) is not holder:
            conn.execute(select(func.pg_advisory_xact_lock_shared(_BATCH_GATE_KEY)))
            conn.info[_GATE_HOLDER] = holder

    def _collecting_batch_id(self, conn: Connection, now: int) -> int:
        """The collecting batch, opened if none is; the caller holds the gate (shared).

        When another registration opened it first (our insert met its ``collecting``),
        the loop reads that one; no release can close it meanwhile, we hold the gate.
        """
        query = select(batches.c.batch_id).where(batches.c.collecting == 1)
        while True:
            batch_id = conn.execute(query).scalar()
            if batch_id is not None:
                return int(batch_id)
            opened = conn.execute(
                self._insert(batches)
                .values(
                    state=BatchState.COLLECTING,
                    collecting=1,
                    created_at_ms=now,
                    updated_at_ms=now,
                )
                .on_conflict_do_nothing()
                .returning(batches.c.batch_id)
            ).scalar()
            if opened is not None:
                return int(opened)

    def release_batch(self, release_id: str, now: int) -> ReleaseResult:
        """Close the collecting batch under ``release_id``; the same key answers the same batch.

        The release passes the batch gate alone (registrations pass it together): on
        PostgreSQL it waits for registrations in flight, so a session never lands in a
        batch after its release was answered.
        """

        def released(conn: Connection) -> ReleaseResult | None:
            row = conn.execute(select(batches).where(batches.c.release_id == release_id)).first()
            if row is None:
                return None
            return ReleaseResult(
                release_id=release_id,
                batch_id=row.batch_id,
                released_at=row.released_at_ms // 1000,
                released_at_ms=row.released_at_ms,
            )

        def work(conn: Connection) -> ReleaseResult:
            answer = released(conn)
            if answer is not None:
                return answer
            self._batch_gate(conn, exclusive=True)
            batch_id = conn.execute(
                select(batches.c.batch_id).where(batches.c.collecting == 1).with_for_update()
            ).scalar()
            if batch_id is None:
                # A concurrent release with this key may have taken the batch while we waited.
                answer = released(conn)
                if answer is not None:
                    return answer
                raise NoCollectingBatch()
            conn.execute(
                update(batches)
                .where(batches.c.batch_id == batch_id)
                .values(
                    state=BatchState.RELEASED,
                    collecting=None,
                    release_id=release_id,
                    released_at_ms=now,
                    updated_at_ms=now,
                )
            )
            return ReleaseResult(
                release_id=release_id,
                batch_id=batch_id,
                released_at=now // 1000,
                released_at_ms=now,
            )

        return self._write(work, alone=True)

    def set_batch_state(
        self, batch_id: int, state: str, check: Callable[[str], None], now: int
    ) -> BatchInfo:
        """Move a batch to ``state``; ``check(current)`` raises if the move is not allowed."""

        def work(conn: Connection) -> BatchInfo:
            current = conn.execute(
                select(batches.c.state).where(batches.c.batch_id == batch_id).with_for_update()
            ).scalar()
            if current is None:
                raise BatchNotFound(batch_id)
            check(current)
            if current != state:
                conn.execute(
                    update(batches)
                    .where(batches.c.batch_id == batch_id)
                    .values(state=state, updated_at_ms=now)
                )
            return self._batch_infos(conn, batch_id=batch_id)[0]

        return self._write(work)

    def get_batch(self, batch_id: int) -> BatchInfo:
        with self._read() as conn:
            found = self._batch_infos(conn, batch_id=batch_id)
        if not found:
            raise BatchNotFound(batch_id)
        return found[0]

    def list_batches(self, state: str | None = None) -> list[BatchInfo]:
        with self._read() as conn:
            return self._batch_infos(conn, state=state)

    def _batch_infos(
        self, conn: Connection, *, batch_id: int | None = None, state: str | None = None
    ) -> list[BatchInfo]:
        """Batches with their session and event counts, two grouped scans, no per-batch query."""
        n_sessions = select(sessions.c.batch_id, func.count().label("n")).group_by(
            sessions.c.batch_id
        )
        n_events = select(sessions.c.batch_id, func.count().label("n")).select_from(
            sessions.join(events, events.c.session_number == sessions.c.session_number)
        )
        query = select(batches)
        if batch_id is not None:
            query = query.where(batches.c.batch_id == batch_id)
            n_sessions = n_sessions.where(sessions.c.batch_id == batch_id)
            n_events = n_events.where(sessions.c.batch_id == batch_id)
        if state is not None:
            query = query.where(batches.c.state == state)
        s_sub = n_sessions.subquery()
        e_sub = n_events.group_by(sessions.c.batch_id).subquery()
        query = (
            query.add_columns(
                func.coalesce(s_sub.c.n, 0).label("n_sessions"),
                func.coalesce(e_sub.c.n, 0).label("n_events"),
            )
            .outerjoin(s_sub, s_sub.c.batch_id == batches.c.batch_id)
            .outerjoin(e_sub, e_sub.c.batch_id == batches.c.batch_id)
            .order_by(batches.c.batch_id)
        )
        return [
            BatchInfo(
                batch_id=r.batch_id,
                state=r.state,
                release_id=r.release_id,
                created_at_ms=r.created_at_ms,
                released_at_ms=r.released_at_ms,
                updated_at_ms=r.updated_at_ms,
                sessions=r.n_sessions,
                events=r.n_events,
            )
            for r in conn.execute(query)
        ]

    def _require_batch(self, conn: Connection, batch_id: int) -> None:
        found = conn.execute(select(batches.c.batch_id).where(batches.c.batch_id == batch_id))
        if found.scalar() is None:
            raise BatchNotFound(batch_id)

    def batch_sessions(
        self, batch_id: int, after_number: int, limit: int, events_limit: int | None
    ) -> BatchSessionsPage:
        """One page by keyset on ``session_number`` and its events in one more query."""
        with self._read() as conn:
            self._require_batch(conn, batch_id)
            rows = conn.execute(
                select(sessions)
                .where(sessions.c.batch_id == batch_id, sessions.c.session_number > after_number)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            numbers = [r.session_number for r in rows]
            evs = self._events(conn, numbers, events_limit)
        return BatchSessionsPage(
            batch_id=batch_id,
            last_number=numbers[-1] if numbers else None,
            sessions=[
                self._session(r, evs[r.session_number][0], events_cursor=evs[r.session_number][1])
                for r in rows
            ],
        )

    def session_actions(self, batch_id: int, after_number: int, limit: int) -> list[SessionActions]:
        """A keyset page of a batch for training data: two queries, events already grouped."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    sessions.c.session_number,
                    sessions.c.session_id,
                    sessions.c.user_id,
                    sessions.c.created_at_ms,
                    sessions.c.search_query,
                    sessions.c.search_results,
                    sessions.c.is_irrelevant,
                )
                .where(sessions.c.batch_id == batch_id, sessions.c.session_number > after_number)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            if not rows:
                return []
            grouped = conn.execute(
                select(
                    events.c.session_number,
                    events.c.object_id,
                    events.c.event_type,
                    func.count().label("n"),
                )
                .where(
                    events.c.session_number >= rows[0].session_number,
                    events.c.session_number <= rows[-1].session_number,
                )
                .group_by(events.c.session_number, events.c.object_id, events.c.event_type)
            )
            counts: dict[int, int] = {}
            actions: dict[int, list[tuple[str | None, str]]] = {}
            for g in grouped:
                counts[g.session_number] = counts.get(g.session_number, 0) + g.n
                actions.setdefault(g.session_number, []).append((g.object_id, g.event_type))
        return [
            SessionActions(
                session_number=r.session_number,
                session_id=r.session_id,
                user_id=r.user_id,
                created_at_ms=r.created_at_ms,
                search_query=r.search_query,
                result_ids=[item["object_id"] for item in r.search_results],
                is_irrelevant=bool(r.is_irrelevant),
                events=counts.get(r.session_number, 0),
                actions=actions.get(r.session_number, []),
            )
            for r in rows
        ]

    def created_at_quantile(self, batch_id: int, fraction: float) -> int | None:
        """The ``created_at_ms`` below which ``fraction`` of the batch's trainable sessions lie.

        Trainable here means relevant and with events: the sessions an export can use.
        ``None`` when no session is at or above the quantile.
        """
        has_events = exists().where(events.c.session_number == sessions.c.session_number)
        where = (sessions.c.batch_id == batch_id, sessions.c.is_irrelevant == false(), has_events)
        with self._read() as conn:
            total = conn.execute(select(func.count()).where(*where)).scalar_one()
            skip = int(total * fraction)
            if skip >= total:
                return None
            value = conn.execute(
                select(sessions.c.created_at_ms)
                .where(*where)
                .order_by(sessions.c.created_at_ms)
                .offset(skip)
                .limit(1)
            ).scalar_one()
        return int(value)

    # -- sessions ---------------------------------------------------------------

    def create_session(self, row: dict[str, Any], now: int) -> tuple[Session, bool, bool]:
        return self._as_session(self._write(self._register(row, now)))

    async def create_session_async(
        self, row: dict[str, Any], now: int
    ) -> tuple[Session, bool, bool]:
        return self._as_session(await self._write_async(self._register, row, now))

    def _register(
        self, row: dict[str, Any], now: int
    ) -> Callable[[Connection], tuple[dict[str, Any], bool, bool]]:
        """The write that inserts a session unless its id exists.

        Answers the stored row, whether this call created it, and whether its
        ``created_at`` was given by the client (a replay is judged on that). The row stays
        a plain dict: from the writer process it is pickled back, and a pydantic model
        pickles several times slower than the dict it is built from.

        The common case is one statement: insert into the collecting batch, or nothing
        when the id exists (``ON CONFLICT DO NOTHING``) or no batch collects. Only then
        does it read the stored session, or open a batch and insert again.
        """
        params = {**row, "registered_at_ms": now}

        def work(conn: Connection) -> tuple[dict[str, Any], bool, bool]:
            self._batch_gate(conn, exclusive=False)
            stored = conn.execute(self._register_into_collecting, params).first()
            if stored is None:
                existing = conn.execute(
                    self._session_by_id, {"session_id": row["session_id"]}
                ).first()
                if existing is not None:
                    return dict(existing._mapping), False, bool(existing.created_at_given)
                batch_id = self._collecting_batch_id(conn, now)
                stored = conn.execute(self._register_into, {**params, "batch_id": batch_id}).one()
            return dict(stored._mapping), True, bool(stored.created_at_given)

        return work

    def _as_session(self, outcome: tuple[dict[str, Any], bool, bool]) -> tuple[Session, bool, bool]:
        stored, created, given = outcome
        return self._session(stored, []), created, given

    def get_session(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session:
        """A session with at most ``events_limit`` of its events, those after ``after``
        (``(created_at_ms, id)``, as its ``events_cursor`` encodes it) in keyset order."""
        params = _get_params(session_id, events_limit, after)
        with self._read(snapshot=False) as conn:
            rows = conn.execute(self._session_with_events, params).all()
        return self._session_of(session_id, rows, events_limit)

    async def get_session_async(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session:
        reader = self._sqlite_reader or self._pg_reader
        if reader is not None:
            with unavailable_on_db_outage():
                rows = await reader.rows(_get_params(session_id, events_limit, after))
            if rows is not None:
                return self._session_of(session_id, rows, events_limit)
        return await self._read_async(self.get_session, session_id, events_limit, after)

    @asynccontextmanager
    async def reads_on_loop(self) -> AsyncIterator[None]:
        """While open, PostgreSQL gets from the running loop are read on it (the app's
        lifespan holds it open); SQLite's gets run on the loop without it."""
        if self.dialect != "postgresql" or self._pg_reader is not None:
            yield
            return
        sql = str(self._session_with_events.compile(dialect=self.engine.dialect))
        reader = PgLoopReader(
            normalize_database_url(self.url),
            sql,
            size=self._pool_size,
            ping_idle_after_s=PG_PING_IDLE_AFTER_S,
            wait_s=PG_READ_WAIT_S,
        )
        await reader.open()
        self._pg_reader = reader
        try:
            yield
        finally:
            if self._pg_reader is reader:
                self._pg_reader = None
            await reader.close()

    def _session_of(self, session_id: str, rows: Rows, events_limit: int) -> Session:
        """The session of a get's rows: its columns on each, then one event's (or NULLs).

        The rows hold up to ``events_limit + 1`` events; one past the limit means more
        follow, and the cursor is where the next page starts reading after.
        """
        if not rows:
            raise SessionNotFound(session_id)
        first = dict(zip(self._session_keys, rows[0], strict=True))
        for k in _SESSION_JSON:
            if first[k] is not None:
                first[k] = pydantic_core.from_json(first[k])
        event_id = -len(_EVENT_FIELDS)
        evs, cursor = _events_page([r for r in rows if r[event_id] is not None], events_limit)
        return self._session(first, evs, events_cursor=cursor)

    def mark_irrelevant(self, session_id: str) -> None:
        def work(conn: Connection) -> None:
            result = conn.execute(
                update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(is_irrelevant=True)
            )
            if result.rowcount == 0:
                raise SessionNotFound(session_id)

        self._write(work)

    # -- events -----------------------------------------------------------------

    def insert_events(self, session_id: str, rows: Sequence[EventRow]) -> tuple[int, int]:
        """Store a push in one transaction and one bulk statement: (stored, duplicates)."""
        return self._write(self._store_events(session_id, rows))

    async def insert_events_async(
        self, session_id: str, rows: Sequence[EventRow]
    ) -> tuple[int, int]:
        return await self._write_async(self._store_events, session_id, rows)

    def _store_events(
        self, session_id: str, rows: Sequence[EventRow]
    ) -> Callable[[Connection], tuple[int, int]]:
        cap = self.max_events_per_session

        def work(conn: Connection) -> tuple[int, int]:
            target = conn.execute(self._push_target, {"session_id": session_id}).first()
            if target is None:
                raise SessionNotFound(session_id)
            number, held = target
            if not rows:
                return 0, 0
            # The cap's count is exact where this transaction sees every committed push
            # to the session: on SQLite (one writer at a time) and within one process's
            # group commit. On PostgreSQL two processes' pushes to one session committing
            # at the same instant each count without the other's, and may pass it together.
            if held + len(rows) > cap:
                # Only here can the push pass the cap: count its ids the session holds
                # (duplicates are not new). It raises before writing, so nothing is stored.
                self._check_room(conn, session_id, number, held, rows, cap)
            # The database counts the rows it inserted; a conflict inserts none.
            stored = self._insert_events(conn, number, rows)
            return stored, len(rows) - stored

        return work

    @staticmethod
    def _check_room(
        conn: Connection,
        session_id: str,
        number: int,
        held: int,
        rows: Sequence[EventRow],
        cap: int,
    ) -> None:
        """Raise ``SessionFull`` if the push's new events would take the session past ``cap``."""
        ids = list({r[0] for r in rows})
        known = conn.execute(
            select(func.count()).where(
                events.c.session_number == number, events.c.event_id.in_(ids)
            )
        ).scalar_one()
        new = len(ids) - int(known)
        if held + new > cap:
            raise SessionFull(session_id, held, new, cap)

    def _events(
        self, conn: Connection, numbers: Sequence[int], limit: int | None
    ) -> dict[int, tuple[list[StoredEvent], str | None]]:
        """The events of many sessions in one query, at most ``limit`` each (oldest first),
        each with the ``events_cursor`` to the rest (``None`` when none are left out).

        ``ROW_NUMBER()`` numbers each session's events in the database, so a page of
        sessions costs one query however many events they hold. One event past the limit
        is read, to know whether more follow.
        """
        found: dict[int, list[Sequence[Any]]] = {n: [] for n in numbers}
        if numbers:
            order = (events.c.created_at_ms, events.c.id)
            if limit is None:
                query = (
                    select(events.c.session_number, events.c.id, *_EVENT_FIELDS)
                    .where(events.c.session_number.in_(numbers))
                    .order_by(events.c.session_number, *order)
                )
            else:
                position = (
                    func.row_number()
                    .over(partition_by=events.c.session_number, order_by=order)
                    .label("position")
                )
                ranked = (
                    select(events, position).where(events.c.session_number.in_(numbers)).subquery()
                )
                query = (
                    select(ranked.c.session_number, ranked.c.id, *_event_fields(ranked.c))
                    .where(ranked.c.position <= limit + 1)
                    .order_by(ranked.c.session_number, ranked.c.created_at_ms, ranked.c.id)
                )
            for r in conn.execute(query):
                found[r.session_number].append(r)
        return {n: _events_page(rows, limit) for n, rows in found.items()}

    def bulk_register(
        self, rows: Sequence[dict[str, Any]], event_rows: Sequence[dict[str, Any]], now: int
    ) -> None:
        """Load many sessions (``create_session`` rows) and their events in one transaction.

        No validation, no replay checks: for fixtures, benchmarks and imports of data that
        is already clean. Each event row names its session by ``session_id``.
        """

        def work(conn: Connection) -> None:
            if not rows:
                return
            self._batch_gate(conn, exclusive=False)
            batch_id = self._collecting_batch_id(conn, now)
            inserted = conn.execute(
                sessions.insert().returning(
                    sessions.c.session_id, sessions.c.session_number, sort_by_parameter_order=True
                ),
                [{**r, "batch_id": batch_id, "registered_at_ms": now} for r in rows],
            )
            numbers = {r.session_id: r.session_number for r in inserted}
            if event_rows:
                conn.execute(
                    events.insert(),
                    [
                        {k: v for k, v in e.items() if k != "session_id"}
                        | {"session_number": numbers[e["session_id"]]}
                        for e in event_rows
                    ],
                )

        self._write(work)

    # -- improvement queue --------------------------------------------------------

    def enqueue_improvement(self, session_id: str, now: int, lease_ms: int) -> QueueEntry:
        """Queue a session once: while an entry for it is pending or claimed, answer that one."""
        q = improvement_queue

        def work(conn: Connection) -> QueueEntry:
            # The session row is the lock that keeps two concurrent enqueues from both inserting.
            found = conn.execute(
                select(sessions.c.session_number)
                .where(sessions.c.session_id == session_id)
                .with_for_update(key_share=True)
            ).scalar()
            if found is None:
                raise SessionNotFound(session_id)
            open_entry = conn.execute(
                select(q)
                .where(
                    q.c.session_id == session_id,
                    q.c.state.in_((QueueState.PENDING, QueueState.CLAIMED)),
                )
                .order_by(q.c.entry_id)
                .limit(1)
            ).first()
            if open_entry is not None:
                return self._queue_entry(open_entry, lease_ms)
            entry_id = conn.execute(
                q.insert()
                .values(
                    session_id=session_id,
                    state=QueueState.PENDING,
                    attempts=0,
                    enqueued_at_ms=now,
                )
                .returning(q.c.entry_id)
            ).scalar_one()
            return self._queue_entry(
                conn.execute(select(q).where(q.c.entry_id == entry_id)).one(), lease_ms
            )

        return self._write(work)

    def claim_improvements(
        self, worker: str | None, limit: int, now: int, lease_ms: int, max_attempts: int
    ) -> list[QueueEntry]:
        """Hand out up to ``limit`` entries, oldest first, each to one claimer only.

        Selecting and marking happen in one write transaction (on PostgreSQL with
        ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take different rows). An entry
        whose lease expired is handed out again, unless it used up ``max_attempts``.
        """
        q = improvement_queue
        expired = and_(q.c.state == QueueState.CLAIMED, q.c.claimed_at_ms <= now - lease_ms)

        def work(conn: Connection) -> list[QueueEntry]:
            conn.execute(
                update(q)
                .where(expired, q.c.attempts >= max_attempts)
                .values(
                    state=QueueState.FAILED,
                    finished_at_ms=now,
                    error=f"lease expired on each of {max_attempts} claims",
                )
            )
            ids = (
                conn.execute(
                    select(q.c.entry_id)
                    .where(or_(q.c.state == QueueState.PENDING, expired))
                    .order_by(q.c.entry_id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                update(q)
                .where(q.c.entry_id.in_(ids))
                .values(
                    state=QueueState.CLAIMED,
                    claimed_at_ms=now,
                    claimed_by=worker,
                    attempts=q.c.attempts + 1,
                )
            )
            claimed = conn.execute(select(q).where(q.c.entry_id.in_(ids)).order_by(q.c.entry_id))
            return [self._queue_entry(r, lease_ms) for r in claimed]

        return self._write(work)

    def finish_improvement(
        self, entry_id: int, attempt: int, state: str, error: str | None, now: int, lease_ms: int
    ) -> QueueEntry:
        """Acknowledge a claim as done or failed; repeating the same acknowledgement is a no-op."""
        q = improvement_queue

        def work(conn: Connection) -> QueueEntry:
            row = conn.execute(select(q).where(q.c.entry_id == entry_id).with_for_update()).first()
            if row is None:
                raise QueueEntryNotFound(entry_id)
            if row.state == state and row.attempts == attempt:
                return self._queue_entry(row, lease_ms)
            if row.state != QueueState.CLAIMED:
                raise Conflict(
                    f"Improvement queue entry {entry_id} is {row.state}, not claimed; "
                    "only a claimed entry can be acknowledged"
                )
            if row.attempts != attempt:
                raise Conflict(
                    f"Improvement queue entry {entry_id} was claimed again (attempt "
                    f"{row.attempts}) after the lease of attempt {attempt} expired"
                )
            conn.execute(
                update(q)
                .where(q.c.entry_id == entry_id)
                .values(state=state, finished_at_ms=now, error=error)
            )
            return self._queue_entry(
                conn.execute(select(q).where(q.c.entry_id == entry_id)).one(), lease_ms
            )

        return self._write(work)

    def improvement_counts(self) -> QueueCounts:
        q = improvement_queue
        with self._read() as conn:
            rows = conn.execute(select(q.c.state, func.count().label("n")).group_by(q.c.state))
            return QueueCounts(**{r.state: r.n for r in rows if r.state in QueueState.ALL})

    @staticmethod
    def _queue_entry(row: Row[Any], lease_ms: int) -> QueueEntry:
        claimed = row.state == QueueState.CLAIMED
        return QueueEntry(
            entry_id=row.entry_id,
            session_id=row.session_id,
            state=row.state,
            attempts=row.attempts,
            enqueued_at_ms=row.enqueued_at_ms,
            claimed_at_ms=row.claimed_at_ms,
            claimed_by=row.claimed_by,
            lease_expires_at_ms=row.claimed_at_ms + lease_ms if claimed else None,
            finished_at_ms=row.finished_at_ms,
            error=row.error,
        )

    @staticmethod
    def _session(
        row: Row[Any] | Mapping[str, Any],
        evs: list[StoredEvent],
        *,
        events_cursor: str | None = None,
    ) -> Session:
        m = row._mapping if isinstance(row, Row) else row
        return Session(
            session_id=m["session_id"],
            search_query=m["search_query"],
            search_results=m["search_results"],
            search_meta=m["search_meta"],
            payload_filter=m["payload_filter"],
            sort_by=m["sort_by"],
            user_id=m["user_id"],
            created_at=m["created_at_ms"] // 1000,
            created_at_ms=m["created_at_ms"],
            is_irrelevant=bool(m["is_irrelevant"]),
            batch_id=m["batch_id"],
            session_number=m["session_number"],
            extra=m["extra"],
            events=evs,
            has_more_events=events_cursor is not None,
            events_cursor=events_cursor,
        )

    # -- API keys -------------------------------------------------------------------

    def create_api_key(
        self, *, name: str, prefix: str, key_hash: str, scopes: str, now: int
    ) -> ApiKeyInfo:
        row = {"name": name, "prefix": prefix, "key_hash": key_hash, "scopes": scopes}

        def work(conn: Connection) -> ApiKeyInfo:
            conn.execute(api_keys.insert().values(**row, created_at_ms=now))
            found = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).one()
            return self._api_key(found)

        return self._write(work)

    def api_key_by_prefix(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key's record and stored hash, for the caller to compare in constant time."""
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
        return None if row is None else (self._api_key(row), row.key_hash)

    def api_keys_exist(self) -> bool:
        with self._read() as conn:
            return conn.execute(select(api_keys.c.key_id).limit(1)).first() is not None

    def list_api_keys(self) -> list[ApiKeyInfo]:
        with self._read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.key_id))
            return [self._api_key(r) for r in rows]

    def revoke_api_key(self, key: int | str, now: int) -> ApiKeyInfo:
        """Revoke by key_id or prefix; an already revoked key keeps its first revocation."""
        where = api_keys.c.key_id == key if isinstance(key, int) else api_keys.c.prefix == key

        def work(conn: Connection) -> ApiKeyInfo:
            row = conn.execute(select(api_keys).where(where)).first()
            if row is None:
                raise NotFound(f"API key {key} not found")
            if row.revoked_at_ms is None:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.key_id == row.key_id)
                    .values(revoked_at_ms=now)
                )
                row = conn.execute(select(api_keys).where(api_keys.c.key_id == row.key_id)).one()
            return self._api_key(row)

        return self._write(work)

    @staticmethod
    def _api_key(row: Row[Any]) -> ApiKeyInfo:
        return ApiKeyInfo(
            key_id=row.key_id,
            name=row.name,
            prefix=row.prefix,
            scopes=scopes_of(row.scopes),
            created_at_ms=row.created_at_ms,
            revoked_at_ms=row.revoked_at_ms,
        )

    # -- full dump and import ----------------------------------------------------------

    @contextmanager
    def dump_reader(self) -> Iterator[Callable[[Table, int, int], list[dict[str, Any]]]]:
        """Pages of whole tables, every column, in primary-key order, all from one snapshot.

        The caller gets ``page(table, after, limit)``: the rows whose primary key is larger
        than ``after``. Every page is read in one transaction (REPEATABLE READ on
        PostgreSQL, a read transaction on SQLite), so a dump taken while the service runs
        is consistent across tables: no event without its session.
        """
        self._refuse_if_closed()
        engine = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.dialect == "postgresql"
            else self.engine
        )
        events_with_id = select(*events.c, sessions.c.session_id).join(
            sessions, sessions.c.session_number == events.c.session_number
        )

        def page(table: Table, after: int, limit: int) -> list[dict[str, Any]]:
            (key,) = table.primary_key.columns
            query = events_with_id if table is events else select(table)
            query = query.where(key > after).order_by(key).limit(limit)
            return [dict(r._mapping) for r in conn.execute(query)]

        with unavailable_on_db_outage(), engine.connect() as conn, conn.begin():
            yield page

    def import_transaction(self, work: Callable[[ImportWriter], T]) -> T:
        """Run ``work`` in one committed transaction of its own (one import chunk).

        ``work`` may run again (a lost race on PostgreSQL is retried), so it must only
        compute its answer, changing nothing outside the database.
        """
        return self._write(lambda conn: work(ImportWriter(self, conn)), alone=True)

    def _import_insert(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...]
    ) -> _ImportInsert:
        key = (table.name, columns, returning)
        found = self._import_inserts.get(key)
        if found is None:
            found = self._import_inserts[key] = _ImportInsert(self, table, columns, returning)
        return found

    def count(self, table_name: str) -> int:
        table = metadata.tables[table_name]
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def ping(self) -> None:
        with self._read(snapshot=False) as conn:
            conn.exec_driver_sql("SELECT 1")


def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, JSON))


class _ImportInsert:
    """An import's many-row insert of explicit rows: ``ON CONFLICT DO NOTHING`` on every
    unique key, answering the ``returning`` columns of the rows it inserted, so the
    importer learns which rows were already there (or taken) without reading the others.

    The rows go straight to the driver, as a push's do (``_DriverMany``,
    ``_JsonRowsInsert``): SQLAlchemy's per-row processing would cost more than storing.
    A column given as None in a row is stored as NULL, never as its default.
    """

    def __init__(
        self, store: Store, table: Table, columns: tuple[str, ...], returning: tuple[str, ...]
    ) -> None:
        self._columns = columns
        self._json = _json_columns(table) & set(columns)
        key = [table.c[c] for c in returning]
        self._pg_sql: str | None = None
        self._many: _DriverMany | None = None
        dialect = store.engine.dialect
        if store.dialect == "postgresql":
            rows = (
                func.jsonb_to_recordset(bindparam("rows", type_=postgresql.JSONB))
                .table_valued(
                    *(column(c, _unbounded(table.c[c].type)) for c in columns),
                    column("position", Integer),
                )
                .render_derived(with_types=True)
            )
            statement = (
                postgresql.insert(table)
                .from_select(
                    list(columns), select(*(rows.c[c] for c in columns)).order_by(rows.c.position)
                )
                .on_conflict_do_nothing()
            )
            compiled = statement.returning(*key) if key else statement
            self._pg_sql = str(compiled.compile(dialect=dialect))
        else:
            # 32,766 bound parameters at most per statement (SQLite >= 3.32).
            chunk = max(1, min(500, 30_000 // len(columns)))
            insert = sqlite.insert(table).on_conflict_do_nothing()
            self._many = _DriverMany(
                insert.returning(*key) if key else insert, dialect, list(columns), chunk=chunk
            )

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (dicts of Python values, JSON columns as values); answers the
        ``returning`` columns of the rows inserted."""
        if not rows:
            return []
        if self._pg_sql is not None:
            document = [{**r, "position": i} for i, r in enumerate(rows)]
            found = conn.exec_driver_sql(self._pg_sql, {"rows": _json_dumps(document)})
            return [tuple(r) for r in found]
        assert self._many is not None
        return self._many.fetch(conn, self._json_as_text(rows))

    def count(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Insert ``rows`` with the statement built without ``returning``: how many the
        database inserted (the others' keys were taken)."""
        if not rows:
            return 0
        if self._pg_sql is not None:
            document = [{**r, "position": i} for i, r in enumerate(rows)]
            return int(conn.exec_driver_sql(self._pg_sql, {"rows": _json_dumps(document)}).rowcount)
        assert self._many is not None
        return self._many.execute(conn, self._json_as_text(rows))

    def _json_as_text(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """SQLite's rows: JSON columns as text (copies; the caller's rows are left as given)."""
        if not self._json:
            return rows
        names = tuple(self._json)
        out: list[dict[str, Any]] = []
        for r in rows:
            text = {c: _json_dumps(r[c]) for c in names if r[c] is not None}
            out.append({**r, **text} if text else r)  # a row of NULLs only: as it is
        return out


def _import_numbered(conn: Connection, low: int, top: int) -> list[tuple[str, int]]:
    """``(session_id, session_number)`` of the sessions numbered ``low`` to ``top``.

    Straight through the driver's cursor, in the connection's transaction: tens of
    thousands of rows through SQLAlchemy's result cost more than reading them.
    """
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"SELECT {sessions.c.session_id.name}, {sessions.c.session_number.name} "
        f"FROM {sessions.name} WHERE {sessions.c.session_number.name} BETWEEN {mark} AND {mark}"
    )
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql, (low, top))
        found: list[tuple[str, int]] = cursor.fetchall()
        return found
    finally:
        cursor.close()


class ImportWriter:
    """What one import chunk may do, on its transaction's connection (``import_transaction``).

    Reads answer rows as dicts of Python values (JSON decoded), for the importer to compare
    with what it would insert.
    """

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store = store
        self.conn = conn

    def insert(
        self, table: Table, rows: Sequence[dict[str, Any]], returning: tuple[str, ...]
    ) -> set[tuple[Any, ...]]:
        """Insert the rows unless a unique key is taken; answers the ``returning`` columns
        of those inserted. Rows with different keys (an id given or not) may be mixed."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(r), []).append(r)
        out: set[tuple[Any, ...]] = set()
        for columns, part in groups.items():
            insert = self._store._import_insert(table, columns, returning)
            out.update(insert.execute(self.conn, part))
        return out

    def insert_new(self, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
        """Insert the rows if none of their unique keys is taken: True, every row stored;
        False, none stored (the caller learns which are there with ``insert``).

        Why: answering which rows were new (RETURNING) cost as much as storing them, and
        into an empty database every row is. The rows go in a savepoint, without
        RETURNING; when the database stored fewer than were sent, the savepoint is rolled
        back, so the transaction is as it was before the call.
        """
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(r), []).append(r)
        savepoint = self.conn.begin_nested()
        stored = sum(
            self._store._import_insert(table, columns, ()).count(self.conn, part)
            for columns, part in groups.items()
        )
        if stored == len(rows):
            savepoint.commit()
            return True
        savepoint.rollback()
        return False

    def rows_where(
        self, table: Table, column_name: str, values: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """The rows whose ``column_name`` is one of ``values``."""
        out: list[dict[str, Any]] = []
        values = list(dict.fromkeys(values))
        col = table.c[column_name]
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            found = self.conn.execute(select(table).where(col.in_(part)))
            out.extend(dict(r._mapping) for r in found)
        return out

    def session_numbers(
        self, session_ids: Sequence[str], near: Sequence[Any] = ()
    ) -> dict[str, int]:
        """``session_id -> session_number`` of the stored sessions among ``session_ids``.

        ``near``: numbers the sessions are likely stored under (a dump's own): when they
        are dense, the sessions in their range are read by primary key first, and only
        the ids not found there are looked up one by one. A hint only orders the work:
        the answer is the stored number of each id either way.
        """
        out: dict[str, int] = {}
        ids = list(dict.fromkeys(session_ids))
        numbers = [n for n in near if type(n) is int and 0 < n <= INT64_MAX]
        if numbers and (top := max(numbers)) - (low := min(numbers)) < 2 * len(ids):
            stored = dict(_import_numbered(self.conn, low, top))
            rest: list[str] = []
            for sid in ids:
                if (number := stored.get(sid)) is None:
                    rest.append(sid)
                else:
                    out[sid] = number
            ids = rest
        if not ids:
            return out
        query = select(sessions.c.session_id, sessions.c.session_number).where(
            sessions.c.session_id.in_(bindparam("ids", expanding=True))
        )
        # 5,000 a statement: under SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
        for start in range(0, len(ids), 5000):
            found = self.conn.execute(query, {"ids": ids[start : start + 5000]})
            out.update(found.all())
        return out

    def collecting_batch(self) -> int | None:
        """The collecting batch's id, if one collects (the batch gate held shared)."""
        self._store._batch_gate(self.conn, exclusive=False)
        found = self.conn.execute(select(batches.c.batch_id).where(batches.c.collecting == 1))
        batch_id = found.scalar()
        return None if batch_id is None else int(batch_id)

    def open_collecting(self, now: int) -> int:
        """The collecting batch, opened if none collects."""
        self._store._batch_gate(self.conn, exclusive=False)
        return self._store._collecting_batch_id(self.conn, now)

    def batch_without_id(
        self, release_id: str | None, created_at_ms: int, state: str
    ) -> int | None:
        """A stored batch an id-less source's batch is: the one with its release id, or
        (never released) the one of its creation time and state."""
        if release_id is not None:
            query = select(batches.c.batch_id).where(batches.c.release_id == release_id)
        else:
            query = select(batches.c.batch_id).where(
                batches.c.release_id.is_(None),
                batches.c.created_at_ms == created_at_ms,
                batches.c.state == state,
            )
        found = self.conn.execute(query.order_by(batches.c.batch_id).limit(1)).scalar()
        return None if found is None else int(found)

    def reset_sequence(self, table: Table) -> None:
        """PostgreSQL: move the table's id sequence past its largest id, never back.

        Without it, rows inserted with explicit ids leave the sequence behind them, and a
        later registration (or key, entry, event) would be handed a taken id and fail.
        SQLite numbers a rowid from the largest one in the table, so it needs nothing.
        """
        if self._store.dialect != "postgresql":
            return
        (key,) = table.primary_key.columns
        top = self.conn.execute(select(func.max(key))).scalar()
        if top is None:
            return
        seq = self.conn.execute(select(func.pg_get_serial_sequence(table.name, key.name))).scalar()
        if seq is None:
            return
        # The name comes from pg_get_serial_sequence, quoted as an identifier already.
        last, called = self.conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
        if top > last or (top == last and not called):
            self.conn.execute(select(func.setval(seq, top, True)))
