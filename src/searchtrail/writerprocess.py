"""SQLite's hot writes in a process of their own, for ``searchtrail serve``.

In one process the HTTP event loop and the group commit's writer thread share one GIL:
together they keep about one core busy, and every group the writer commits stops the
loop that validates the next requests (bench/analysis.md). Here the loop hands a
write's arguments, rows it has already validated, to a child process that owns the
SQLite write connection and its group commit, and awaits the answer.

Writes travel in groups. While two groups are with the child, the next collects in the
parent; when the child answers one, everything collected goes as the next group, which
the child commits as one transaction (``GroupCommit.run_group``). The child answers only
after that commit, so an answer still means a durable write.

A child that dies (or cannot start) is replaced, and the writes it held are sent once
more, to the new one. They may have been committed just before the death: event and
session ids make a write idempotent, so such a push is answered with its events counted
as duplicates, and a registration with the stored session. A write whose second child
dies too is answered ``Unavailable`` (503), stored or not. The child ends when the
parent closes it, or soon after the parent dies.

Only registrations and pushes from the event loop come here; every other write stays in
the parent's own group commit, and SQLite's file lock keeps the two processes apart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from searchtrail.errors import SearchtrailError, Unavailable
from searchtrail.groupcommit import answer_futures

if TYPE_CHECKING:
    from searchtrail.store import Store

__all__ = ["WriterProcess"]

# What the child may be asked to do: the Store methods that build its writes.
OPS = frozenset({"_register", "_store_events"})
_PARENT_POLL_SEC = 0.2
_START_TIMEOUT_SEC = 120
# Groups sent ahead of the child's answers: the next is there when a commit ends.
_IN_FLIGHT = 2


@dataclass(eq=False)
class _Write:
    op: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    retried: bool = False


class WriterProcess:
    """The parent's side: collects writes, sends them as groups, answers the futures."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int, synchronous: str, max_group: int = 256
    ) -> None:
        self._open_args = (url, busy_timeout_ms, synchronous)
        self._max_group = max_group
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._waiting: list[_Write] = []
        self._in_flight = 0
        self._closed = False
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the child and wait until it answers.

        The server accepts connections only after this: otherwise its first requests would
        wait a second for the child to import, and a load generator that corrects for
        coordinated omission counts that second against hundreds of requests.
        """
        with self._lock:
            if self._closed:
                return
            ready = self._pool_locked().submit(_ping)
        ready.result(timeout=_START_TIMEOUT_SEC)

    async def run(self, op: str, *args: Any) -> Any:
        if op not in OPS:
            raise ValueError(f"the writer process does not know {op!r}")
        write = _Write(op, args, asyncio.get_running_loop().create_future())
        with self._lock:
            if self._closed:
                raise Unavailable("the store is closed")
            self._waiting.append(write)
            if self._in_flight < _IN_FLIGHT:
                self._send_locked()
        return await write.future

    def close(self) -> None:
        """Send and answer what was accepted, then end the child."""
        with self._lock:
            self._closed = True
            while self._in_flight:
                self._idle.wait()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _pool_locked(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_open_store,
                initargs=self._open_args,
            )
        return self._pool

    def _send_locked(self) -> None:
        group = self._waiting[: self._max_group]
        del self._waiting[: self._max_group]
        self._in_flight += 1
        items = [(w.op, w.args) for w in group]
        for _attempt in range(2):
            pool = self._pool_locked()
            try:
                sent = pool.submit(_run_group, items)
            except (BrokenProcessPool, RuntimeError):
                # A child that died while idle: nothing was sent, a new one may take it.
                self._drop_pool_locked(pool)
                continue
            sent.add_done_callback(partial(self._answered, group, pool))
            return
        self._answered(group, None, None)

    def _drop_pool_locked(self, pool: ProcessPoolExecutor) -> None:
        """``pool``'s child is gone: the next write gets a new one (unless it already has)."""
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _answered(
        self,
        group: list[_Write],
        pool: ProcessPoolExecutor | None,
        sent: Future[list[tuple[bool, Any]]] | None,
    ) -> None:
        """Where the child's answer arrives (the pool's thread): settle, send the next group."""
        try:
            if sent is None:
                raise BrokenProcessPool("the writer process could not be started")
            outcomes = sent.result()
        except BrokenProcessPool:
            with self._lock:
                if pool is not None:
                    self._drop_pool_locked(pool)
                again = [w for w in group if not w.retried]
                for w in again:
                    w.retried = True
                self._waiting[:0] = again
            group = [w for w in group if w not in again]  # their second child died
            outcomes = [
                (False, Unavailable("the writer process stopped twice; retry the request"))
                for _ in group
            ]
        except BaseException as exc:
            outcomes = [(False, exc)] * len(group)
        answer_futures(
            (w.future, None if ok else value, value if ok else None)
            for w, (ok, value) in zip(group, outcomes, strict=True)
        )
        with self._lock:
            self._in_flight -= 1
            if self._waiting:
                self._send_locked()
            elif not self._in_flight:
                self._idle.notify_all()


# -- the child ----------------------------------------------------------------------

_store: Store | None = None


def _open_store(url: str, busy_timeout_ms: int, synchronous: str) -> None:
    global _store
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the parent
    # decides when the child ends, by closing it or by dying.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with, args=(os.getppid(),), name="searchtrail-parent-watch", daemon=True
    ).start()
    from searchtrail.http.heap import settle_heap
    from searchtrail.store import Store

    _store = Store(url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, pool_size=1)
    settle_heap()  # a process of searchtrail's own, as serve's workers are


def _exit_with(parent: int) -> None:
    """End the child when its parent is gone (it holds its own input's write end, so the
    input never closes). A group being committed is rolled back by SQLite; none of it
    was answered."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SEC)
    os._exit(1)


def _ping() -> None:
    return None


def _run_group(items: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
    store = _store
    if store is None:
        raise RuntimeError("the writer process has no store")
    fns: list[Callable[[Connection], Any]] = [getattr(store, op)(*args) for op, args in items]
    return [
        (True, result) if error is None else (False, _portable(error))
        for result, error in store.run_group(fns)
    ]


def _portable(error: BaseException) -> BaseException:
    """An error the parent can unpickle and the HTTP layer can shape."""
    from searchtrail.store import DB_OUTAGES, unavailable

    if isinstance(error, SearchtrailError):
        return error
    if isinstance(error, DB_OUTAGES):
        return unavailable(error)
    return RuntimeError(f"{type(error).__name__}: {error}")
