"""``SqlStorage``: the storage protocols over SQLite or PostgreSQL (``searchtrail.storage.api``).

It composes one aggregate per concern over one ``_Database``, which owns the engines
and decides where each read and write runs (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from searchtrail.limits import DEFAULT_MAX_EVENTS_PER_SESSION
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql._writerprocess import WriterProcess
from searchtrail.storage.sql.batches import SqlBatches
from searchtrail.storage.sql.engine import redacted_url, unavailable_on_db_outage
from searchtrail.storage.sql.health import SqlHealth
from searchtrail.storage.sql.keys import SqlApiKeys
from searchtrail.storage.sql.metrics import SqlMetrics
from searchtrail.storage.sql.migrate import ensure_schema
from searchtrail.storage.sql.privacy import SqlPrivacy
from searchtrail.storage.sql.queue import SqlQueue
from searchtrail.storage.sql.reads import SqlReads
from searchtrail.storage.sql.schema import metadata
from searchtrail.storage.sql.sessions import SqlSessions, write_ops
from searchtrail.storage.sql.transfer import SqlTransfer
from searchtrail.timestamps import now_ms

__all__ = ["SqlStorage", "open_writer_child"]


class SqlStorage:
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
        # searchtrail serve: registrations and pushes from the event loop are committed by
        # a child process with a GIL of its own, which opens its storage from these alone.
        remote = (
            WriterProcess(
                open_writer_child, (url, busy_timeout_ms, synchronous, max_events_per_session)
            )
            if writer_process
            else None
        )
        self.db = _Database(
            url,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            pool_size=pool_size,
            writer_process=remote,
        )
        self.sessions = SqlSessions(self.db, max_events_per_session)
        self.batches = SqlBatches(self.db)
        self.queue = SqlQueue(self.db)
        self.keys = SqlApiKeys(self.db)
        self.reads = SqlReads(self.db)
        self.transfer = SqlTransfer(self.db)
        self.metrics = SqlMetrics(self.db)
        self.health = SqlHealth(self.db)
        self.privacy = SqlPrivacy(self.db)
        self.db.write_ops.update(write_ops(self.sessions))
        self.db.write_ops["health_check"] = self.health.check_write

    @property
    def dialect(self) -> str:
        return self.db.dialect.name

    @property
    def engine(self) -> Engine:
        """The pooled engine, for the CLI's schema commands and for tests."""
        return self.db.engine

    @property
    def location(self) -> str:
        return redacted_url(self.url)

    def create_schema(self) -> None:
        """Create an empty database at the head revision; refuse one whose schema is behind."""
        with unavailable_on_db_outage():
            ensure_schema(self.db.engine)

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        with self.db.read(snapshot=False) as conn:
            conn.exec_driver_sql("SELECT 1")

    def ensure_partitions(self, now_ms: int, months_ahead: int = 1) -> list[str]:
        maintain = self.db.dialect.maintain
        with unavailable_on_db_outage():
            return self.db.write(lambda conn: maintain(conn, now_ms, months_ahead), alone=True)

    def drop_expired_partitions(
        self, cutoff_ms: int, *, keep_unarchived: bool, dry_run: bool
    ) -> tuple[int, int, int, int]:
        def work(conn: Connection) -> tuple[int, int, int, int]:
            # New sessions into this month first: a month still numbered is never dropped.
            if not dry_run:
                self.db.dialect.maintain(conn, now_ms())
            return self.db.dialect.drop_expired(
                conn, cutoff_ms, keep_unarchived=keep_unarchived, dry_run=dry_run
            )

        with unavailable_on_db_outage():
            return self.db.write(work, alone=True)

    def start_writer_process(self) -> None:
        self.db.start_writer_process()

    @asynccontextmanager
    async def reads_on_loop(self) -> AsyncIterator[None]:
        async with self.db.reads_on_loop():
            yield

    def count(self, table_name: str) -> int:
        table = metadata.tables[table_name]
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def run_write_group(
        self, items: list[tuple[str, tuple[Any, ...]]]
    ) -> list[tuple[Any, BaseException | None]]:
        """The writer process's side: build its named writes and commit them as one group."""
        return self.db.run_write_group(items)


def open_writer_child(
    url: str,
    busy_timeout_ms: int,
    synchronous: str,
    max_events_per_session: int = DEFAULT_MAX_EVENTS_PER_SESSION,
) -> SqlStorage:
    """The writer process's storage (its opener, pickled by reference)."""
    return SqlStorage(
        url,
        busy_timeout_ms=busy_timeout_ms,
        synchronous=synchronous,
        pool_size=1,
        max_events_per_session=max_events_per_session,
    )
