"""Group commit: concurrent SQLite writes share one transaction and one fsync.

SQLite has one writer at a time and, with ``synchronous=FULL``, every commit waits for
the disk. Committing each request on its own caps a server at one request per fsync.
Here a writer queues its work and then takes the commit lock; whoever holds the lock
(the leader) runs every queued piece of work in one transaction, each in its own
savepoint, and commits once. A request is answered only after the commit that includes
it, so an answer still means a durable write; a piece that fails rolls back its own
savepoint and the others are committed.

When writes come one at a time, each is its own group: no waiting is added.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

__all__ = ["GroupCommit"]

T = TypeVar("T")


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Runs write functions in shared transactions opened by ``transaction()``.

    ``transaction()`` must begin a write transaction on enter and commit it on a clean
    exit (roll back otherwise). ``max_group`` bounds how much one commit carries, so one
    group's latency stays bounded however many writers wait.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        max_group: int = 64,
        retries: int = 5,
    ) -> None:
        self._transaction = transaction
        self._max_group = max_group
        self._retries = retries
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Job[Any]] = []

    def run(self, fn: Callable[[Connection], T]) -> T:
        job: _Job[T] = _Job(fn)
        with self._queue_lock:
            self._queue.append(job)
        with self._commit_lock:
            while not job.done:
                with self._queue_lock:
                    group = self._queue[: self._max_group]
                    del self._queue[: self._max_group]
                self._commit(group)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No group commits meanwhile: lets the owner close what the transactions use."""
        with self._commit_lock:
            yield

    def _commit(self, group: list[_Job[Any]]) -> None:
        if len(group) == 1:
            self._commit_alone(group[0])
            return
        try:
            with self._transaction() as conn:
                for job in group:
                    self._apply(conn, job)
        except BaseException as exc:
            # Nothing of this group is stored: every job that had succeeded learns why.
            for job in group:
                if job.error is None:
                    job.error = exc
                    job.result = None
        finally:
            for job in group:
                job.done = True

    def _commit_alone(self, job: _Job[Any]) -> None:
        """A job alone needs no savepoint: its own transaction, retried on a lost race."""
        try:
            for attempt in range(self._retries):
                try:
                    with self._transaction() as conn:
                        job.result = job.fn(conn)
                    return
                except IntegrityError:
                    if attempt == self._retries - 1:
                        raise
        except BaseException as exc:
            job.error = exc
        finally:
            job.done = True

    def _apply(self, conn: Connection, job: _Job[Any]) -> None:
        for attempt in range(self._retries):
            savepoint = conn.begin_nested()
            try:
                job.result = job.fn(conn)
            except (OperationalError, InterfaceError):
                # The database itself failed: the whole transaction is gone.
                raise
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
