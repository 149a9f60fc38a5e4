"""Whole-database dump and import: pages of every table from one snapshot, and import
chunks that each commit in a transaction of their own (outside the group commit where
the dialect runs a release so, since an import chunk takes the batch gate too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, bindparam, func, select

from searchtrail.models import INT64_MAX
from searchtrail.storage.api import DumpPage, RowPage
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.batches import collecting_batch_id
from searchtrail.storage.sql.dialect import ImportInsert
from searchtrail.storage.sql.schema import batches, events, sessions

__all__ = ["ImportWriter", "SqlTransfer"]

T = TypeVar("T")


class SqlTransfer:
    def __init__(self, db: _Database) -> None:
        self._db = db
        self.dialect = db.dialect.name
        self._import_inserts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], ImportInsert] = {}
        numbered = (
            select(sessions.c.session_id, sessions.c.session_number)
            .where(sessions.c.session_number.between(bindparam("low"), bindparam("top")))
            .compile(dialect=db.engine.dialect)
        )
        self._numbered_sql = str(numbered)
        # The driver's own parameter style: a tuple in the statement's order, or names.
        order = numbered.positiontup
        self._numbered_params: Callable[[int, int], Any] = (
            (lambda low, top: tuple({"low": low, "top": top}[k] for k in order))
            if order
            else (lambda low, top: {"low": low, "top": top})
        )

    @contextmanager
    def dump_reader(self) -> Iterator[DumpPage]:
        """Pages of whole tables, every column, in primary-key order, all from one snapshot.

        The caller gets ``page(table, after, limit)``: the rows whose primary key is larger
        than ``after``. Every page is read in one transaction (REPEATABLE READ on
        PostgreSQL, a read transaction on SQLite), so a dump taken while the service runs
        is consistent across tables: no event without its session.
        """
        events_with_id = select(*events.c, sessions.c.session_id).join(
            sessions, sessions.c.session_number == events.c.session_number
        )
        with self._db.read_snapshot() as conn:

            def page(table: Table, after: int, limit: int) -> list[dict[str, Any]]:
                (key,) = table.primary_key.columns
                query = events_with_id if table is events else select(table)
                query = query.where(key > after).order_by(key).limit(limit)
                return [dict(r._mapping) for r in conn.execute(query)]

            yield page

    @contextmanager
    def rows_by_time(self, table: Table, low: int, high: int) -> Iterator[Iterator[RowPage]]:
        """Pages of the rows of ``table`` (sessions or events; events with their session's
        ``session_id``, as ``dump_reader`` gives them) whose primary key is ``low`` to
        ``high``, ordered by ``created_at_ms`` then key, from one snapshot.

        One query, streamed (a server-side cursor on PostgreSQL): the database sorts the
        range once, spilling to disk as it needs, so the reader holds a page at a time and
        rows of one date arrive together whatever order their ids are in.
        """
        (key,) = table.primary_key.columns
        query = (
            select(*events.c, sessions.c.session_id).join(
                sessions, sessions.c.session_number == events.c.session_number
            )
            if table is events
            else select(table)
        )
        query = query.where(key.between(low, high)).order_by(table.c.created_at_ms, key)
        with self._db.read_snapshot() as conn:
            found = conn.execution_options(yield_per=_STREAM_PAGE).execute(query)
            yield ([dict(r._mapping) for r in part] for part in found.partitions())

    def settled_top(self, table: Table) -> int:
        """The largest primary key of ``table`` (0 when empty) at or below which no row
        can commit later: the dialect waits out inserts in flight before reading it
        (``Dialect.settle_inserts``), in a transaction of its own outside the group."""
        (key,) = table.primary_key.columns

        def top(conn: Connection) -> int:
            self._db.dialect.settle_inserts(conn, table)
            return int(conn.execute(select(func.coalesce(func.max(key), 0))).scalar_one())

        return self._db.write(top, alone=True)

    def import_transaction(self, work: Callable[[ImportWriter], T]) -> T:
        """Run ``work`` in one committed transaction of its own (one import chunk).

        ``work`` may run again (a lost race on PostgreSQL is retried), so it must only
        compute its answer, changing nothing outside the database.
        """
        return self._db.write(lambda conn: work(ImportWriter(self, conn)), alone=True)

    # -- what ImportWriter asks of its store ------------------------------------------------

    def _import_insert(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...]
    ) -> ImportInsert:
        key = (table.name, columns, returning)
        found = self._import_inserts.get(key)
        if found is None:
            found = self._import_inserts[key] = self._db.dialect.import_insert(
                table, columns, returning, self._db.engine.dialect
            )
        return found

    def _batch_gate(self, conn: Connection, *, exclusive: bool) -> None:
        self._db.dialect.batch_gate(conn, exclusive=exclusive)

    def _collecting_batch_id(self, conn: Connection, now: int) -> int:
        return collecting_batch_id(conn, self._db.dialect, now)

    def _reset_sequence(self, conn: Connection, table: Table) -> None:
        self._db.dialect.reset_sequence(conn, table)

    def _bump_stats(self, conn: Connection, numbers: Sequence[int]) -> None:
        self._db.dialect.bump_stats(conn, numbers)

    def _numbered(self, conn: Connection, low: int, top: int) -> list[tuple[str, int]]:
        """``(session_id, session_number)`` of the sessions numbered ``low`` to ``top``,
        through the driver's cursor: tens of thousands of rows through SQLAlchemy's result
        cost more than reading them."""
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(self._numbered_sql, self._numbered_params(low, top))
            found: list[tuple[str, int]] = cursor.fetchall()
            return found
        finally:
            cursor.close()


class ImportWriter:
    """What one import chunk may do, on its transaction's connection (``import_transaction``).

    Reads answer rows as dicts of Python values (JSON decoded), for the importer to compare
    with what it would insert.
    """

    def __init__(self, store: SqlTransfer, conn: Connection) -> None:
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
        if "session_number" in returning:
            at = returning.index("session_number")
            self._stale(table, [{"session_number": r[at]} for r in out])
        else:
            self._stale(table, rows)
        return out

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

    def insert_new(self, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
        """Insert the rows if none of their unique keys is taken: True, every row stored;
        False, none stored (the caller learns which are there with ``insert``).

        Answering which rows were new (RETURNING) costs as much as storing them, and into
        an empty database every row is. The rows go in a savepoint without RETURNING; when
        the database stored fewer than were sent, the savepoint is rolled back, so the
        transaction is as it was before the call.
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
            self._stale(table, rows)
            return True
        savepoint.rollback()
        return False

    def insert_new_tuples(
        self, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> bool:
        """``insert_new`` of rows as tuples of ``columns``' values: no dict per row."""
        savepoint = self.conn.begin_nested()
        stored = self._store._import_insert(table, columns, ()).count_tuples(self.conn, rows)
        if stored == len(rows):
            savepoint.commit()
            if table is events and rows:
                at = columns.index("session_number")
                self._stale_numbers(set(map(itemgetter(at), rows)))
            return True
        savepoint.rollback()
        return False

    def _stale(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Events came in: their sessions' stats are stale (schema.session_stats), as a
        push makes them. A new session's row is stale from its trigger already."""
        if table is events and rows:
            self._stale_numbers({r["session_number"] for r in rows})

    def _stale_numbers(self, found: set[int]) -> None:
        """``_stale`` of the sessions numbered ``found``."""
        self._store._bump_stats(self.conn, sorted(found))

    def session_numbers(
        self, session_ids: Sequence[str], near: Sequence[Any] = ()
    ) -> dict[str, int]:
        """``session_id -> session_number`` of the stored sessions among ``session_ids``.

        ``near``: numbers the sessions are likely stored under (a dump's own): the runs
        of them that are dense (a chunk of a dump holds one or two) are read by primary
        key first, and only the ids not found there are looked up by id. A hint only
        orders the work: the answer is the stored number of each id either way.
        """
        out: dict[str, int] = {}
        wanted = set(session_ids)
        ids: list[str] = list(wanted)
        stored: dict[str, int] = {}
        for low, top in _dense_runs(near):
            stored.update(self._store._numbered(self.conn, low, top))
        if stored:
            ids = list(wanted - stored.keys())
            if not ids and len(stored) == len(wanted):
                return stored  # the runs hold exactly these sessions (a dump's chunk)
            out = {sid: stored[sid] for sid in wanted & stored.keys()}
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
        self._store._reset_sequence(self.conn, table)


def _dense_runs(near: Sequence[Any]) -> list[tuple[int, int]]:
    """``(low, top)`` of the runs of these numbers with gaps under ``_GAP``: those of
    ``_RUN`` numbers or more that hold at least half the numbers in their range (cheaper
    read whole than id by id; a query per short run would cost more than it saves)."""
    try:
        distinct = set(near)
    except TypeError:  # a hint that is no number at all (a malformed dump's)
        return []
    numbers = sorted(n for n in distinct if type(n) is int and 0 < n <= INT64_MAX)
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] - numbers[i - 1] >= _GAP:
            low, top = numbers[start], numbers[i - 1]
            if i - start >= _RUN and top - low < 2 * (i - start):
                runs.append((low, top))
            start = i
    return runs


_STREAM_PAGE = 5000
_GAP = 64
_RUN = 100
