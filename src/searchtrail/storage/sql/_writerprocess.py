"""The hot writes in a process of their own, for ``searchtrail serve``.

In one process the HTTP event loop and the group commit's writer thread share one GIL,
and every group the writer commits stops the loop that validates the next requests.
Here the loop hands a write's name and arguments (rows it has already validated) to a
child process that owns the write connection and its group commit, and awaits the answer.

Writes travel in groups over a socket pair that the event loop watches itself (no thread
of the parent's takes part). While two groups are with the child, the next collects in
the parent; the child builds each write from the backend's registry of named writes
(``_Database.write_ops``; a name outside it fails) and commits a group as one
transaction. It answers only after that commit: an answer means a durable write.

A child that dies (or cannot start) is replaced, and the writes it held are sent once
more, to the new one: event and session ids make a write idempotent. A write whose
second child dies too is answered ``Unavailable`` (503), stored or not. The child ends
when the parent closes its end of the socket, or dies.

The child opens its storage with ``opener(*open_args)``, a module-level function pickled
by reference, so this module imports nothing of the backend that uses it. Only
registrations and pushes from the event loop come here; every other write stays in the
parent's group commit, and the database's locks keep the two processes apart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import selectors
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.util import Finalize
from typing import Any, Protocol

from searchtrail._heap import settle_heap
from searchtrail.errors import SearchtrailError, Unavailable
from searchtrail.storage.sql._groupcommit import answer_futures, running_loop
from searchtrail.storage.sql.engine import DB_OUTAGES, unavailable
from searchtrail.storage.writestats import current as write_observer

__all__ = ["WriteTarget", "WriterProcess", "open_target"]
_START_TIMEOUT_SEC = 120
# Groups sent ahead of the child's answers: the next is there when a commit ends.
_IN_FLIGHT = 2
_FRAME = struct.Struct("!Q")  # each message: its length, then its pickle
_READY = b""  # the child's first message: its storage is open
_RECV = 1 << 18
_CLOSE_POLL_SEC = 0.2
_PATH = "writer_process"  # this write path's name in writestats' reports


class WriteTarget(Protocol):
    """What the child opens: it builds named writes and commits them as one group."""

    def run_write_group(
        self, items: list[tuple[str, tuple[Any, ...]]]
    ) -> list[tuple[Any, BaseException | None]]: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class _Write:
    op: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    retried: bool = False


@dataclass(eq=False)
class _Child:
    """One writer process and the parent's end of its socket."""

    process: BaseProcess
    sock: socket.socket
    ready: bool = False
    writing: bool = False  # the loop watches for room to send the rest of the outbox
    broken: bool = False  # a send failed: it takes nothing more, and its end is near
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    finalizer: Finalize | None = None

    def messages(self) -> list[bytes]:
        """The whole messages received so far, taken from the inbox."""
        found = []
        start, inbox = 0, self.inbox
        while len(inbox) - start >= _FRAME.size:
            (size,) = _FRAME.unpack_from(inbox, start)
            end = start + _FRAME.size + size
            if len(inbox) < end:
                break
            found.append(bytes(inbox[start + _FRAME.size : end]))
            start = end
        del inbox[:start]
        return found


class WriterProcess:
    """The parent's side: collects writes, sends them as groups, answers the futures.

    Its I/O runs in the event loop that awaits the writes (one loop at a time); ``start``
    and a ``close`` that cannot hand the work to that loop drive the same I/O themselves.
    """

    def __init__(
        self,
        opener: Callable[..., WriteTarget],
        open_args: tuple[Any, ...],
        *,
        max_group: int = 256,
    ) -> None:
        # The child's storage is opened from these alone: a setting its writes obey (the
        # cap a push is checked against) must be among them, or the child uses its default.
        self._opener = opener
        self._open_args = open_args
        self._max_group = max_group
        self._waiting: list[_Write] = []
        self._sent: deque[list[_Write]] = deque()  # with the child, in the order sent
        self._child: _Child | None = None
        self._dead: list[BaseProcess] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settled: asyncio.Future[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the child and wait until it answers.

        The server accepts connections only after this: otherwise its first requests would
        wait a second for the child to import, and a load generator that corrects for
        coordinated omission counts that second against hundreds of requests.
        """
        if self._closed:
            return
        child = self._child or self._spawn()
        self._drive(lambda: child.ready or self._child is not child, timeout=_START_TIMEOUT_SEC)
        if self._child is not child:
            raise Unavailable("the writer process could not be started")

    async def run(self, op: str, *args: Any) -> Any:
        """Commit the write named ``op`` (of the child's registry) built from ``args``."""
        if self._closed:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        write = _Write(op, args, loop.create_future())
        self._waiting.append(write)
        self._next()
        return await write.future

    def close(self) -> None:
        """Send and answer what was accepted, then end the child."""
        if self._closed:
            return
        self._closed = True
        try:
            loop = self._loop
            if loop is not None and loop.is_running() and running_loop() is not loop:
                self._all_answered_in(loop)
            if self._loop is not None or self._sent or self._waiting:
                # No loop watches the child (any more): this thread does the loop's part.
                self._unbind()
                self._drive(lambda: not self._sent and not self._waiting, timeout=None)
        finally:
            if self._child is not None:
                self._retire(self._child)
                self._child = None
            for process in self._dead:
                process.join()
            self._dead.clear()

    def _all_answered_in(self, loop: asyncio.AbstractEventLoop) -> None:
        """``close`` from another thread: the running loop answers what it holds, unless it
        stops first (it ends, or cancels us): then ``close`` takes over once it stopped."""
        answered = asyncio.run_coroutine_threadsafe(self._all_answered(), loop)
        while True:
            try:
                answered.result(timeout=_CLOSE_POLL_SEC)
                return
            except TimeoutError:
                if not loop.is_running():
                    answered.cancel()
                    return
            except CancelledError:
                while loop.is_running():
                    time.sleep(_CLOSE_POLL_SEC)
                return

    # -- the parent's I/O ------------------------------------------------------------

    def _spawn(self) -> _Child:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve,
            args=(theirs, self._opener, self._open_args),
            name="searchtrail-writer",
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        child = _Child(process, ours)
        # At interpreter exit multiprocessing joins its children; first close their input,
        # or a store never closed would keep its child (and the exit) waiting.
        child.finalizer = Finalize(child, ours.close, exitpriority=10)
        self._child = child
        if self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(ours, self._readable, child)
        return child

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the child from ``loop`` (the previous loop must have stopped)."""
        if self._loop is not None and self._loop.is_running():
            raise RuntimeError("the writer process serves one running event loop at a time")
        self._unbind()
        self._loop = loop
        child = self._child
        if child is not None and not child.process.is_alive():
            # It died while no loop watched it: take the answers it sent, then its end.
            child.broken = True
            child.sock.settimeout(_CLOSE_POLL_SEC)
            while self._child is child:
                self._readable(child)
        elif child is not None:
            loop.add_reader(child.sock, self._readable, child)
            if child.outbox:
                loop.add_writer(child.sock, self._writable, child)
                child.writing = True

    def _unbind(self) -> None:
        """Stop watching from the loop: from here on the caller drives the I/O (or binds)."""
        if self._child is not None:
            self._unwatch(self._child)
        self._loop = None

    def _unwatch(self, child: _Child) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(child.sock)
            loop.remove_writer(child.sock)
        child.writing = False

    def _drive(self, done: Callable[[], bool], *, timeout: float | None) -> None:
        """The loop's part, done in this thread until ``done()``: at start and at close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            child = self._child
            if child is None:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise Unavailable("the writer process did not answer")
            with selectors.DefaultSelector() as selector:
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if child.outbox else 0)
                selector.register(child.sock, wanted)
                for _key, events in selector.select(timeout=1.0):
                    # Answers first: a child that died may have answered before it did.
                    if events & selectors.EVENT_READ:
                        self._readable(child)
                    if events & selectors.EVENT_WRITE and self._child is child:
                        self._writable(child)

    def _send(self) -> None:
        group = self._waiting[: self._max_group]
        del self._waiting[: self._max_group]
        try:
            message = pickle.dumps([(w.op, w.args) for w in group], pickle.HIGHEST_PROTOCOL)
            child = self._child or self._spawn()
        except Exception as exc:
            refusal = Unavailable(f"the writer process could not take the writes: {exc!r}")
            answer_futures((w.future, refusal, None) for w in group)
            return
        self._sent.append(group)
        observer = write_observer()
        if observer is not None:
            observer.group(_PATH, len(group))
            observer.depth(_PATH, self._unanswered())
        child.outbox += _FRAME.pack(len(message))
        child.outbox += message
        self._writable(child)

    def _writable(self, child: _Child) -> None:
        try:
            sent = child.sock.send(child.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            # The child is gone or going. Its last answers may still be unread: the reader
            # takes them, then sees the end (which shutting down our side makes sure of),
            # and only the writes left unanswered go to a new child.
            sent = len(child.outbox)
            child.broken = True
            with suppress(OSError):
                child.sock.shutdown(socket.SHUT_WR)
        del child.outbox[:sent]
        loop = self._loop
        if loop is None or bool(child.outbox) is child.writing:
            return
        if child.outbox:
            loop.add_writer(child.sock, self._writable, child)
        else:
            loop.remove_writer(child.sock)
        child.writing = not child.writing

    def _readable(self, child: _Child) -> None:
        try:
            received = child.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            received = b""
        if not received:
            self._died(child)
            return
        child.inbox += received
        for message in child.messages():
            if message == _READY:
                child.ready = True
                continue
            group = self._sent.popleft()  # answers come in the order the groups went
            try:
                outcomes = pickle.loads(message)
            except Exception as exc:
                outcomes = RuntimeError(f"the writer process's answer was unreadable: {exc!r}")
            self._answered(group, outcomes)

    def _answered(self, group: list[_Write], outcomes: Any) -> None:
        if not isinstance(outcomes, list):  # the child could not run the group at all
            outcomes = [(False, outcomes)] * len(group)
        answer_futures(
            (w.future, None if ok else value, value if ok else None)
            for w, (ok, value) in zip(group, outcomes, strict=True)
        )
        self._next()
        observer = write_observer()
        if observer is not None:
            observer.depth(_PATH, self._unanswered())

    def _unanswered(self) -> int:
        """Writes accepted and not answered yet: waiting here, or with the child."""
        return len(self._waiting) + sum(len(group) for group in self._sent)

    def _died(self, child: _Child) -> None:
        """``child`` is gone: its writes go once more to a new one, or are refused."""
        if self._child is not child:
            return  # already replaced
        self._unwatch(child)
        self._child = None
        self._retire(child)
        again: list[_Write] = []
        refused: list[_Write] = []
        for group in self._sent:
            for write in group:
                (refused if write.retried else again).append(write)
                write.retried = True
        self._sent.clear()
        self._waiting[:0] = again
        answer_futures(
            (w.future, Unavailable("the writer process stopped twice; retry the request"), None)
            for w in refused
        )
        self._next()

    def _next(self) -> None:
        while self._waiting and len(self._sent) < _IN_FLIGHT:
            if self._child is not None and self._child.broken:
                break  # they go to its successor
            self._send()
        if not self._sent and not self._waiting:
            settled, self._settled = self._settled, None
            if settled is not None and not settled.done():
                settled.set_result(None)

    async def _all_answered(self) -> None:
        """``close`` from another thread: the loop answers what it holds, then lets go."""
        if self._sent or self._waiting:
            self._settled = asyncio.get_running_loop().create_future()
            await self._settled
        self._unbind()

    def _retire(self, child: _Child) -> None:
        """Close our end: the child finishes what it holds, sees the end and exits."""
        if child.finalizer is not None:
            child.finalizer()
        self._dead.append(child.process)


# -- the child ----------------------------------------------------------------------


def _serve(
    sock: socket.socket, opener: Callable[..., WriteTarget], open_args: tuple[Any, ...]
) -> None:
    """The child's life: open the storage, then commit each group received, in order."""
    target = open_target(opener, open_args)
    try:
        with sock, sock.makefile("rb") as received:
            _reply(sock, _READY)
            while len(header := received.read(_FRAME.size)) == _FRAME.size:
                (size,) = _FRAME.unpack(header)
                if len(message := received.read(size)) < size:
                    break
                items = pickle.loads(message)
                try:
                    answer: Any = _run_group(target, items)
                except Exception as exc:
                    answer = _portable(exc)
                _reply(sock, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass  # the parent is gone; nothing it was not told of was committed after
    finally:
        target.close()


def _reply(sock: socket.socket, message: bytes) -> None:
    sock.sendall(_FRAME.pack(len(message)) + message)


def open_target(opener: Callable[..., WriteTarget], open_args: tuple[Any, ...]) -> WriteTarget:
    """The child's storage, in a process of searchtrail's own."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the parent
    # decides when the child ends, by closing its end of the socket or by dying.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    target = opener(*open_args)
    settle_heap()  # a process of searchtrail's own, as serve's workers are
    return target


def _run_group(
    target: WriteTarget, items: list[tuple[str, tuple[Any, ...]]]
) -> list[tuple[bool, Any]]:
    return [
        (True, result) if error is None else (False, _portable(error))
        for result, error in target.run_write_group(items)
    ]


def _portable(error: BaseException) -> BaseException:
    """An error the parent can unpickle and the HTTP layer can shape."""
    if isinstance(error, SearchtrailError):
        return error
    if isinstance(error, DB_OUTAGES):
        return unavailable(error)
    return RuntimeError(f"{type(error).__name__}: {error}")
