"""PostgreSQL (psycopg 3, READ COMMITTED): writers of several processes side by side.

Batch numbering updates no counter row:

- ``session_number`` comes from the table's identity sequence (``nextval`` takes no row
  lock and is not rolled back: numbers are unique and increasing, with gaps).
- A registration takes the *batch gate* shared (``pg_advisory_xact_lock_shared``), once
  per group (per savepoint when a group runs in savepoints), and inserts its session
  into the collecting batch; the group holds the gate until it commits. Shared holders
  never wait for each other.
- A release takes the gate exclusive, in a transaction of its own outside the group
  (inside a group that holds it shared, two releases would wait for each other): it
  waits for the registrations in flight, and the lock manager queues later ones behind
  it, so a release is not starved (row locks are not fair: ``FOR SHARE`` holders keep
  overtaking a queued ``FOR UPDATE``). Registrations after its commit find no collecting
  batch and open the next one (a unique ``collecting`` value lets one insert it). So a
  session never lands in a batch whose release was answered.
- Groups of two processes that insert the same keys in crossed order deadlock:
  PostgreSQL aborts one statement (SQLSTATE 40P01), and the group commit rolls that
  whole group back and runs it again (``_conflict``).

A push's rows go as one JSON document that ``jsonb_to_recordset`` takes apart in the
server (``_JsonRowsInsert``): one statement, little client CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pydantic_core
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    create_engine,
    event,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, DisconnectionError

from searchtrail.storage.api import EventRow
from searchtrail.storage.sql._groupcommit import GroupCommit
from searchtrail.storage.sql._loopreads import PgLoopReader
from searchtrail.storage.sql._rollup import postgres_drop, postgres_triggers
from searchtrail.storage.sql.dialect import Dialect, Transaction, WholePush
from searchtrail.storage.sql.engine import json_dumps, normalize_database_url
from searchtrail.storage.sql.partitions import (
    SCHEMA_LOCK_KEY,
    drop_expired_partitions,
    ensure_partitions,
)

__all__ = ["PG_PING_IDLE_AFTER_S", "PG_READ_WAIT_S", "PostgresDialect"]

_REFRESH_LOCK = 0x5E55_1075

# How long a get on the event loop waits for a connection of its pool: while the server
# is down, how long it takes to answer 503.
PG_READ_WAIT_S = 5.0
# A pooled connection unused for longer than this is pinged before it is handed out (a
# server restart ends every connection); in steady use none is, to save a round trip.
PG_PING_IDLE_AFTER_S = 1.0

# pg_advisory_xact_lock key of the batch gate ("searchtrail schema": partitions.py).
_BATCH_GATE_KEY = 0x5EA2C4BA7C
# Connection.info key: the transaction or savepoint that took the gate shared.
_GATE_HOLDER = "searchtrail_gate_holder"
# connection_exception, and the server shutting down or starting
_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
# deadlock_detected, serialization_failure
_RETRY_STATES = ("40P01", "40001")
_PG_LOCK_NOT_AVAILABLE = "55P03"
# A lake export's lock on a table (settle_inserts): each try waits this long, and gives
# up after this many seconds in all (the export then fails as DatabaseLocked).
_SETTLE_TRY_MS = 50
_SETTLE_WAIT_S = 600
_CHANGES = "searchtrail_changes"
_EVENT_FIELDS = ["event_id", "object_id", "event_type", "created_at_ms", "meta", "extra"]
_EVENT_KEY = ["session_number", "event_id"]
_CHANGING = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _changes(conn: Connection) -> int:
    """Rows this connection has inserted, updated or deleted (``_count_changes``)."""
    return int(conn.info.get(_CHANGES, 0))


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def _statement_failure(exc: BaseException) -> bool:
    """PostgreSQL refused one statement (a lock timeout, a cancelled query, a deadlock) and
    the connection is fine: a savepoint undoes that statement alone."""
    if getattr(exc, "connection_invalidated", False):
        return False
    state = _sqlstate(exc)
    return state is not None and not state.startswith(_CONNECTION_STATES)


def _conflict(exc: BaseException) -> bool:
    """PostgreSQL ended the transaction to break a deadlock or a serialization conflict."""
    return _sqlstate(exc) in _RETRY_STATES


def _unbounded(t: Any) -> Any:
    return Text() if isinstance(t, String) else t


def _rows_document(table: Table, columns: Sequence[str]) -> Any:
    """``jsonb_to_recordset`` of a ``rows`` parameter: ``columns`` and each row's position.
    Strings as text: a cast to varchar(n) would cut an over-long value silently."""
    return (
        func.jsonb_to_recordset(bindparam("rows", type_=postgresql.JSONB))
        .table_valued(
            *(column(c, _unbounded(table.c[c].type)) for c in columns),
            column("position", Integer),
        )
        .render_derived(with_types=True)
    )


class _JsonRowsInsert:
    """A push's insert: one statement, its rows sent as one JSON document, inserted (and
    numbered) in the push's order. ``executemany`` would run one INSERT per row, and
    arrays per column (``unnest``) cost about twice the client CPU to dump."""

    def __init__(
        self, table: Table, columns: Sequence[str], conflict: Sequence[str], dialect: Any
    ) -> None:
        self._columns = list(columns)
        rows = _rows_document(table, columns)
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
        params = {"session_number": number, "rows": json_dumps(document)}
        return int(conn.exec_driver_sql(self.sql, params).rowcount)


class _ImportInsert:
    """An import's insert: ``ON CONFLICT DO NOTHING`` on every unique key, ``RETURNING``
    the rows inserted, the rows as one JSON document (as a push's). A column given as
    None is stored as NULL, never as its default."""

    def __init__(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...], dialect: Any
    ) -> None:
        rows = _rows_document(table, columns)
        statement = (
            postgresql.insert(table)
            .from_select(
                list(columns), select(*(rows.c[c] for c in columns)).order_by(rows.c.position)
            )
            .on_conflict_do_nothing()
        )
        key = [table.c[c] for c in returning]
        self._sql = str((statement.returning(*key) if key else statement).compile(dialect=dialect))
        self._columns = columns

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        found = conn.exec_driver_sql(self._sql, self._params(rows))
        return [tuple(r) for r in found]

    def count(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        return int(conn.exec_driver_sql(self._sql, self._params(rows)).rowcount)

    def count_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        columns = self._columns
        document = [dict(zip(columns, r, strict=True), position=i) for i, r in enumerate(rows)]
        return int(conn.exec_driver_sql(self._sql, {"rows": json_dumps(document)}).rowcount)

    @staticmethod
    def _params(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
        return {"rows": json_dumps([{**r, "position": i} for i, r in enumerate(rows)])}


class PostgresDialect(Dialect):
    name = "postgresql"
    release_alone = True
    partitioned = True

    @classmethod
    def text_list(cls, column: Any) -> Any:
        return func.string_agg(cast(column, Text), ",")

    @classmethod
    def serialize_refresh(cls, conn: Connection) -> None:
        # Each row's write takes the lock of its hour's sums (a trigger): two refreshes
        # taking them in turn could deadlock.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_REFRESH_LOCK})")

    # A row trigger on insert: a registration inserts one row, and a statement trigger's
    # transition table cost it 41 us against the row trigger's 18 (docs/performance.md).
    # A delete's statement trigger (retention) takes many rows at once.
    session_stats_triggers = (
        "CREATE OR REPLACE FUNCTION session_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO session_stats (session_number, created_at_ms, batch_id, "
        "is_irrelevant) VALUES (NEW.session_number, NEW.created_at_ms, NEW.batch_id, "
        "NEW.is_irrelevant); RETURN NULL; END $$",
        "CREATE TRIGGER session_stats_insert AFTER INSERT ON sessions "
        "FOR EACH ROW EXECUTE FUNCTION session_stats_insert()",
        "CREATE OR REPLACE FUNCTION session_stats_irrelevant() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE session_stats SET is_irrelevant = NEW.is_irrelevant "
        "WHERE session_number = NEW.session_number; RETURN NULL; END $$",
        "CREATE TRIGGER session_stats_irrelevant AFTER UPDATE OF is_irrelevant ON sessions "
        "FOR EACH ROW WHEN (OLD.is_irrelevant IS DISTINCT FROM NEW.is_irrelevant) "
        "EXECUTE FUNCTION session_stats_irrelevant()",
        "CREATE OR REPLACE FUNCTION session_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN DELETE FROM session_stats s USING old_sessions o "
        "WHERE s.session_number = o.session_number; RETURN NULL; END $$",
        "CREATE TRIGGER session_stats_delete AFTER DELETE ON sessions "
        "REFERENCING OLD TABLE AS old_sessions FOR EACH STATEMENT "
        "EXECUTE FUNCTION session_stats_delete()",
        *postgres_triggers(),
    )
    session_stats_drop = (
        "DROP TRIGGER session_stats_insert ON sessions",
        "DROP TRIGGER session_stats_irrelevant ON sessions",
        "DROP TRIGGER session_stats_delete ON sessions",
        "DROP FUNCTION session_stats_insert()",
        "DROP FUNCTION session_stats_irrelevant()",
        "DROP FUNCTION session_stats_delete()",
        *postgres_drop(),
    )

    def engine(self) -> Engine:
        engine = create_engine(
            normalize_database_url(self.url),
            pool_size=self.pool_size,
            max_overflow=self.pool_size,
            # Like SQLite's busy timeout: a lock held too long is a 503 to retry, not a hang.
            connect_args={"options": f"-c lock_timeout={int(self.busy_timeout_ms)}"},
            json_serializer=json_dumps,
            json_deserializer=pydantic_core.from_json,
        )

        @event.listens_for(engine, "after_cursor_execute")
        def _count_changes(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            # The group commit's count of changed rows, which SQLite's connection keeps
            # itself. The command tag names the outer statement ("UPDATE 3"); a SELECT over
            # a data-modifying CTE would go uncounted, and none is used.
            tag = (cursor.statusmessage or "").partition(" ")[0]
            if tag in _CHANGING and cursor.rowcount > 0:
                conn.info[_CHANGES] = conn.info.get(_CHANGES, 0) + cursor.rowcount

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

    def writer_engine(self, engine: Engine) -> Engine:
        return engine

    def unbegun(self, engine: Engine) -> Engine:
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    def snapshot(self, engine: Engine) -> Engine:
        return engine.execution_options(isolation_level="REPEATABLE READ")

    def reader_threads(self) -> int:
        return self.pool_size  # reads wait on the network: a thread per connection

    def group_commit(self, kept: Transaction, pooled: Transaction) -> GroupCommit:
        return GroupCommit(
            pooled, changes=_changes, contained=_statement_failure, transient=_conflict
        )

    def app_loop_reader(self, statement: Any, engine: Engine) -> PgLoopReader:
        return PgLoopReader(
            normalize_database_url(self.url),
            str(statement.compile(dialect=engine.dialect)),
            size=self.pool_size,
            ping_idle_after_s=PG_PING_IDLE_AFTER_S,
            wait_s=PG_READ_WAIT_S,
        )

    def insert(self, table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def batch_gate(self, conn: Connection, *, exclusive: bool) -> None:
        """A transaction-scoped advisory lock: it lives in the lock manager, so
        registrations touch no shared row. A savepoint that took it and was rolled back
        gave it back, so it is remembered per savepoint."""
        if exclusive:
            conn.execute(select(func.pg_advisory_xact_lock(_BATCH_GATE_KEY)))
            return
        holder = conn.get_nested_transaction() or conn.get_transaction()
        if conn.info.get(_GATE_HOLDER) is not holder:
            conn.execute(select(func.pg_advisory_xact_lock_shared(_BATCH_GATE_KEY)))
            conn.info[_GATE_HOLDER] = holder

    def events_insert(self, table: Table, compiler: Any) -> Any:
        return _JsonRowsInsert(table, _EVENT_FIELDS, _EVENT_KEY, compiler).execute

    def whole_push(self, target: Any, table: Table) -> WholePush:
        """One round trip instead of two: data-modifying WITHs run on one snapshot, so
        ``held`` counts the events before this push, as the two statements did."""
        found = target.cte("target")
        rows = _rows_document(table, _EVENT_FIELDS)
        sent = bindparam("sent", type_=Integer)
        cap = bindparam("cap", type_=Integer)
        stored = (
            postgresql.insert(table)
            .from_select(
                ["session_number", *_EVENT_FIELDS],
                select(found.c.session_number, *(rows.c[c] for c in _EVENT_FIELDS))
                .select_from(found.join(rows, true()))
                .where(found.c.held + sent <= cap)
                .order_by(rows.c.position),
            )
            .on_conflict_do_nothing(index_elements=_EVENT_KEY)
            .returning(literal_column("1"))
            .cte("stored")
        )
        statement = select(
            found.c.session_number,
            found.c.held,
            select(func.count()).select_from(stored).scalar_subquery(),
        )

        def push(
            conn: Connection, session_id: str, events: Sequence[EventRow], limit: int
        ) -> tuple[int, int, int] | None:
            document = [
                dict(zip(_EVENT_FIELDS, row, strict=True), position=i)
                for i, row in enumerate(events)
            ]
            params = {"session_id": session_id, "rows": document, "sent": len(events)}
            row = conn.execute(statement, {**params, "cap": limit}).first()
            if row is None:
                return None
            number, held, inserted = row
            # The command tag is the SELECT's, which _count_changes does not count: the
            # group commit must still see that a push that fails later changed rows.
            conn.info[_CHANGES] = _changes(conn) + 1 + inserted
            return int(number), int(held), int(inserted)

        return push

    def import_insert(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...], compiler: Any
    ) -> _ImportInsert:
        return _ImportInsert(table, columns, returning, compiler)

    def reset_sequence(self, conn: Connection, table: Table) -> None:
        """Rows inserted with explicit ids leave the sequence behind them, and a later
        insert would be handed a taken id: move it past the largest, never back."""
        (key,) = table.primary_key.columns
        top = conn.execute(select(func.max(key))).scalar()
        if top is None:
            return
        seq = conn.execute(select(func.pg_get_serial_sequence(table.name, key.name))).scalar()
        if seq is None:
            return
        # The name comes from pg_get_serial_sequence, quoted as an identifier already.
        last, called = conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
        if top > last or (top == last and not called):
            conn.execute(select(func.setval(seq, top, True)))

    def settle_inserts(self, conn: Connection, table: Table) -> None:
        """Ids come from a sequence when a row is inserted, but commit in any order: 105
        may be visible while the transaction holding 103 is still open, and a horizon of
        105 read then would skip 103 for ever. SHARE conflicts with the ROW EXCLUSIVE
        every INSERT (and COPY) takes before it draws an id, so once granted, every id
        drawn so far is committed or rolled back, and later ones are drawn after the
        lock ends: larger than any id read under it. One table a transaction, never two:
        holding one SHARE lock while waiting for another could close a cycle with a
        group commit that inserts into both, and PostgreSQL would break it after a
        second by aborting one of us.

        The lock is asked for in short tries: while a request waits, the inserts that
        come after it queue behind it, so one long insert in flight (an import chunk)
        would stall every write for as long. A try gives up after ``_SETTLE_TRY_MS``
        (its savepoint rolled back), and writes pass until the next."""
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_SETTLE_TRY_MS}")
        deadline = time.monotonic() + _SETTLE_WAIT_S
        while True:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"LOCK TABLE {table.name} IN SHARE MODE")
            except DBAPIError as exc:
                if _sqlstate(exc) != _PG_LOCK_NOT_AVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(_SETTLE_TRY_MS / 1000)
                continue
            return

    @classmethod
    def maintain(cls, conn: Connection, now_ms: int, months_ahead: int = 1) -> list[str]:
        return ensure_partitions(conn, now_ms, months_ahead)

    @classmethod
    def partition_names(cls, conn: Connection) -> set[str]:
        found = conn.exec_driver_sql(
            "SELECT relname FROM pg_class WHERE relispartition "
            "AND relnamespace = to_regnamespace(current_schema())::oid"
        )
        return {str(name) for (name,) in found}

    @classmethod
    def drop_expired(
        cls, conn: Connection, cutoff_ms: int, *, keep_unarchived: bool, dry_run: bool
    ) -> tuple[int, int, int, int]:
        return drop_expired_partitions(
            conn, cutoff_ms, keep_unarchived=keep_unarchived, dry_run=dry_run
        )

    @classmethod
    def lock_schema(cls, conn: Connection) -> None:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
