"""``Tracker``: record sessions and events from a request handler without waiting on the network.

``track_session`` and ``track_event`` append to a bounded in-memory queue and return; one
background thread sends what accumulates, by count (``flush_at``) or every
``flush_interval`` seconds, retrying what may succeed later. A full queue drops and counts;
nothing is lost silently.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from searchtrail.client._calls import CLIENT_PREFIX, Call, Endpoints, ServerError
from searchtrail.client._tracking import Plan, TrackerCore, TrackerStats, TrackingFront
from searchtrail.client.sync import Client
from searchtrail.errors import SearchtrailError

__all__ = ["Tracker"]

log = logging.getLogger("searchtrail.client")


class _GiveUp(Exception):
    pass


class Tracker(TrackingFront):
    """Fire-and-forget clickstream for the hot path, flushed on ``close()`` and at exit.

    Events get an ``event_id`` when the caller gives none, so a resend after a lost answer
    is a duplicate the server ignores, never a second click. Sessions get a ``session_id``
    the same way; both calls return the id. Timestamps default to the time of the call.
    """

    _wake: threading.Event

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        prefix: str = CLIENT_PREFIX,
        headers: Mapping[str, str] | None = None,
        max_queue: int = 100_000,
        flush_at: int = 500,
        flush_interval: float = 0.5,
        max_events_per_push: int = 1000,
        max_batch: int = 10_000,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
        max_retries: int = 5,
        close_timeout: float = 10.0,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._client = Client(base_url, api_key, timeout=timeout, prefix=prefix, headers=headers)
        core = TrackerCore(
            Endpoints(prefix, None),
            max_queue=max_queue,
            flush_at=flush_at,
            max_events_per_push=max_events_per_push,
            max_batch=max_batch,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retries=max_retries,
        )
        self.flush_interval = flush_interval
        self.close_timeout = close_timeout
        self._bind(core, max_queue, flush_at)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._deadline: float | None = None
        self._lanes: queue.SimpleQueue[Plan | None] = queue.SimpleQueue()
        self._finished = threading.Semaphore(0)
        self._gave_up = False
        # Own threads rather than an executor: an executor refuses work once the
        # interpreter starts exiting, which is exactly when atexit must still send.
        self._helpers = [
            threading.Thread(target=self._helper, name="searchtrail-tracker-lane", daemon=True)
            for _ in range(concurrency - 1)
        ]
        for helper in self._helpers:
            helper.start()
        self._thread = threading.Thread(target=self._run, name="searchtrail-tracker", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # -- control ------------------------------------------------------------------

    def stats(self) -> TrackerStats:
        return self._core.stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far and wait for it; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._wake.set()
            while not self._core.idle():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not self._thread.is_alive():
                    return self._core.idle()
                self._idle.wait(0.05 if left is None else min(left, 0.05))
        return True

    def close(self, timeout: float | None = None) -> TrackerStats:
        """Stop taking items, send what is queued within ``timeout`` seconds, give up the rest."""
        atexit.unregister(self._at_exit)
        if not self._core.closed:
            wait = self.close_timeout if timeout is None else timeout
            self._deadline = time.monotonic() + wait
            self._core.closed = True
            self._stop.set()
            self._wake.set()
            self._thread.join(wait + 1.0)
            if self._thread.is_alive() or self._core.queue:
                # Stuck inside one request past the deadline, or an item appended by a
                # thread racing close(): not confirmed, so counted as unsent.
                self._core.give_up()
            self._client.close()
        self._core.report_drops()
        return self._core.stats()

    def _at_exit(self) -> None:
        self.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- worker -------------------------------------------------------------------

    def _run(self) -> None:
        core = self._core
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                closing = core.closed
                while core.queue:
                    self._round(core.lanes(core.take()))
                core.report_drops()
                with self._idle:
                    self._idle.notify_all()
                if closing:
                    return
        except _GiveUp:
            core.give_up()
        except BaseException:  # pragma: no cover - a bug; say so rather than die quietly
            log.exception("searchtrail tracker: the worker stopped")
            core.give_up()
        finally:
            for _ in self._helpers:
                self._lanes.put(None)
            with self._idle:
                self._idle.notify_all()

    def _round(self, lanes: list[Plan]) -> None:
        """Run a round's lanes, up to ``concurrency`` at once; return when all are done."""
        if not self._helpers or len(lanes) == 1:
            for lane in lanes:
                self._drive(lane)
            return
        self._gave_up = False
        for lane in lanes:
            self._lanes.put(lane)
        # This thread takes lanes too, so a round never waits on an idle helper.
        while True:
            try:
                mine = self._lanes.get_nowait()
            except queue.Empty:
                break
            if mine is not None:
                self._lane_done(mine)
        for _ in lanes:
            self._finished.acquire()
        if self._gave_up:
            raise _GiveUp

    def _lane_done(self, lane: Plan) -> None:
        try:
            self._drive(lane)
        except _GiveUp:
            self._gave_up = True
        finally:
            self._finished.release()

    def _helper(self) -> None:
        while (lane := self._lanes.get()) is not None:
            self._lane_done(lane)

    def _drive(self, plan: Plan) -> None:
        try:
            call = next(plan)
            while True:
                call = plan.send(self._send(call))
        except StopIteration:
            pass
        finally:
            plan.close()

    def _send(self, call: Call[Any]) -> object:
        """The answer, or the error that ends retrying; raises ``_GiveUp`` past the deadline."""
        core = self._core
        attempt = 0
        while True:
            try:
                return self._client.send(call)
            except SearchtrailError as exc:
                error = exc
            except Exception as exc:  # a bug, here or below: refuse the item, loudly
                log.exception("searchtrail tracker: sending %s %s failed", call.method, call.path)
                return ServerError(repr(exc), 0)
            attempt += 1
            if not core.retryable(error, attempt):
                return error
            delay = core.delay(attempt, error)
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    raise _GiveUp from error
                delay = min(delay, left)
            core.retried()
            core.report_drops()
            log.debug("searchtrail tracker: retrying in %.3fs after %r", delay, error)
            if self._deadline is None:
                self._stop.wait(delay)  # close() cuts it short, then the deadline bounds it
            else:
                time.sleep(delay)
