"""``AsyncTracker``: ``Tracker`` for asyncio code, with an asyncio task instead of a thread.

``track_session`` and ``track_event`` are plain (not ``async``) calls that append and
return; call them from the event loop's thread. The task starts at the first call.
There is no ``atexit`` here (no loop runs then): ``aclose()`` flushes, and so does the
task being cancelled when ``asyncio.run`` ends with the tracker still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from searchtrail.client._calls import CLIENT_PREFIX, Call, Endpoints, ServerError
from searchtrail.client._tracking import Plan, TrackerCore, TrackerStats, TrackingFront
from searchtrail.client.aio import AsyncClient
from searchtrail.errors import SearchtrailError

__all__ = ["AsyncTracker"]

log = logging.getLogger("searchtrail.client")


class _GiveUp(Exception):
    pass


class AsyncTracker(TrackingFront):
    """Fire-and-forget clickstream for asyncio handlers; see ``Tracker`` for the rules."""

    _wake: asyncio.Event

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
        self._client = AsyncClient(
            base_url, api_key, timeout=timeout, prefix=prefix, headers=headers
        )
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
        self._lazy_start = True
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._round_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deadline: float | None = None
        self._concurrency = concurrency
        self._active: dict[int, tuple[Plan, Call[Any] | None]] = {}

    # -- control ------------------------------------------------------------------

    def _start(self) -> None:
        self._lazy_start = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="searchtrail-async-tracker"
        )

    def stats(self) -> TrackerStats:
        return self._core.stats()

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far and wait for it; False if ``timeout`` ran out first."""

        async def idle() -> None:
            while not self._core.idle() and self._task is not None and not self._task.done():
                self._round_done.clear()
                self._wake.set()
                await self._round_done.wait()

        try:
            await asyncio.wait_for(idle(), timeout)
        except TimeoutError:
            return False
        return self._core.idle()

    async def aclose(self, timeout: float | None = None) -> TrackerStats:
        """Stop taking items, send what is queued within ``timeout`` seconds, give up the rest."""
        core = self._core
        if not core.closed:
            wait = self.close_timeout if timeout is None else timeout
            self._deadline = time.monotonic() + wait
            core.closed = True
            self._stop.set()
            self._wake.set()
            task = self._task
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), wait + 1.0)
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    core.give_up()
            await self._client.aclose()
        core.report_drops()
        return core.stats()

    async def __aenter__(self) -> AsyncTracker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- worker -------------------------------------------------------------------

    async def _run(self) -> None:
        core = self._core
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()
                closing = core.closed
                while core.queue:
                    await self._round(core.lanes(core.take()))
                core.report_drops()
                self._round_done.set()
                if closing:
                    return
        except _GiveUp:
            core.give_up()
        except asyncio.CancelledError:
            if not core.closed:
                await self._last_flush()
            raise
        except Exception:  # pragma: no cover - a bug; say so rather than die quietly
            log.exception("searchtrail tracker: the worker stopped")
            core.give_up()
        finally:
            self._round_done.set()

    async def _last_flush(self) -> None:
        """The loop is ending with the tracker open: finish the round and the queue, bounded."""
        core = self._core
        core.closed = True
        self._deadline = time.monotonic() + self.close_timeout
        try:
            interrupted = list(self._active.values())
            self._active.clear()
            await self._gather(interrupted)
            while core.queue:
                await self._round(core.lanes(core.take()))
        except _GiveUp:
            core.give_up()
        core.report_drops()
        await self._client.aclose()

    async def _round(self, lanes: list[Plan]) -> None:
        await self._gather([(lane, None) for lane in lanes])

    async def _gather(self, lanes: list[tuple[Plan, Call[Any] | None]]) -> None:
        """Run lanes up to ``concurrency`` at once; a give-up in one is raised after all end.

        Every lane sits in ``_active`` until it ends, with the call it is making (None
        before it starts), so a cancelled round can be picked up again by _last_flush.
        """
        limit = asyncio.Semaphore(self._concurrency)
        for plan, call in lanes:
            self._active[id(plan)] = (plan, call)

        async def one(plan: Plan, call: Call[Any] | None) -> None:
            async with limit:
                if call is None:
                    try:
                        call = next(plan)
                    except StopIteration:
                        del self._active[id(plan)]
                        return
                await self._continue(plan, call)

        outcomes = await asyncio.gather(*(one(p, c) for p, c in lanes), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _continue(self, plan: Plan, call: Call[Any]) -> None:
        key = id(plan)
        while True:
            self._active[key] = (plan, call)
            try:
                call = plan.send(await self._send(call))
            except StopIteration:
                del self._active[key]
                return

    async def _send(self, call: Call[Any]) -> object:
        core = self._core
        attempt = 0
        while True:
            try:
                return await self._client.send(call)
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                await asyncio.sleep(delay)
