"""``AsyncTracker`` against real `searchtrail serve` processes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from searchtrail import AsyncTracker, Clickstream, Client
from tests.support import Server, free_port, serve

FAST = {"backoff_base": 0.02, "backoff_max": 0.2}
HOLD = {"flush_at": 1_000_000, "flush_interval": 3600.0}


def sid() -> str:
    return f"at-{uuid.uuid4().hex[:12]}"


async def until(predicate: object, what: str) -> None:
    assert callable(predicate)
    for _ in range(6000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_aclose_flushes(server: Server) -> None:
    async def main() -> tuple[str, list[str]]:
        tracker = AsyncTracker(server.url, **HOLD)
        s = tracker.track_session(search_query="q", search_results=["a", "b"])
        ids = [tracker.track_event(s, "a") for _ in range(50)]
        stats = await tracker.aclose()
        assert (stats.sessions_sent, stats.events_sent, stats.pending) == (1, 50, 0)
        assert (stats.dropped, stats.rejected, stats.unsent) == (0, 0, 0)
        return s, ids

    s, ids = asyncio.run(main())
    with Client(server.url) as c:
        assert sorted(e.event_id for e in c.iter_session_events(s)) == sorted(ids)


def test_loop_ending_without_aclose_still_flushes(server: Server) -> None:
    sessions = [sid() for _ in range(12)]

    async def main() -> None:
        tracker = AsyncTracker(server.url, concurrency=3, **HOLD)
        for s in sessions:
            tracker.track_session(s)
            for i in range(20):
                tracker.track_event(s, event_id=f"e{i}")
        tracker._wake.set()  # a round starts and is cut off mid-way
        await asyncio.sleep(0.01)
        # returns with the tracker open: asyncio.run cancels its task, which flushes

    asyncio.run(main())
    with Client(server.url) as c:
        assert [len(c.get_session(s).events) for s in sessions] == [20] * 12


def test_flush_by_count_drops_and_context_manager(server: Server) -> None:
    s = sid()

    async def main() -> None:
        async with AsyncTracker(server.url, flush_at=5, flush_interval=3600.0) as tracker:
            tracker.track_session(s)
            for _ in range(9):
                tracker.track_event(s)
            await until(lambda: tracker.stats().events_sent >= 4, "a flush by count")
            assert await tracker.flush(timeout=60)
            assert tracker.stats().events_sent == 9
        small = AsyncTracker(server.url, max_queue=3, **HOLD)
        for _ in range(10):
            small.track_event(s)
        assert small.stats().dropped == 7
        stats = await small.aclose()
        assert (stats.dropped, stats.events_sent) == (7, 3)

    asyncio.run(main())


@pytest.mark.slow  # starts `searchtrail serve`
def test_server_coming_up_late_loses_nothing(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    s = sid()

    async def main() -> list[str]:
        tracker = AsyncTracker(f"http://127.0.0.1:{port}", flush_at=10, **FAST)
        tracker.track_session(s)
        ids = [tracker.track_event(s) for _ in range(100)]
        await until(lambda: tracker.stats().retries > 0, "retries while nothing listens")
        with serve(database_url, tmp_path, port=port):
            ids += [tracker.track_event(s) for _ in range(100)]
            stats = await tracker.aclose(timeout=60)
        assert (stats.unsent, stats.rejected, stats.events_sent) == (0, 0, 200)
        return ids

    ids = asyncio.run(main())
    with Clickstream(database_url) as cs:
        stored = [e.event_id for e in cs.iter_session_events(s)]
    assert len(stored) == 200 and set(stored) == set(ids)
