"""Group commit: concurrent writes share one transaction and one commit.

SQLite has one writer at a time and, with ``synchronous=FULL``, every commit waits for
the disk. Committing each request on its own caps a server at one request per fsync.
On PostgreSQL each transaction on its own costs round trips (BEGIN, COMMIT, and for a
registration the batch gate) and a WAL flush, and a thread per request takes turns on
the GIL after each round trip. Here a writer queues its work and whoever holds the
commit lock runs every queued piece of work in one transaction and commits once. A
request is answered only after the commit that includes it, so an answer still means a
durable write.

A piece that fails must leave nothing behind while the others are committed. Most
failures write nothing (a push to an unknown session fails at its lookup), so the
group first runs without savepoints, which cost about as much as a small piece of work,
and counts the database's changed rows around each piece. Only when a failed piece
changed rows, lost a uniqueness race, or failed in the database (which ends a
PostgreSQL transaction) is the group rolled back and run again with each piece in its
own savepoint; a piece the database refused keeps its error and is not run again.

Two kinds of writer share the queue:

- ``run`` (a blocking caller: the library, the CLI) queues its work, takes the commit
  lock and commits groups until its own work is done.
- ``run_async`` (the HTTP service's event loop) queues its work and awaits it; a writer
  thread, started on first use, commits for it and resolves the awaited future through
  ``loop.call_soon_threadsafe``. The request is validated in the loop and never visits
  the thread pool, and the database's C code runs in the writer thread without the GIL
  while the loop parses the next request.

When writes come one at a time, each is its own group: no waiting is added.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from searchtrail.storage.writestats import current as write_observer

__all__ = ["GroupCommit", "GroupCommitClosed", "answer_futures", "running_loop"]

T = TypeVar("T")

_PATH = "group_commit"  # this write path's name in writestats' reports


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    # Set for run_async: where the answer goes once the job is committed.
    future: asyncio.Future[T] | None = None
    # Refused by the database in the run without savepoints: the rerun keeps its error and
    # does not run it again (a lock timeout would be waited out twice).
    settled: bool = False

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        result: T = self.result
        return result


class GroupCommitClosed(RuntimeError):
    """``run_async`` after ``stop``: nothing was queued, nothing written."""


class _Redo(Exception):
    """Roll the group back and run it again with a savepoint per piece."""


def _resolve(outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    """In the awaiting loop: hand each write's outcome to its future."""
    for future, error, result in outcomes:
        if future.done():  # cancelled: the write stands all the same
            continue
        try:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        except Exception as exc:  # e.g. StopIteration, which a future refuses: answer anyway
            future.set_exception(
                RuntimeError(f"a write's outcome could not be handed over: {exc!r}")
            )


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def answer_futures(
    outcomes: Iterable[tuple[asyncio.Future[Any], BaseException | None, Any]],
) -> None:
    """From any thread: settle each future (error, else result) in the loop that awaits it.

    In that loop's own thread it is settled at once, without a round through the loop.
    """
    waiting: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], BaseException | None, Any]]
    ] = {}
    for outcome in outcomes:
        waiting.setdefault(outcome[0].get_loop(), []).append(outcome)
    here = running_loop()
    for loop, items in waiting.items():
        if loop is here:
            _resolve(items)
            continue
        with suppress(RuntimeError):  # a closed loop: nobody awaits these any more
            loop.call_soon_threadsafe(_resolve, items)


class GroupCommit:
    """Runs write functions in shared transactions opened by ``transaction()``.

    ``transaction()`` must begin a write transaction on enter and commit it on a clean
    exit (roll back otherwise). ``changes(conn)`` answers how many rows the connection has
    changed so far (SQLite's ``total_changes``, a count kept for PostgreSQL); without it
    every piece of a group gets a savepoint. With it, a piece may change rows only: DDL
    is not counted, so a piece that created a table and then failed would leave the table
    behind. ``max_group`` bounds how much one commit carries, so one group's latency
    stays bounded however many writers wait.

    An ``OperationalError`` fails the whole group (SQLite's locked or failing database),
    unless ``contained(exc)`` says it is one statement's (PostgreSQL's lock timeout, a
    cancelled query): then only its piece fails, and the others run again in savepoints.
    One that ``transient(exc)`` calls a conflict with another transaction (a deadlock
    PostgreSQL broke) rolls the whole group back, which gives back the locks that took
    part in the deadlock, and runs it again, up to ``retries`` times.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        changes: Callable[[Connection], int] | None = None,
        max_group: int = 64,
        retries: int = 5,
        contained: Callable[[BaseException], bool] = lambda _exc: False,
        transient: Callable[[BaseException], bool] = lambda _exc: False,
    ) -> None:
        self._transaction = transaction
        self._changes = changes
        self._contained = contained
        self._transient = transient
        self._max_group = max_group
        self._retries = retries
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued = threading.Condition(self._queue_lock)
        self._queue: list[_Job[Any]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    def run(self, fn: Callable[[Connection], T]) -> T:
        job: _Job[T] = _Job(fn)
        with self._queue_lock:
            self._queue.append(job)
        with self._commit_lock:
            while not job.done:
                self._commit_next()
        return job.outcome()

    def run_alone(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction of its own, beside the groups, retried as a lone write is.

        For a write that must not share a group's transaction, and only where
        ``transaction()`` may run beside a group's (PostgreSQL's pooled connections, not
        SQLite's one kept connection).
        """
        job: _Job[T] = _Job(fn)
        self._commit_alone(job)
        return job.outcome()

    async def run_async(self, fn: Callable[[Connection], T]) -> T:
        """``run`` for an event loop: the writer thread commits, the loop stays free."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        job = _Job(fn, future=future)
        with self._queue_lock:
            if self._stopping:
                raise GroupCommitClosed("the group commit is closed")
            if self._thread is None:
                thread = threading.Thread(
                    target=self._serve, name="searchtrail-writer", daemon=True
                )
                # Kept only once it runs: a thread that failed to start would be taken for
                # the writer, and every later job would wait in the queue for nobody.
                thread.start()
                self._thread = thread
            self._queue.append(job)
            self._queued.notify()
        return await future

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No group commits meanwhile: lets the owner close what the transactions use."""
        with self._commit_lock:
            yield

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread; ``run_async`` refuses after."""
        with self._queue_lock:
            self._stopping = True
            self._queued.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        while True:
            with self._queue_lock:
                while not self._queue and not self._stopping:
                    self._queued.wait()
                if not self._queue:
                    return
            with self._commit_lock:
                self._commit_next()

    def _commit_next(self) -> None:
        """Commit the oldest queued group (the caller holds the commit lock)."""
        with self._queue_lock:
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
            waiting = len(self._queue)
        if not group:
            return
        observer = write_observer()
        if observer is not None:
            observer.group(_PATH, len(group))
            observer.depth(_PATH, waiting + len(group))
        try:
            self._commit(group)
        finally:
            self._answer(group)
            if observer is not None:
                observer.depth(_PATH, len(self._queue))

    @staticmethod
    def _answer(group: list[_Job[Any]]) -> None:
        for job in group:
            job.done = True
        answer_futures((j.future, j.error, j.result) for j in group if j.future is not None)

    def run_group(
        self, fns: Sequence[Callable[[Connection], Any]]
    ) -> list[tuple[Any, BaseException | None]]:
        """Commit ``fns`` together (``max_group`` at a time): each one's (result, error).

        For a caller that collected the writes itself: the writer process, whose group
        arrives whole from the HTTP process.
        """
        jobs: list[_Job[Any]] = [_Job(fn) for fn in fns]
        with self._commit_lock:
            for start in range(0, len(jobs), self._max_group):
                self._commit(jobs[start : start + self._max_group])
        return [(job.result, job.error) for job in jobs]

    def _commit(self, group: list[_Job[Any]]) -> None:
        if len(group) == 1:
            self._commit_alone(group[0])
            return
        for attempt in range(self._retries):
            for job in group:
                job.result = job.error = None
                job.settled = False
            try:
                self._commit_once(group)
                return
            except BaseException as exc:
                if attempt < self._retries - 1 and self._transient(exc):
                    continue  # the rollback gave back every lock the group held
                # Nothing of this group is stored: every job that had succeeded learns why.
                for job in group:
                    if job.error is None:
                        job.error = exc
                        job.result = None
                return

    def _commit_once(self, group: list[_Job[Any]]) -> None:
        try:
            with self._transaction() as conn:
                if self._changes is None or not self._run_plain(conn, group, self._changes):
                    raise _Redo
        except _Redo:
            rerun = [job for job in group if not job.settled]
            for job in rerun:
                job.result = job.error = None
            with self._transaction() as conn:
                for job in rerun:
                    self._apply(conn, job)

    def _commit_alone(self, job: _Job[Any]) -> None:
        """A job alone needs no savepoint: its own transaction, retried on a lost race."""
        try:
            for attempt in range(self._retries):
                try:
                    with self._transaction() as conn:
                        job.result = job.fn(conn)
                    return
                except Exception as exc:
                    lost = isinstance(exc, IntegrityError) or self._transient(exc)
                    if not lost or attempt == self._retries - 1:
                        raise
        except BaseException as exc:
            job.error = exc

    def _fails_group(self, exc: BaseException) -> bool:
        """The database itself failed, or broke a deadlock: not one piece's failure."""
        if not isinstance(exc, (OperationalError, InterfaceError)):
            return False
        return self._transient(exc) or not self._contained(exc)

    def _run_plain(
        self, conn: Connection, group: list[_Job[Any]], changes: Callable[[Connection], int]
    ) -> bool:
        """Run the group without savepoints; False when only savepoints can undo a failure."""
        for job in group:
            before = changes(conn)
            try:
                job.result = job.fn(conn)
            except IntegrityError:
                return False  # a lost race: run again, in a savepoint
            except DBAPIError as exc:
                if self._fails_group(exc):
                    raise  # the group runs again from the start, or fails whole
                # The database refused this piece and would again. On PostgreSQL that ended
                # the transaction: the others run again, each in a savepoint.
                job.error, job.settled = exc, True
                return False
            except Exception as exc:
                if changes(conn) != before:
                    return False
                job.error = exc
        return True

    def _apply(self, conn: Connection, job: _Job[Any]) -> None:
        for attempt in range(self._retries):
            savepoint = conn.begin_nested()
            try:
                job.result = job.fn(conn)
            except (OperationalError, InterfaceError) as exc:
                if self._fails_group(exc):
                    # The database failed, or broke a deadlock: a savepoint would keep the
                    # other pieces' locks, so the whole group goes (and runs again).
                    raise
                savepoint.rollback()
                job.error = exc
                return
            except IntegrityError as exc:
                savepoint.rollback()
                if attempt == self._retries - 1:
                    job.error = exc
                continue
            except Exception as exc:
                savepoint.rollback()
                job.error = exc
                return
            savepoint.commit()
            return
