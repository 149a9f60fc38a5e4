"""Measure the Tracker: time it adds to the caller per ``track_event``, and events/second sent.

    .venv/bin/python bench/tracker.py            # starts `searchtrail serve` on a temp SQLite file
    .venv/bin/python bench/tracker.py --url http://127.0.0.1:8000   # or uses a running one

Caller time is taken call by call with ``time.perf_counter_ns`` after a warm-up, while the
worker thread is busy sending to the server, so it includes that contention. Throughput is
from the first ``track_event`` to ``flush()`` returning with every event acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from searchtrail import AsyncTracker, Tracker


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        db = Path(tmp) / "bench.db"
        cmd = [
            sys.executable,
            "-m",
            "searchtrail.cli",
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{db}",
            "--log-level",
            "warning",
        ]
        proc = subprocess.Popen(cmd)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


def caller_time(url: str, calls: int, warmup: int) -> list[int]:
    """Nanoseconds per track_event call, one sample per call."""
    samples = [0] * calls
    clock = time.perf_counter_ns
    with Tracker(url, max_queue=calls + warmup + 10) as tracker:
        session = tracker.track_session(search_query="bench", search_results=["a", "b", "c"])
        track = tracker.track_event
        for _ in range(warmup):
            track(session, "a")
        for i in range(calls):
            t0 = clock()
            track(session, "b", "click")
            samples[i] = clock() - t0
        tracker.flush()
        stats = tracker.stats()
        assert stats.dropped == 0 and stats.rejected == 0, stats
    return samples


def async_caller_time(url: str, calls: int, warmup: int) -> list[int]:
    """The same for AsyncTracker, called from a coroutine while its task sends."""

    async def run() -> list[int]:
        samples = [0] * calls
        clock = time.perf_counter_ns
        async with AsyncTracker(url, max_queue=calls + warmup + 10) as tracker:
            session = tracker.track_session(search_query="bench", search_results=["a", "b"])
            track = tracker.track_event
            for i in range(warmup):
                track(session, "a")
                if i % 1000 == 0:
                    await asyncio.sleep(0)  # let the task send, as a server's handlers would
            for i in range(calls):
                t0 = clock()
                track(session, "b", "click")
                samples[i] = clock() - t0
                if i % 1000 == 0:
                    await asyncio.sleep(0)
            assert await tracker.flush()
            stats = tracker.stats()
            assert stats.dropped == 0 and stats.rejected == 0, stats
        return samples

    return asyncio.run(run())


def report(what: str, ns: list[int], warmup: int) -> None:
    ns = sorted(ns)
    q = statistics.quantiles(ns, n=1000)
    print(f"{what} caller time over {len(ns)} calls (after {warmup} warm-up):")
    print(
        f"  median {statistics.median(ns) / 1000:.2f} us, p99 {q[989] / 1000:.2f} us, "
        f"p99.9 {q[998] / 1000:.2f} us, max {ns[-1] / 1000:.1f} us"
    )


def throughput(url: str, sessions: int, per_session: int) -> tuple[float, float]:
    """(events/s, seconds) for sessions x per_session events, queued then sent in full."""
    with Tracker(url, max_queue=sessions * (per_session + 1) + 10) as tracker:
        start = time.perf_counter()
        for _ in range(sessions):
            s = tracker.track_session(search_query="q", search_results=["a", "b", "c"])
            for _ in range(per_session):
                tracker.track_event(s, "a")
        assert tracker.flush()
        elapsed = time.perf_counter() - start
        stats = tracker.stats()
        total = sessions * per_session
        assert stats.events_sent == total and stats.rejected == 0, stats
    return total / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running searchtrail serve; default: start one")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--per-session", type=int, default=500)
    parser.add_argument("--small-sessions", type=int, default=500, help="sessions of 5 events")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(local_server())
        report("Tracker.track_event", caller_time(url, args.calls, args.warmup), args.warmup)
        ns = async_caller_time(url, args.calls, args.warmup)
        report("AsyncTracker.track_event", ns, args.warmup)
        shapes = [(args.sessions, args.per_session), (args.small_sessions, 5)]
        for sessions, per_session in shapes:
            rate, secs = throughput(url, sessions, per_session)
            print(
                f"sustained: {sessions} sessions x {per_session} events "
                f"sent in {secs:.2f} s = {rate:,.0f} events/s"
            )


if __name__ == "__main__":
    main()
