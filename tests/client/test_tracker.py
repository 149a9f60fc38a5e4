"""``Tracker`` against real `searchtrail serve` processes: flushing, restarts, drops, refusals."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from searchtrail import Clickstream, Client, Tracker
from searchtrail.client._calls import ConnectionFailed, Endpoints
from searchtrail.client._tracking import TrackerCore
from searchtrail.errors import RateLimited, Unavailable
from tests.support import Server, clean_env, free_port, serve

# Small backoff so a test waits tens of milliseconds between retries, not seconds.
FAST = {"backoff_base": 0.02, "backoff_max": 0.2}
# Nothing leaves before close() or flush(): the tests decide when sending happens.
HOLD = {"flush_at": 1_000_000, "flush_interval": 3600.0}


def sid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll for a state the worker reaches; the bound only stops a broken test hanging."""
    deadline = time.monotonic() + 60
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def stored_events(database_url: str, session_id: str) -> list[str]:
    with Clickstream(database_url) as cs:
        return [e.event_id for e in cs.iter_session_events(session_id)]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_close_flushes_sessions_before_their_events(server: Server, concurrency: int) -> None:
    tracker = Tracker(server.url, concurrency=concurrency, **HOLD)
    ids = []
    for n in range(3):
        # Events are tracked before and after other sessions: each waits for its own.
        s = tracker.track_session(search_query=f"q{n}", search_results=["a", "b"], user_id="u")
        ids.append(s)
        for k in range(40):
            tracker.track_event(s, "a" if k % 2 else "b", "click", meta={"k": k})
    assert tracker.stats().events_sent == 0  # held until close
    stats = tracker.close()
    assert (stats.sessions_sent, stats.events_sent, stats.pending) == (3, 120, 0)
    assert (stats.dropped, stats.rejected, stats.unsent) == (0, 0, 0)
    with Client(server.url) as c:
        for s in ids:
            got = c.get_session(s)
            assert [r.object_id for r in got.search_results] == ["a", "b"]
            assert sorted(e.meta["k"] for e in got.events if e.meta) == list(range(40))


def test_flush_by_count_and_by_interval(server: Server) -> None:
    s = sid()
    with Tracker(server.url, flush_at=10, flush_interval=3600.0) as by_count:
        by_count.track_session(s)
        for _ in range(20):
            by_count.track_event(s)
        wait_until(lambda: by_count.stats().events_sent >= 10, "a flush by count")
    s2 = sid()
    with Tracker(server.url, flush_at=1_000_000, flush_interval=0.05) as by_time:
        by_time.track_session(s2)
        by_time.track_event(s2)
        wait_until(lambda: by_time.stats().events_sent == 1, "a flush by interval")


def test_ids_are_generated_once_and_explicit_ones_kept(server: Server) -> None:
    with Tracker(server.url, **HOLD) as tracker:
        s = tracker.track_session()
        ids = {tracker.track_event(s) for _ in range(100)}
        assert len(ids) == 100
        assert tracker.track_event(s, event_id="mine") == "mine"
        tracker.track_event(s, event_id="mine")  # a repeat is a duplicate, not a second click
        assert tracker.track_session("given") == "given"
        assert tracker.flush(timeout=60)
        assert tracker.stats().duplicates == 1
    with Client(server.url) as c:
        assert len(c.get_session(s, events_limit=10_000).events) == 101


@pytest.mark.slow  # starts `searchtrail serve` twice
def test_server_restarted_mid_stream_loses_and_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    sessions = [sid() for _ in range(10)]
    tracked: list[tuple[str, str]] = []

    def stream(tracker: Tracker, n: int) -> None:
        for i in range(n):
            s = sessions[i % len(sessions)]
            tracked.append((s, tracker.track_event(s)))

    with serve(database_url, tmp_path, port=port) as first:
        tracker = Tracker(first.url, flush_at=25, flush_interval=0.01, concurrency=4, **FAST)
        for s in sessions:
            tracker.track_session(s, search_query="q")
        stream(tracker, 200)
        wait_until(lambda: tracker.stats().events_sent > 0, "some events sent")
        stream(tracker, 200)
        first.kill(signal.SIGKILL)  # maybe mid-push: committed, answer lost
    stream(tracker, 200)
    wait_until(lambda: tracker.stats().retries > 0, "retries while the server is down")
    with serve(database_url, tmp_path, port=port):
        stream(tracker, 200)
        stats = tracker.close(timeout=60)
    assert (stats.unsent, stats.dropped, stats.rejected, stats.pending) == (0, 0, 0, 0)
    assert (stats.sessions_sent, stats.events_sent) == (10, 800)
    stored = [(s, e) for s in sessions for e in stored_events(database_url, s)]
    assert len(stored) == len(set(stored)) == 800
    assert set(stored) == set(tracked)


def test_503_is_retried_after_retry_after(server: Server, server_database_url: str) -> None:
    s = sid()
    with Client(server.url) as c:
        c.create_session(session_id=s)
    holder = sqlite3.connect(server_database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the writer is locked out: 503 Retry-After: 1
    tracker = Tracker(server.url, flush_at=1, **FAST)
    try:
        ids = [tracker.track_event(s) for _ in range(5)]
        wait_until(lambda: tracker.stats().retries > 0, "a retry after 503")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    stats = tracker.close(timeout=60)
    assert (stats.events_sent, stats.rejected, stats.unsent) == (5, 0, 0)
    assert sorted(stored_events(server_database_url, s)) == sorted(ids)


def test_full_queue_counts_and_reports_drops(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    s = sid()
    tracker = Tracker(server.url, max_queue=10, **HOLD)
    tracker.track_session(s)
    for _ in range(24):
        tracker.track_event(s)
    assert tracker.stats().dropped == 15
    assert tracker.stats().accepted == 10
    with caplog.at_level(logging.WARNING, logger="searchtrail.client"):
        stats = tracker.close()
    assert (stats.dropped, stats.events_sent) == (15, 9)
    assert any("dropped 15 items" in r.getMessage() for r in caplog.records)
    assert tracker.track_event(s) and tracker.stats().dropped == 16  # closed: counted too


def test_refusals_are_counted_with_the_reason_and_good_events_still_land(
    server: Server,
) -> None:
    good, bad = sid(), sid()
    tracker = Tracker(server.url, **HOLD, **FAST)
    tracker.track_session(good)
    ok = [tracker.track_event(good) for _ in range(7)]
    poison = tracker.track_event(good, meta="not an object")  # type: ignore[arg-type]
    ok += [tracker.track_event(good) for _ in range(8)]
    tracker.track_session(bad, created_at=1_000_000_000)  # 2001: outside the window
    tracker.track_event(bad)
    tracker.track_event("never-registered")
    stats = tracker.close()
    assert stats.rejected == 4 and stats.events_sent == 15 and stats.retries == 0
    by_id = {(r.session_id, r.event_id): r for r in stats.rejections}
    assert by_id[(good, poison)].status == 422 and "meta" in by_id[(good, poison)].reason
    assert by_id[(bad, None)].status == 400 and "created_at" in by_id[(bad, None)].reason
    [bad_event] = [r for r in stats.rejections if r.session_id == bad and r.event_id]
    assert bad_event.reason.startswith("its session was refused")
    [orphan] = [r for r in stats.rejections if r.session_id == "never-registered"]
    assert orphan.status == 404
    with Client(server.url) as c:
        assert sorted(e.event_id for e in c.iter_session_events(good)) == sorted(ok)


def test_a_push_too_large_for_the_server_is_split_not_refused(server: Server) -> None:
    s = sid()
    tracker = Tracker(server.url, **HOLD)
    tracker.track_session(s)
    for _ in range(1000):  # about 3 MB in one push; the server takes at most 2 MB
        tracker.track_event(s, meta={"text": "x" * 3000})
    stats = tracker.close()
    assert (stats.events_sent, stats.rejected) == (1000, 0)
    with Client(server.url) as c:
        assert len(c.get_session(s, events_limit=10_000).events) == 1000


def test_close_gives_up_after_its_timeout_and_counts_the_rest() -> None:
    tracker = Tracker(f"http://127.0.0.1:{free_port()}", timeout=1, **HOLD, **FAST)
    tracker.track_session("s1")
    for _ in range(5):
        tracker.track_event("s1")
    stats = tracker.close(timeout=0.3)
    assert (stats.unsent, stats.pending, stats.events_sent, stats.rejected) == (6, 0, 0, 0)


def test_unsent_at_exit_is_flushed_by_atexit(server: Server) -> None:
    s = sid()
    script = textwrap.dedent(
        """
        import sys
        from searchtrail import Tracker
        tracker = Tracker(sys.argv[1], flush_at=1_000_000, flush_interval=3600)
        tracker.track_session(sys.argv[2], search_query="q")
        for i in range(300):
            tracker.track_event(sys.argv[2], event_id=f"e{i}")
        # no close(): the interpreter exits with everything still queued
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, server.url, s],
        env=clean_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    with Client(server.url) as c:
        assert sorted(e.event_id for e in c.iter_session_events(s)) == sorted(
            f"e{i}" for i in range(300)
        )


def test_the_readme_example_runs_and_lands(server: Server) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("From a search backend", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0].replace("http://127.0.0.1:8000", server.url)
    done = subprocess.run(
        [sys.executable, "-c", code + "print(sid)\n"],
        env=clean_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    with Client(server.url) as c:
        got = c.get_session(done.stdout.decode().strip())
    assert [r.object_id for r in got.search_results] == ["sku-1", "sku-2"]
    assert [(e.object_id, e.event_type) for e in got.events] == [("sku-2", "click")]


def test_backoff_honours_retry_after_and_jitters_below_the_cap() -> None:
    core = TrackerCore(
        Endpoints("", None),
        max_queue=1,
        flush_at=1,
        max_events_per_push=1,
        max_batch=1,
        backoff_base=0.1,
        backoff_max=1.0,
        max_retries=3,
    )
    delays = [core.delay(a, ConnectionFailed("refused")) for a in range(1, 200)]
    assert all(0 <= d <= 1.0 for d in delays) and len(set(delays)) > 100
    assert all(core.delay(1, RateLimited("slow", 5)) >= 5 for _ in range(50))
    assert all(core.delay(1, Unavailable("locked")) >= 1 for _ in range(50))
