"""``_Database``: the engines and every read and write path, behind a few verbs.

After datasette's ``Database``: the aggregates (``sessions.py``, ``batches.py``, ...)
build statements and units of work; this class alone decides where they run.

- ``read()``: a connection of the pool, in a transaction (``snapshot=False``: none).
- ``read_async(fn, *args)``: a blocking read from the event loop, in the reader threads.
- ``loop_reader``: the hot get on the event loop itself, where the dialect can.
- ``write(fn)``: ``fn(conn)`` committed through the group commit, before it returns;
  ``alone=True`` in a transaction of its own where the dialect wants it (a release).
- ``write_async(op, *args)``: the write that ``write_ops[op](*args)`` builds, from the
  event loop: committed by the group commit's writer thread, or under ``serve`` by the
  writer process, which builds it from the same registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable
from sqlalchemy.exc import InterfaceError, OperationalError

from searchtrail.errors import Unavailable
from searchtrail.storage.sql._groupcommit import GroupCommitClosed
from searchtrail.storage.sql._writerprocess import WriterProcess
from searchtrail.storage.sql.dialect import LoopReader
from searchtrail.storage.sql.dialects import dialect_for
from searchtrail.storage.sql.engine import unavailable_on_db_outage

__all__ = ["WriteBuilder"]

T = TypeVar("T")

# A named write of the registry: its arguments in, the unit of work on a connection out.
WriteBuilder = Callable[..., Callable[[Connection], Any]]


class _Database:
    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int,
        synchronous: str,
        pool_size: int,
        writer_process: WriterProcess | None = None,
    ) -> None:
        self.url = url
        self.dialect = dialect_for(
            url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, pool_size=pool_size
        )
        self.engine = self.dialect.engine()
        self.unbegun = self.dialect.unbegun(self.engine)
        self.writer = self.dialect.writer_engine(self.engine)
        self.writer_conn: Connection | None = None
        self._readers = ThreadPoolExecutor(
            self.dialect.reader_threads(), thread_name_prefix="searchtrail-read"
        )
        self.group = self.dialect.group_commit(self._kept_write_transaction, self._transaction)
        self._remote = writer_process
        self._closed = False
        # The registry of writes that come from the event loop by name (write_async): the
        # writer process runs these and no others.
        self.write_ops: dict[str, WriteBuilder] = {}
        # The get on the event loop: from the start (SQLite), or while reads_on_loop is
        # open (PostgreSQL); None: read in a thread.
        self.loop_reader: LoopReader | None = None
        self._fixed_reader: Any = None
        self._loop_statement: Executable | None = None

    def read_on_loop(self, statement: Executable) -> None:
        """Let ``statement`` (the get) be read on the event loop where the dialect can."""
        self._loop_statement = statement
        self._fixed_reader = self.loop_reader = self.dialect.loop_reader(self.unbegun, statement)

    # -- lifecycle ----------------------------------------------------------------------

    def start_writer_process(self) -> None:
        if self._remote is not None:
            self._remote.start()

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()  # what the event loop handed over is committed first
        self.group.stop()  # what the event loop queued is committed first
        with self.group.paused():  # not under a write that is still running
            # A write that queued after stop() commits nothing and is refused: the engines
            # below would open a new connection for it, which nobody would close.
            self._closed = True
            if self.writer_conn is not None:
                self.writer_conn.close()
                self.writer_conn = None
        self._readers.shutdown(wait=True)
        self.loop_reader = self._fixed_reader
        if self._fixed_reader is not None:
            self._fixed_reader.close()
        self.engine.dispose()
        self.writer.dispose()

    def refuse_if_closed(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    @asynccontextmanager
    async def reads_on_loop(self) -> AsyncIterator[None]:
        statement = self._loop_statement
        reader = None
        if self.loop_reader is None and statement is not None:
            reader = self.dialect.app_loop_reader(statement, self.engine)
        if reader is None:
            yield
            return
        await reader.open()
        self.loop_reader = reader
        try:
            yield
        finally:
            if self.loop_reader is reader:
                self.loop_reader = None
            await reader.close()

    # -- reads ----------------------------------------------------------------------------

    @contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read; ``snapshot=False`` where each statement may see a snapshot of its own:
        it runs outside a transaction, which saves the BEGIN and ROLLBACK."""
        self.refuse_if_closed()
        if not snapshot:
            with unavailable_on_db_outage(), self.unbegun.connect() as conn:
                yield conn
        else:
            with unavailable_on_db_outage(), self.engine.connect() as conn, conn.begin():
                yield conn

    @contextmanager
    def read_snapshot(self) -> Iterator[Connection]:
        """One transaction that sees one snapshot across all its statements (a dump)."""
        self.refuse_if_closed()
        engine = self.dialect.snapshot(self.engine)
        with unavailable_on_db_outage(), engine.connect() as conn, conn.begin():
            yield conn

    async def read_async(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a blocking read, from the event loop: in the reader threads."""
        try:
            read = asyncio.get_running_loop().run_in_executor(self._readers, partial(fn, *args))
        except RuntimeError as exc:  # the executor was shut down by close()
            raise Unavailable("the store is closed") from exc
        return await read

    # -- writes ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction on a pooled connection."""
        self.refuse_if_closed()
        with (
            self.engine.connect().execution_options(searchtrail_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def _kept_write_transaction(self) -> Iterator[Connection]:
        """A write transaction on the one write connection, kept checked out.

        Only the holder of the group commit's lock comes here, one at a time. Checking a
        connection out and back in for each transaction cost more than a small push's SQL.
        """
        self.refuse_if_closed()
        conn = self.writer_conn
        if conn is None or conn.invalidated or conn.closed:
            conn = self.writer_conn = self.writer.connect()
        try:
            with conn.begin():
                yield conn
        except (OperationalError, InterfaceError):
            # The database failed, not the work: the next write starts on a new connection.
            self.writer_conn = None
            conn.invalidate()
            conn.close()
            raise

    def write(self, fn: Callable[[Connection], T], *, alone: bool = False) -> T:
        """Run ``fn`` in a committed write transaction, retrying a lost uniqueness race.

        Concurrent writes share one transaction (the group commit), and ``fn`` returns only
        after its commit. ``alone``: a transaction of its own outside the group, where the
        dialect says so (a release, which takes the batch gate exclusive).
        """
        with unavailable_on_db_outage():
            if alone and self.dialect.release_alone:
                return self.group.run_alone(fn)
            return self.group.run(fn)

    async def write_async(self, op: str, *args: Any) -> Any:
        """``write`` for the event loop, of the write ``write_ops[op](*args)`` builds."""
        build = self.write_ops[op]
        if self._remote is not None:
            return await self._remote.run(op, *args)
        fn = build(*args)
        with unavailable_on_db_outage():
            try:
                return await self.group.run_async(fn)
            except GroupCommitClosed as exc:
                # Nothing was written; a client may retry against a store that is open.
                raise Unavailable("the store is closed") from exc

    def run_write_group(
        self, items: Sequence[tuple[str, tuple[Any, ...]]]
    ) -> list[tuple[Any, BaseException | None]]:
        """The writer process's side: build the named writes it received and commit them
        as one group; a name outside the registry fails alone."""
        ops = self.write_ops
        fns: list[Callable[[Connection], Any]] = []
        for op, args in items:
            build = ops.get(op)
            fns.append(_unknown(op) if build is None else build(*args))
        return self.group.run_group(fns)


def _unknown(op: str) -> Callable[[Connection], Any]:
    def refuse(_conn: Connection) -> Any:
        raise ValueError(f"the writer process does not know the write {op!r}")

    return refuse
