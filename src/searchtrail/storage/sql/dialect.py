"""The one place the SQL backend's dialects differ: ``Dialect``, which ``sqlite.py`` and
``postgres.py`` implement. Everything else in the backend runs the same statements on
both and asks its dialect for the rest; no other module branches on the dialect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from sqlalchemy import ColumnElement, Connection, Engine, Executable, Table, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

from searchtrail.storage.api import EventRow
from searchtrail.storage.sql._groupcommit import GroupCommit
from searchtrail.storage.sql._loopreads import Rows
from searchtrail.storage.sql.schema import STALE_BUMP, session_stats

__all__ = [
    "AppLoopReader",
    "Dialect",
    "EventsInsert",
    "ImportInsert",
    "LoopReader",
    "Transaction",
    "WholePush",
]

# Opens a write transaction (the group commit's ``transaction``).
Transaction = Callable[[], AbstractContextManager[Connection]]
# A push's rows inserted on a connection: how many the database inserted.
EventsInsert = Callable[[Connection, int, Sequence[EventRow]], int]
# A push in one statement (``Dialect.whole_push``): on (session_id, rows, cap), the
# session's number, the events it held before, and how many of the rows were inserted
# (none when held + sent passes cap); None for an unknown session.
WholePush = Callable[[Connection, str, Sequence[EventRow], int], tuple[int, int, int] | None]


class ImportInsert(Protocol):
    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (dicts of Python values, JSON columns as values) unless a unique
        key is taken; answers the ``returning`` columns of the rows inserted."""

    def count(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Insert ``rows`` as ``execute`` does, built without ``returning``: how many the
        database inserted (the others' keys were taken)."""

    def count_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """``count`` of rows given as tuples of the columns' values, in the order the
        insert was built with: no dict per row."""


class LoopReader(Protocol):
    async def rows(self, params: Mapping[str, Any]) -> Rows | None:
        """The statement's rows, read on the running loop; ``None``: read in a thread."""


class AppLoopReader(LoopReader, Protocol):
    """A loop reader with connections of its own, opened and closed in the app's loop."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Dialect(ABC):
    """How one database is opened, locked and written to, behind one interface."""

    name: ClassVar[str]
    # A release commits alone, outside the group (it takes the batch gate exclusive,
    # which registrations in the same group hold shared).
    release_alone: ClassVar[bool]
    # events and session_stats are partitioned by month (storage/sql/partitions.py), so
    # retention may drop whole months; otherwise ``maintain`` and ``drop_expired`` do nothing.
    partitioned: ClassVar[bool] = False

    def __init__(self, url: str, *, busy_timeout_ms: int, synchronous: str, pool_size: int):
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self.pool_size = pool_size

    # -- engines and paths -------------------------------------------------------------

    @abstractmethod
    def engine(self) -> Engine:
        """The pooled engine: every read, and the writes where ``writer_engine`` is it."""

    @abstractmethod
    def writer_engine(self, engine: Engine) -> Engine:
        """The engine of the group commit's transactions."""

    @abstractmethod
    def unbegun(self, engine: Engine) -> Engine:
        """``engine`` for reads that need no snapshot across statements: no transaction."""

    def snapshot(self, engine: Engine) -> Engine:
        """``engine`` for reads that need one snapshot across statements (a dump)."""
        return engine

    @abstractmethod
    def reader_threads(self) -> int:
        """How many threads read for the event loop when it cannot read itself."""

    @abstractmethod
    def group_commit(self, kept: Transaction, pooled: Transaction) -> GroupCommit:
        """The group commit, over the kept write connection or over the pool."""

    def loop_reader(self, unbegun: Engine, statement: Executable) -> LoopReader | None:
        """The reader of ``statement`` on the event loop from the start, if any."""
        return None

    def app_loop_reader(self, statement: Any, engine: Engine) -> AppLoopReader | None:
        """A reader on the app's loop, opened and closed by ``reads_on_loop``, if any."""
        return None

    def database_file(self) -> Path | None:
        """The file holding the database, where this process writes it itself (SQLite): its
        file system's room is the database's."""
        return None

    # -- statements ---------------------------------------------------------------------

    @abstractmethod
    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING``."""

    def batch_gate(self, conn: Connection, *, exclusive: bool) -> None:  # noqa: B027
        """Registrations pass together (shared), a release alone (exclusive).

        Where every write already holds the database lock, there is nothing to take.
        """

    @abstractmethod
    def events_insert(self, table: Table, compiler: Any) -> EventsInsert:
        """The insert of a push's rows into ``table`` (events), handed to the driver;
        ``compiler``: the engine's SQLAlchemy dialect, which compiles it once."""

    def whole_push(self, target: Any, table: Table) -> WholePush | None:
        """A push as one statement where the database allows writes in a WITH: ``target``
        (the push's UPDATE ... RETURNING session_number, held) then the insert into
        ``table`` of the rows, skipped when they would pass the cap. None: two statements.
        """
        return None

    @abstractmethod
    def import_insert(
        self, table: Table, columns: tuple[str, ...], returning: tuple[str, ...], compiler: Any
    ) -> ImportInsert:
        """An import's many-row insert of ``columns`` into ``table``."""

    def reset_sequence(self, conn: Connection, table: Table) -> None:  # noqa: B027
        """Move ``table``'s id sequence past its largest id, where ids come from one."""

    def settle_inserts(self, conn: Connection, table: Table) -> None:  # noqa: B027
        """Wait, in ``conn``'s transaction, until no insert into ``table`` is in flight,
        and hold new ones off until it ends; afterwards its largest id is settled: no row
        at or below it can commit later (a lake export's horizon).

        With one writer at a time (SQLite), ids commit in order: nothing to wait for.
        """

    def bump_stats(self, conn: Connection, numbers: Sequence[int]) -> None:
        """Move ``session_stats.version`` of the sessions numbered ``numbers`` (an import's
        events came in: their stats are stale), 500 numbers a statement, in order."""
        for start in range(0, len(numbers), 500):
            conn.execute(
                update(session_stats)
                .where(session_stats.c.session_number.in_(numbers[start : start + 500]))
                .values(STALE_BUMP)
            )

    # -- schema changes (migrate.py, migrations/env.py), on Alembic's connection ----------

    @classmethod
    def maintain(cls, conn: Connection, now_ms: int, months_ahead: int = 1) -> list[str]:
        """The schema upkeep that time calls for, in the caller's transaction (PostgreSQL:
        the coming months' partitions); answers the tables it created."""
        return []

    @classmethod
    def partition_names(cls, conn: Connection) -> set[str]:
        """The tables that are partitions of another (which schema.py does not name)."""
        return set()

    @classmethod
    def drop_expired(
        cls, conn: Connection, cutoff_ms: int, *, keep_unarchived: bool, dry_run: bool
    ) -> tuple[int, int, int, int]:
        """Retention by whole partitions, before the row-by-row prune: (partitions,
        sessions, events, queue entries) dropped. Where tables are not partitioned, none."""
        return 0, 0, 0, 0

    # A revision changes a column by rebuilding its table (Alembic's batch mode), with
    # foreign keys off meanwhile (the old table is dropped while others point at it).
    rebuilds_tables: ClassVar[bool] = False

    @classmethod
    def lock_schema(cls, conn: Connection) -> None:
        """In a schema change's transaction: keep other schema changes out until it ends."""
        return None

    @classmethod
    def foreign_keys(cls, conn: Connection, *, on: bool) -> None:
        """Turn foreign key checks on or off, outside a transaction (``rebuilds_tables``)."""
        return None

    @classmethod
    def check_foreign_keys(cls, conn: Connection) -> None:
        """Before committing a rebuild with foreign keys off: refuse rows that point nowhere."""
        return None

    # The triggers that keep ``session_stats`` beside ``sessions`` (schema.py): a row
    # inserted with each session, its ``is_irrelevant`` followed, removed with it. Run by
    # ``ensure_schema`` after the tables and by the revision that added the table.
    session_stats_triggers: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def text_list(cls, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """An aggregate: the group's values as one comma-separated text."""
        return func.group_concat(column, ",")

    @classmethod
    def serialize_refresh(cls, conn: Connection) -> None:
        """Make the metrics' refresh writes wait for each other (SQLite: they already do)."""
        return None

    session_stats_drop: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def stored_type_differs(
        cls, inspected: TypeEngine[Any], declared: TypeEngine[Any]
    ) -> bool | None:
        """Whether a column's type as read back differs from schema.py's; None: ask Alembic."""
        return None
