"""Reads on the event loop itself: the HTTP service's get, without a hop to a thread.

On SQLite the read runs on the loop's thread within a budget of SQLite's VM steps
(``SqliteLoopReader``). On PostgreSQL it waits on the network through psycopg's async
connections (``PgLoopReader``), in a pool of their own that the app's lifespan opens and
closes in its loop (``reads_on_loop``). Both answer ``None`` where the caller must read
in a thread instead: from another thread or loop, or for a SQLite read past its budget.
The statement and the rows' meaning stay the ``Sessions`` aggregate's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import pydantic_core
from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from searchtrail.errors import Unavailable
from searchtrail.storage.sql.engine import unavailable

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

__all__ = ["LOOP_READ_STEPS", "PgLoopReader", "SqliteLoopReader"]

# A SQLite read runs on the event loop until it has taken this many of SQLite's VM steps;
# then it is interrupted and runs again in a reader thread. A get takes about 50 steps an
# event: the budget lets through a session of about 200 events.
LOOP_READ_STEPS = 10_000
_STEPS_PER_CHECK = 500

Rows = Sequence[Sequence[Any]]


class SqliteLoopReader:
    """SQLite reads on the event loop's own thread, each within a budget of VM steps.

    A read that runs past its budget (a session with many events) is interrupted by
    SQLite's progress handler and answers ``None``, for the caller to run it again in a
    reader thread. Building rows and models holds the GIL in any thread; what a thread
    spares the loop is SQLite's own work, which the budget bounds. A page read from disk
    is not bounded. The connection is used by
    the first thread that reads, the loop's; any other thread is answered ``None`` too.
    A lock makes that claim atomic and lets ``close`` from another thread wait for a read
    in progress, as the reader threads' shutdown does; it is never contended otherwise.
    """

    def __init__(self, engine: Engine, statement: Executable, steps: int = LOOP_READ_STEPS):
        self._engine = engine
        self._statement = statement
        self._checks = max(1, steps // _STEPS_PER_CHECK)
        self._left = 0
        self._conn: Connection | None = None
        self._owner: int | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _tick(self) -> bool:
        self._left -= 1
        return self._left <= 0

    async def rows(self, params: Mapping[str, Any]) -> Rows | None:
        me = threading.get_ident()
        if self._owner not in (None, me):
            return None
        with self._lock:
            if self._closed:
                raise Unavailable("the store is closed")
            if self._owner is None:
                self._owner = me
            elif self._owner != me:
                return None
            conn = self._conn
            if conn is None:
                conn = self._conn = self._engine.connect()
                raw = conn.connection.dbapi_connection
                raw.set_progress_handler(self._tick, _STEPS_PER_CHECK)  # type: ignore[union-attr]
            self._left = self._checks
            try:
                return conn.execute(self._statement, params).all()
            except OperationalError:
                if self._left > 0:
                    raise  # not the budget's interrupt
                conn.rollback()
                return None

    def close(self) -> None:
        """After a read in progress; the connection is closed, not handed back to the pool
        with the progress handler on it."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.invalidate()
                conn.close()


class PgLoopReader:
    """PostgreSQL reads on the event loop, through a pool of psycopg's async connections.

    The pool belongs to the loop that opened it; a read from any other loop answers
    ``None``. It keeps the rules of the store's SQLAlchemy pool: a connection idle for
    longer than ``ping_idle_after_s`` is pinged before use, and a connection found broken
    in use (a server restart ended them all) drains the pool, so the request that found it
    is the only one to fail. A read waits at most ``wait_s`` for a connection: while the
    server is down that is how long a get takes to answer 503, as one a connection
    failure answers at once. psycopg is imported on open: a SQLite service does not
    carry it.
    """

    def __init__(
        self, url: str, sql: str, *, size: int, ping_idle_after_s: float, wait_s: float
    ) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._sql = sql
        self._size = size
        self._ping_after = ping_idle_after_s
        self._wait = wait_s
        self._idle_since: WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            WeakKeyDictionary()
        )
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outages: tuple[type[Exception], ...] = ()

    async def open(self) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        self._outages = (psycopg.OperationalError, psycopg.InterfaceError)
        self._loop = asyncio.get_running_loop()
        self._pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._size,
            open=False,
            timeout=self._wait,
            kwargs={"autocommit": True},
            configure=self._configure,
            check=self._check,
            reset=self._returned,
            name="searchtrail-read",
        )
        await self._pool.open()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def rows(self, params: Mapping[str, Any]) -> Rows | None:
        if self._pool is None or asyncio.get_running_loop() is not self._loop:
            return None
        try:
            async with self._pool.connection() as conn:
                try:
                    cursor = await conn.execute(self._sql, params)
                    return await cursor.fetchall()
                except self._outages:
                    if conn.broken:
                        await self._pool.drain()
                    raise
        except self._outages as exc:
            raise unavailable(exc) from exc

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        from psycopg.types.json import set_json_loads

        set_json_loads(pydantic_core.from_json, conn)  # as the store's engine decodes JSON
        await self._returned(conn)  # idle from now

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._idle_since.get(conn, 0.0) > self._ping_after:
            await type(self._pool).check_connection(conn)  # type: ignore[union-attr]

    async def _returned(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._idle_since[conn] = time.monotonic()
