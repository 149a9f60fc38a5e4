"""SQLite: one writer at a time, on one kept connection, taking the lock up front.

Every write runs on the group commit's one connection (``writer_engine``), whose page
cache stays warm, and begins with ``BEGIN IMMEDIATE``: two processes wait on each other
for the lock instead of failing on a lock upgrade. Reads use a pool of connections in
WAL mode. A push's rows go to the driver as one multi-row ``VALUES`` (``_DriverMany``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import JSON, Connection, Engine, Executable, Table, bindparam, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.types import TEXT, TypeEngine

from searchtrail.storage.api import EventRow
from searchtrail.storage.sql._groupcommit import GroupCommit
from searchtrail.storage.sql._loopreads import SqliteLoopReader
from searchtrail.storage.sql._rollup import sqlite_drop, sqlite_triggers
from searchtrail.storage.sql.dialect import Dialect, EventsInsert, Transaction
from searchtrail.storage.sql.engine import json_dumps, json_or_none, normalize_database_url
from searchtrail.storage.sql.schema import JsonText

__all__ = ["SQLITE_POOL_SIZE", "SQLITE_READ_THREADS", "SqliteDialect"]

SQLITE_POOL_SIZE = 40
# A SQLite read is CPU work under the GIL: threads beyond two only take turns on it.
SQLITE_READ_THREADS = 2
_WRITE_LOCK_POLL_S = 0.0005
# schema.STALE_BUMP, spelled for the driver.
_BUMP = "UPDATE session_stats SET version = version + 1, stale = 1 WHERE session_number IN ({})"


def _total_changes(conn: Connection) -> int:
    """Rows SQLite's connection has inserted, updated or deleted since it opened."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


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
    """Switch a SQLite connection to WAL, waiting out other connections that switch too:
    on a new file, those that switch at the same instant can be refused at once, without
    SQLite's busy handler waiting."""
    _while_locked(partial(cur.execute, "PRAGMA journal_mode=WAL"), timeout_s, 0.005)


def _begin_write(conn: Connection, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE on the group commit's connection, trying again every 0.5 ms while
    another process holds the write lock.

    SQLite's busy handler sleeps up to 100 ms between tries, long after the lock is free.
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


class _DriverMany:
    """A many-row INSERT compiled from Core once and handed straight to the driver.

    SQLAlchemy would process every row's parameters in Python, which costs more than
    SQLite's storing of them. The rows go as one multi-row ``VALUES`` statement per chunk
    (compiled once per row count), not through ``executemany``, which releases the GIL
    around every row's step. Rows must already hold the column values (JSON as text).
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

    def execute_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """``execute`` of rows given as tuples in the statement's column order, straight
        to the driver's cursor: SQLAlchemy's execution costs more per statement than
        SQLite's storing of a few hundred rows."""
        if self._columns != self._order:
            raise ValueError("rows as tuples need the columns in the statement's order")
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        stored = 0
        try:
            for start in range(0, len(rows), self._chunk):
                part = rows[start : start + self._chunk]
                cursor.execute(self._sql_for(len(part)), tuple(chain.from_iterable(part)))
                stored += cursor.rowcount
        finally:
            cursor.close()
        return stored


def _event_params(number: int, rows: Sequence[EventRow]) -> list[dict[str, Any]]:
    """A push's rows as ``_DriverMany`` takes them: one dict per row, JSON as text."""
    return [
        {
            "session_number": number,
            "event_id": event_id,
            "object_id": object_id,
            "event_type": event_type,
            "created_at_ms": created_at_ms,
            "meta": json_or_none(meta),
            "extra": json_or_none(extra),
        }
        for event_id, object_id, event_type, created_at_ms, meta, extra in rows
    ]


class _ImportInsert:
    """An import's insert: ``ON CONFLICT DO NOTHING`` on every unique key, ``RETURNING``
    the rows inserted; the rows go to the driver (``_DriverMany``), JSON as text. A column
    given as None is stored as NULL, never as its default."""

    def __init__(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...], dialect: Any
    ) -> None:
        self._json = frozenset(c.name for c in table.c if isinstance(c.type, JSON)) & set(columns)
        self._json_at = [i for i, c in enumerate(columns) if c in self._json]
        key = [table.c[c] for c in returning]
        # 32,766 bound parameters at most per statement (SQLite >= 3.32).
        chunk = max(1, min(500, 30_000 // len(columns)))
        insert = sqlite.insert(table).on_conflict_do_nothing()
        self._many = _DriverMany(
            insert.returning(*key) if key else insert, dialect, list(columns), chunk=chunk
        )

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        return self._many.fetch(conn, self._json_as_text(rows))

    def count(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        return self._many.execute(conn, self._json_as_text(rows))

    def count_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        for i in self._json_at:
            # A column of NULLs only (most of an import's meta and extra) is left as it is.
            if list(map(itemgetter(i), rows)).count(None) != len(rows):
                rows = [
                    r if r[i] is None else (*r[:i], json_dumps(r[i]), *r[i + 1 :]) for r in rows
                ]
        return self._many.execute_tuples(conn, rows)

    def _json_as_text(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """The rows with JSON columns as text (copies; the caller's rows stay as given)."""
        if not self._json:
            return rows
        names = tuple(self._json)
        out: list[dict[str, Any]] = []
        for r in rows:
            text = {c: json_or_none(r[c]) for c in names if r[c] is not None}
            out.append({**r, **text} if text else r)  # a row of NULLs only: as it is
        return out


class SqliteDialect(Dialect):
    name = "sqlite"
    release_alone = False  # one kept write connection: nothing runs beside the group

    def _make_engine(self, *, writer: bool) -> Engine:
        busy_timeout_ms, synchronous = self.busy_timeout_ms, self.synchronous
        engine = create_engine(
            normalize_database_url(self.url),
            # Readers: one kept connection per request thread (anyio's pool has 40), so
            # none is opened and closed per request; LIFO, so a light load keeps reusing
            # the connection whose page cache is warm. The writer: always the same one.
            pool_size=1 if writer else max(self.pool_size, SQLITE_POOL_SIZE),
            max_overflow=0 if writer else self.pool_size,
            pool_use_lifo=True,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            json_serializer=json_dumps,
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
                return  # each statement commits on its own (an unbegun read)
            if writer:
                _begin_write(conn, busy_timeout_ms)
                return
            write = options.get("searchtrail_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def engine(self) -> Engine:
        return self._make_engine(writer=False)

    def database_file(self) -> Path | None:
        database = make_url(self.url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).resolve()

    def writer_engine(self, engine: Engine) -> Engine:
        # Every write on one connection: a pooled one finds its page cache stale (another
        # connection wrote since) and reads the tree again from the file.
        return self._make_engine(writer=True)

    def unbegun(self, engine: Engine) -> Engine:
        return engine.execution_options(searchtrail_begin=False)

    def reader_threads(self) -> int:
        return SQLITE_READ_THREADS

    def group_commit(self, kept: Transaction, pooled: Transaction) -> GroupCommit:
        return GroupCommit(kept, changes=_total_changes)

    def loop_reader(self, unbegun: Engine, statement: Executable) -> SqliteLoopReader:
        return SqliteLoopReader(unbegun, statement)

    def insert(self, table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def events_insert(self, table: Table, compiler: Any) -> EventsInsert:
        key = ["session_number", "event_id"]
        fields = ["event_id", "object_id", "event_type", "created_at_ms", "meta", "extra"]
        many = _DriverMany(
            sqlite.insert(table).on_conflict_do_nothing(index_elements=key),
            compiler,
            ["session_number", *fields],
        )
        return lambda conn, number, rows: many.execute(conn, _event_params(number, rows))

    def import_insert(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...], compiler: Any
    ) -> _ImportInsert:
        return _ImportInsert(table, columns, returning, compiler)

    def bump_stats(self, conn: Connection, numbers: Sequence[int]) -> None:
        # Through the driver: SQLAlchemy's expanding IN cost more per number than SQLite's
        # update of the row.
        driver = conn.connection.driver_connection
        assert driver is not None
        for start in range(0, len(numbers), 500):
            part = numbers[start : start + 500]
            driver.execute(_BUMP.format(",".join("?" * len(part))), part)

    # Schema changes: the write lock of BEGIN IMMEDIATE keeps other changes out.
    rebuilds_tables = True

    # Row triggers: SQLite has no other kind. A registration inserts one session.
    session_stats_triggers = (
        "CREATE TRIGGER session_stats_insert AFTER INSERT ON sessions BEGIN "
        "INSERT INTO session_stats (session_number, created_at_ms, batch_id, is_irrelevant) "
        "VALUES (NEW.session_number, NEW.created_at_ms, NEW.batch_id, NEW.is_irrelevant); END",
        "CREATE TRIGGER session_stats_irrelevant AFTER UPDATE OF is_irrelevant ON sessions "
        "BEGIN UPDATE session_stats SET is_irrelevant = NEW.is_irrelevant "
        "WHERE session_number = NEW.session_number; END",
        "CREATE TRIGGER session_stats_delete AFTER DELETE ON sessions BEGIN "
        "DELETE FROM session_stats WHERE session_number = OLD.session_number; END",
        *sqlite_triggers(),
    )
    session_stats_drop = (
        "DROP TRIGGER session_stats_insert",
        "DROP TRIGGER session_stats_irrelevant",
        "DROP TRIGGER session_stats_delete",
        *sqlite_drop(),
    )

    @classmethod
    def foreign_keys(cls, conn: Connection, *, on: bool) -> None:
        # A no-op inside a transaction; on the driver's connection, SQLAlchemy would begin one.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")

    @classmethod
    def check_foreign_keys(cls, conn: Connection) -> None:
        if broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all():
            raise RuntimeError(
                f"rows whose foreign key points nowhere (table, rowid, parent, key): "
                f"{broken[:5]}; the upgrade was rolled back"
            )

    @classmethod
    def stored_type_differs(
        cls, inspected: TypeEngine[Any], declared: TypeEngine[Any]
    ) -> bool | None:
        """SQLite reads ``JSON TEXT`` back as TEXT."""
        if isinstance(declared, JsonText):
            return not isinstance(inspected, TEXT)
        return None
