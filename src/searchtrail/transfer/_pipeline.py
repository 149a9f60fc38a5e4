"""The own dump's JSONL lines, read and validated ahead of the importer's writes.

``validated_chunks`` answers each chunk of a table's lines (line number, bytes as read)
with its fast validation (``_validation.FastAdapters``): the valid rows shaped as plain
tuples (``SESSION_FIELDS``, ``EVENT_FIELDS``), or None when the chunk was refused and
goes the records' way, line by line.

Why ahead, in a thread: the drivers release the GIL while the database stores a chunk,
and reading and validating the next one needs it; one after the other, each waited for
the other. Invariants: at most ``AHEAD`` chunks wait, so memory stays flat; chunks come
in file order; a failure of the reader is raised in the importer, and the reader stops
when the importer does.

A large file is read and validated in a child process (``python -m
searchtrail.transfer._pipeline``), which hands the same chunks over a pipe, pickled:
validation holds the GIL for a whole chunk, and in a thread it kept the importer from
its next statement while the database stored nothing. The thread then only unpickles.
The child is started fresh (no fork of a process holding database connections), and is
killed when the importer stops early. Small files (the tests', an API-sized dump) stay
in the thread: starting a Python costs more than validating them.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from searchtrail.limits import Limits
from searchtrail.transfer._validation import fast_adapters, fast_validate

__all__ = ["EVENT_FIELDS", "SESSION_FIELDS", "Chunk", "validated_chunks"]

# Chunks read and validated ahead of the one being written.
AHEAD = 2
# Files from this size on are validated in a child process (see the module docstring).
PROCESS_BYTES = 8 * 2**20
SESSION_FIELDS = (
    "session_number",
    "session_id",
    "batch_id",
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "user_id",
    "created_at_ms",
    "created_at_given",
    "is_irrelevant",
    "registered_at_ms",
    "extra",
)
EVENT_FIELDS = (
    "session_id",
    "id",
    "event_id",
    "object_id",
    "event_type",
    "created_at_ms",
    "meta",
    "extra",
    "session_number",
)
Lines = list[tuple[int, bytes]]
Chunk = tuple[Lines, list[tuple[Any, ...]] | None]


def line_chunks(path: Path, size: int) -> Iterator[Lines]:
    """The file's non-blank lines (line number, bytes), ``size`` at a time; line 1 is the
    first (blank lines are skipped, as the records' reader skips them)."""
    with path.open("rb") as f:
        chunk: Lines = []
        for line, raw in enumerate(f, start=1):
            if raw.strip():
                chunk.append((line, raw))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


def _validator(table: str, limits: Limits) -> Callable[[Lines], list[tuple[Any, ...]] | None]:
    adapters = fast_adapters(limits)
    session_fields = attrgetter(*SESSION_FIELDS)
    event_fields = itemgetter(*EVENT_FIELDS)
    if table == "sessions":

        def sessions(part: Lines) -> list[tuple[Any, ...]] | None:
            valid = fast_validate(adapters.sessions, [raw for _, raw in part])
            if valid is None:
                return None
            return list(map(session_fields, valid))

        return sessions

    def events(part: Lines) -> list[tuple[Any, ...]] | None:
        valid = fast_validate(adapters.events, [raw for _, raw in part])
        if valid is None:
            return None
        return list(map(event_fields, valid))

    return events


def validated_chunks(
    path: Path, table: str, size: int, limits: Limits, *, process: bool | None = None
) -> Iterator[Chunk]:
    """``path``'s chunks, each with its validation (see the module docstring); in a child
    process if ``process``, or when None, if the file is large."""
    if process is None:
        process = bool(sys.executable) and path.stat().st_size >= PROCESS_BYTES
    if process:
        return _ahead(lambda: _from_child(path, table, size, limits))
    check = _validator(table, limits)
    return _ahead(lambda: ((part, check(part)) for part in line_chunks(path, size)))


def _ahead(source: Callable[[], Iterator[Chunk]]) -> Iterator[Chunk]:
    """``source()``'s chunks, taken from it in a thread, at most ``AHEAD`` waiting."""
    out: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            items = source()
            with contextlib.closing(items):  # type: ignore[type-var]
                for item in items:
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            out.put(None)
        except BaseException as exc:  # handed to the importer, raised there
            out.put(exc)

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _from_child(path: Path, table: str, size: int, limits: Limits) -> Iterator[Chunk]:
    """The chunks as the child process validates them (``_child``)."""
    # stderr in a file: a pipe nobody reads until the end could fill and stop the child.
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(pickle.dumps((str(path), table, size, limits)))
            child.stdin.close()
            while (item := pickle.load(child.stdout)) is not None:
                yield item
        except (EOFError, pickle.UnpicklingError):  # the child ended before its None
            child.wait()
            errors.seek(0)
            # The traceback's last line: the exception and its message.
            why = errors.read().decode(errors="replace").strip().rpartition("\n")[2]
            raise RuntimeError(f"the import's reader of {path.name} failed: {why}") from None
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            child.stdout.close()


def _child() -> None:
    """The child's side of ``_from_child``: its arguments pickled on stdin, the chunks
    pickled on stdout, then None; a failure is a traceback on stderr and no None."""
    path, table, size, limits = pickle.load(sys.stdin.buffer)
    check = _validator(table, limits)
    out = sys.stdout.buffer
    for part in line_chunks(Path(path), size):
        pickle.dump((part, check(part)), out, protocol=pickle.HIGHEST_PROTOCOL)
    pickle.dump(None, out)
    out.flush()


if __name__ == "__main__":
    _child()
