"""``create_app(settings)``: the FastAPI application, built on demand, never at import."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

import searchtrail.http.telemetry as telemetry
from searchtrail import __version__
from searchtrail._heap import settle_heap
from searchtrail.errors import Unavailable
from searchtrail.http.auth import Limiters
from searchtrail.http.errors import install_error_handlers
from searchtrail.http.observe import REQUEST_ID_HEADER, RequestObserver
from searchtrail.http.openapi import install_openapi
from searchtrail.http.routers import (
    browser,
    clickmodels,
    dashboard,
    health,
    internal,
    keys,
    metrics,
    prometheus,
    sessions,
)
from searchtrail.models import PruneSummary
from searchtrail.paths import CLIENT_PREFIX, INTERNAL_PREFIX
from searchtrail.ratelimit import RateLimiter
from searchtrail.service import Clickstream
from searchtrail.settings import Settings
from searchtrail.timestamps import now_ms

__all__ = ["CLIENT_PREFIX", "INTERNAL_PREFIX", "create_app", "create_app_from_env"]

log = logging.getLogger("searchtrail")
S = TypeVar("S")

# Sessions a background refresh recomputes per thread hop: between two, shutdown may
# cancel it, so a large backlog (the first refresh after an upgrade) never holds it long.
_REFRESH_STEP = 5_000
# serve's partition upkeep (maintain_partitions_forever): hourly, as docs/postgresql.md says.
_PARTITIONS_EVERY_S = 3600.0


async def refresh_metrics_forever(cs: Clickstream, every_s: float, stop: asyncio.Event) -> None:
    """Bring the metrics' per-session stats up to date every ``every_s`` seconds, until
    ``stop`` is set.

    Every worker process of ``serve`` runs this: a refresh is idempotent and optimistic
    (storage/sql/metrics.py), so two at once only repeat work. A refresh runs in a thread,
    ``_REFRESH_STEP`` sessions at a time (see ``_every`` for the rest).
    """

    async def step() -> int:
        return await anyio.to_thread.run_sync(cs.refresh_metrics, _REFRESH_STEP)

    await _every(every_s, stop, step, lambda n: n == _REFRESH_STEP, "metrics", "refresh")


# Prune chunks (storage/sql/privacy.py) per thread hop: shutdown waits for these at most.
_PRUNE_STEP = 5


async def prune_forever(cs: Clickstream, every_s: float, stop: asyncio.Event) -> None:
    """Remove the sessions past ``retention_days`` every ``every_s`` seconds, until
    ``stop`` is set.

    Every worker process of ``serve`` runs this: two pruners take turns chunk by chunk
    (storage/sql/privacy.py), each chunk read after the other's commit, so a session is
    removed and counted once. A prune runs in a thread, ``_PRUNE_STEP`` chunks at a time.
    """

    async def step() -> PruneSummary:
        prune = partial(cs.prune, path="background", max_chunks=_PRUNE_STEP)
        return await anyio.to_thread.run_sync(prune)

    await _every(every_s, stop, step, lambda s: s.more, "retention", "prune")


async def _every(
    every_s: float,
    stop: asyncio.Event,
    step: Callable[[], Awaitable[S]],
    more: Callable[[S], bool],
    topic: str,
    what: str,
) -> None:
    """Run ``step`` every ``every_s`` seconds, and again at once while ``more`` of its
    answer, until ``stop`` is set.

    The first wait is drawn from [0.5, 1.5) times the period so that workers started
    together drift apart. A failure (the database locked or gone: ``Unavailable``) is
    logged and retried at the next period. ``stop`` is seen between steps, so shutdown
    waits at most for one step and the storage is never closed under a running one.
    """
    delay = every_s * random.uniform(0.5, 1.5)
    while not await _set_within(stop, delay):
        delay = every_s
        try:
            steps = 0
            while not stop.is_set():
                answer = await step()
                steps += 1
                if not more(answer):
                    break
            log.debug("%s: %s done in %d steps", topic, what, steps)
        except Unavailable as exc:
            log.warning("%s: background %s failed, retrying in %g s: %s", topic, what, every_s, exc)
        except Exception:
            log.exception("%s: background %s failed, retrying in %g s", topic, what, every_s)


async def maintain_partitions_forever(cs: Clickstream, every_s: float, stop: asyncio.Event) -> None:
    """Create the coming months' partitions and move new sessions into the new month
    (PostgreSQL, storage/sql/partitions.py) every ``every_s`` seconds until ``stop``.
    Every worker of ``serve`` runs it; the job takes a lock and is idempotent. Without
    it, a server running past its next month's end would fill that month's partition
    with the month after's sessions, and retention could drop them only later."""

    async def step() -> list[str]:
        created = await anyio.to_thread.run_sync(cs.storage.ensure_partitions, now_ms())
        if created:
            log.info("partitions: created %s", ", ".join(created))
        return created

    await _every(every_s, stop, step, lambda _created: False, "partitions", "upkeep")


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        await event.wait()
    return event.is_set()


class _App(FastAPI):
    """The app, with ``RequestObserver`` around everything, Starlette's own error layer
    included: a 500 is counted and carries its request id too."""

    log_requests = False

    def build_middleware_stack(self) -> ASGIApp:
        return RequestObserver(super().build_middleware_stack(), log_requests=self.log_requests)


def create_app(
    settings: Settings | None = None,
    clickstream: Clickstream | None = None,
    *,
    own_process: bool = False,
) -> FastAPI:
    """Build the app; a ``clickstream`` passed in is used as is and left to the caller to close.

    ``own_process``: the process serves this app alone (``searchtrail serve``), so its
    start-up may tune the process-wide garbage collector (``settle_heap``) and, with
    ``writer=auto``, hand the hot writes to a writer process.
    """
    settings = settings or (clickstream.settings if clickstream else Settings())
    if own_process and settings.writer == "auto":
        settings = settings.model_copy(update={"writer": "process"})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = clickstream is None
        app.state.clickstream = clickstream or Clickstream(settings=settings)
        telemetry.install(app.state.clickstream)
        try:
            app.state.clickstream.storage.start_writer_process()
        except BaseException:
            if owned:
                app.state.clickstream.close()
            raise
        if own_process:
            settle_heap()
        refresher = None
        stop = asyncio.Event()
        if settings.metrics_refresh_s > 0:
            refresher = asyncio.create_task(
                refresh_metrics_forever(app.state.clickstream, settings.metrics_refresh_s, stop),
                name="searchtrail metrics refresh",
            )
        app.state.metrics_refresh = refresher
        pruner = None
        if settings.retention_days is not None and settings.retention_interval_s > 0:
            pruner = asyncio.create_task(
                prune_forever(app.state.clickstream, settings.retention_interval_s, stop),
                name="searchtrail retention",
            )
        app.state.retention = pruner
        upkeep = (
            asyncio.create_task(
                maintain_partitions_forever(app.state.clickstream, _PARTITIONS_EVERY_S, stop),
                name="searchtrail partitions",
            )
            if own_process
            else None
        )
        try:
            async with app.state.clickstream.storage.reads_on_loop():
                yield
        finally:
            # Each ends at once when waiting, or after the step running in its thread:
            # either way before the storage closes.
            stop.set()
            for task in (refresher, pruner, upkeep):
                if task is not None:
                    await task
            if owned:
                app.state.clickstream.close()
            if own_process:
                telemetry.forget_process()

    app = _App(
        title="searchtrail",
        version=__version__,
        description="Clickstream for search: sessions, events, batches, training data.",
        lifespan=lifespan,
    )
    app.log_requests = settings.log_format == "json"
    if clickstream is not None:
        app.state.clickstream = clickstream
        telemetry.install(clickstream)
    app.state.limiters = Limiters(
        per_key=RateLimiter(settings.rate_limit_per_sec, settings.rate_limit_burst),
        per_ip=RateLimiter(
            settings.anonymous_rate_limit_per_sec, settings.anonymous_rate_limit_burst
        ),
    )
    install_error_handlers(app)
    install_openapi(app)
    if settings.cors_origins:
        # No credentials: keys travel in headers or the URL, never in cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
            allow_credentials=False,
            max_age=3600,
        )
    app.include_router(health.router)
    app.include_router(prometheus.router)
    for prefix in ("", CLIENT_PREFIX):
        app.include_router(sessions.router, prefix=prefix)
        app.include_router(browser.router, prefix=prefix)
    if settings.browser_prefix:
        app.include_router(sessions.ingest_router, prefix=settings.browser_prefix)
        app.include_router(browser.router, prefix=settings.browser_prefix)
    app.include_router(internal.router, prefix=INTERNAL_PREFIX)
    app.include_router(keys.router, prefix=INTERNAL_PREFIX)
    app.include_router(metrics.router, prefix=INTERNAL_PREFIX)
    app.include_router(clickmodels.router, prefix=INTERNAL_PREFIX)
    app.include_router(dashboard.router)
    return app


def create_app_from_env() -> FastAPI:
    """The factory `searchtrail serve` hands uvicorn, so each worker builds its own app."""
    return create_app(Settings(), own_process=True)
