"""The hot writes through a child process: answers, errors, crashes, shutdown."""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import pickle
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail._heap import YOUNG_GENERATION
from searchtrail.errors import (
    DatabaseLocked,
    FieldError,
    InvalidInput,
    SearchtrailError,
    SessionConflict,
    SessionNotFound,
    TimestampOutOfWindow,
    Unavailable,
)
from searchtrail.http import create_app
from searchtrail.storage.sql._writerprocess import open_target
from searchtrail.storage.sql.backend import open_writer_child
from tests.support import serve, sqlite_only


@pytest.fixture
def cs(database_url: str) -> Iterator[Clickstream]:
    settings = Settings(database_url=database_url, writer="process")
    with Clickstream(settings=settings) as clickstream:
        yield clickstream


def push_body(session_id: str, *event_ids: str) -> bytes:
    return json.dumps(
        {"session_id": session_id, "events": [{"event_id": e} for e in event_ids]}
    ).encode()


@contextmanager
def write_locked(database_url: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock, until it rolls back (or the end)."""
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        yield blocker


def the_child() -> multiprocessing.Process:
    children = multiprocessing.active_children()
    assert len(children) == 1, children
    return children[0]


def test_http_paths_answer_through_the_child(cs: Clickstream) -> None:
    with TestClient(create_app(clickstream=cs)) as client:
        r = client.post("/session", json={"session_id": "s1", "search_query": "q"})
        assert r.status_code == 200, r.text
        assert the_child().pid != os.getpid()
        replay = client.post("/session", json={"session_id": "s1", "search_query": "other"})
        assert replay.status_code == 409
        assert "search_query" in replay.json()["detail"]
        events = {"session_id": "s1", "events": [{"event_id": "e1"}, {"event_id": "e2"}]}
        assert client.post("/session/events", json=events).json()["stored"] == 2
        assert client.post("/session/events", json=events).json()["duplicates"] == 2
        missing = client.post("/session/events", json={**events, "session_id": "nope"})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Session with id=nope not found", "code": "not_found"}
    assert [e.event_id for e in cs.get_session("s1").events] == ["e1", "e2"]


def test_start_returns_once_the_child_has_loaded_the_store(database_url: str) -> None:
    """`serve` accepts connections only after this, so no first request waits for imports."""
    settings = Settings(database_url=database_url, writer="process")
    with Clickstream(settings=settings) as cs:
        cs.storage.start_writer_process()
        maps = Path(f"/proc/{the_child().pid}/maps").read_text()
        driver = "_sqlite3" if database_url.startswith("sqlite") else "psycopg_binary"
        assert driver in maps, "start() returned before the child imported the store"


def _heap_after_opening(url: str) -> tuple[int, int]:
    open_target(open_writer_child, (url, 1000, "FULL")).close()
    return gc.get_freeze_count(), gc.get_threshold()[0]


@pytest.mark.slow  # a second child, for the heap alone
def test_the_child_freezes_its_startup_heap(database_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
        frozen, young = child.submit(_heap_after_opening, database_url).result()
    assert frozen > 10_000
    assert young == YOUNG_GENERATION


def test_concurrent_writes_are_grouped_and_all_stored(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")

    async def main() -> list[int]:
        pushes = [
            cs.push_events_json_async(push_body("s1", f"a{i}", f"b{i}", "shared"))
            for i in range(200)
        ]
        return [r.stored for r in await asyncio.gather(*pushes)]

    stored = asyncio.run(main())
    assert sum(stored) == 401  # a0..a199, b0..b199, and "shared" once
    assert cs.storage.count("events") == 401


@pytest.mark.slow  # sixty ~1 MB pushes held behind a lock
@sqlite_only  # holds the child mid-write with SQLite's write lock
def test_a_group_larger_than_the_socket_buffer_is_sent_in_parts(
    cs: Clickstream, database_url: str
) -> None:
    """While the child waits for SQLite's lock, 60 pushes of ~1 MB collect into one group:
    the loop sends it as the child reads, without blocking and without losing a byte."""
    cs.create_session(session_id="s1")
    meta = {"text": "x" * 10_000}

    def body(i: int) -> bytes:
        events = [{"event_id": f"p{i}-{j}", "meta": meta} for j in range(100)]
        return json.dumps({"session_id": "s1", "events": events}).encode()

    async def main() -> list[int]:
        with write_locked(database_url) as blocker:
            pushes = [asyncio.ensure_future(cs.push_events_json_async(body(i))) for i in range(60)]
            await asyncio.sleep(0.5)
            blocker.execute("ROLLBACK")
        return [r.stored for r in await asyncio.wait_for(asyncio.gather(*pushes), 60)]

    assert asyncio.run(main()) == [100] * 60
    assert cs.storage.count("events") == 6000


def test_a_failing_write_leaves_its_group_whole(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")

    async def main() -> list[object]:
        pushes = [
            cs.push_events_json_async(push_body("s1" if i % 2 else "nope", f"e{i}"))
            for i in range(40)
        ]
        return await asyncio.gather(*pushes, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, SessionNotFound) for o in outcomes[0::2])
    assert all(getattr(o, "stored", None) == 1 for o in outcomes[1::2])
    assert cs.storage.count("events") == 20


@pytest.mark.slow  # kills a writer child and waits for its successor
def test_a_child_killed_while_idle_is_replaced_unnoticed(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")

    async def push(*ids: str) -> int:
        return (await cs.push_events_json_async(push_body("s1", *ids))).stored

    assert asyncio.run(push("e1")) == 1
    first = the_child()
    os.kill(first.pid, signal.SIGKILL)
    first.join(30)
    assert asyncio.run(push("e2")) == 1
    assert the_child().pid != first.pid
    assert cs.storage.count("events") == 2


def kill_child_once_replaced(previous: int | None) -> int:
    """SIGKILL the writer process once it is not ``previous``; answers its pid."""
    deadline = time.monotonic() + 30
    while True:
        children = [c for c in multiprocessing.active_children() if c.pid != previous]
        if children and children[0].pid is not None:
            os.kill(children[0].pid, signal.SIGKILL)
            return children[0].pid
        assert time.monotonic() < deadline, "no new writer process"
        time.sleep(0.05)


@pytest.mark.slow  # kills writer children mid-write
@sqlite_only  # holds the child mid-write with SQLite's write lock
@pytest.mark.parametrize("deaths", [1, 2])
def test_a_write_outlives_one_child_death_mid_write_not_two(
    cs: Clickstream, database_url: str, deaths: int
) -> None:
    cs.create_session(session_id="s1")

    async def main() -> None:
        with write_locked(database_url) as blocker:  # each child waits for SQLite's write lock
            write = asyncio.ensure_future(cs.push_events_json_async(push_body("s1", "w")))
            killed = None
            for _ in range(deaths):
                await asyncio.sleep(0.5)
                assert not write.done()
                killed = kill_child_once_replaced(killed)
            await asyncio.sleep(0.5)
            blocker.execute("ROLLBACK")
            if deaths == 1:
                assert (await asyncio.wait_for(write, 30)).stored == 1
            else:
                with pytest.raises(Unavailable):
                    await asyncio.wait_for(write, 30)
        assert (await cs.push_events_json_async(push_body("s1", "next"))).stored == 1

    asyncio.run(main())
    expected = ["next", "w"] if deaths == 1 else ["next"]
    assert sorted(e.event_id for e in cs.get_session("s1").events) == expected


@pytest.mark.parametrize("closer", ["another thread", "the loop's own thread"])
def test_close_commits_what_was_accepted_then_refuses(database_url: str, closer: str) -> None:
    """The lifespan closes from the loop's thread, which then cannot answer the writes:
    close itself waits for the child's answers."""
    settings = Settings(database_url=database_url, writer="process")
    cs = Clickstream(settings=settings)
    cs.create_session(session_id="s1")

    async def main() -> None:
        writes = [
            asyncio.ensure_future(cs.push_events_json_async(push_body("s1", f"e{i}")))
            for i in range(30)
        ]
        await asyncio.sleep(0)  # every write is handed over
        if closer == "another thread":
            await asyncio.get_running_loop().run_in_executor(None, cs.close)
        else:
            cs.close()
        stored = await asyncio.wait_for(asyncio.gather(*writes), 30)
        assert [w.stored for w in stored] == [1] * 30
        with pytest.raises(Unavailable):
            await cs.push_events_json_async(push_body("s1", "late"))

    asyncio.run(main())
    assert multiprocessing.active_children() == []
    with Clickstream(database_url) as again:
        assert again.storage.count("events") == 30


@pytest.mark.slow  # a close racing the end of the loop, with timed waits
@sqlite_only  # holds the child mid-write with SQLite's write lock
def test_close_from_another_thread_survives_the_loop_ending_first(database_url: str) -> None:
    """The loop ends (cancelling close's wait on it) while writes are with the child:
    close takes over, and the writes are committed, answered or not, and the child ends."""
    settings = Settings(database_url=database_url, writer="process")
    cs = Clickstream(settings=settings)
    cs.create_session(session_id="s1")
    failures: list[BaseException] = []

    def close() -> None:
        try:
            cs.close()
        except BaseException as exc:
            failures.append(exc)

    closer = threading.Thread(target=close)

    async def main() -> None:
        with write_locked(database_url) as blocker:
            writes = [
                asyncio.ensure_future(cs.push_events_json_async(push_body("s1", f"e{i}")))
                for i in range(5)
            ]
            await asyncio.sleep(0.3)  # handed over; the child waits for the lock
            closer.start()
            await asyncio.sleep(0.3)  # close waits on this loop
            blocker.execute("ROLLBACK")
        assert not any(w.done() for w in writes)
        # Returning now ends the loop, which cancels close's wait and the writes' tasks.

    asyncio.run(main())
    closer.join(60)
    assert not closer.is_alive() and failures == []
    assert multiprocessing.active_children() == []
    with Clickstream(database_url) as again:
        assert again.storage.count("events") == 5


@sqlite_only
def test_a_locked_database_is_a_503_from_the_child(database_url: str) -> None:
    settings = Settings(database_url=database_url, writer="process", sqlite_busy_timeout_ms=200)
    with Clickstream(settings=settings) as cs:
        cs.create_session(session_id="s1")

        async def main() -> None:
            with write_locked(database_url) as blocker:
                # Classified in the child, pickled as raised: the lock, not a bare outage.
                with pytest.raises(DatabaseLocked, match="database is locked"):
                    await cs.push_events_json_async(push_body("s1", "e1"))
                blocker.execute("ROLLBACK")
            assert (await cs.push_events_json_async(push_body("s1", "e1"))).stored == 1

        asyncio.run(main())


@pytest.mark.parametrize(
    "error",
    [
        SessionNotFound("s1"),
        SessionConflict("s1", ["search_query"]),
        TimestampOutOfWindow("created_at", 12, "within a day"),
        InvalidInput([FieldError("events[0].event_id", "too long", "string_too_long")]),
        Unavailable("locked"),
    ],
)
def test_domain_errors_cross_processes_as_raised(error: SearchtrailError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert again.body() == error.body() and vars(again) == vars(error)


@pytest.mark.slow  # starts `searchtrail serve`
def test_serve_writes_through_a_child_that_dies_with_it(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path) as server:
        assert httpx.post(f"{server.url}/session", json={"session_id": "s1"}).status_code == 200
        children = [
            int(c)
            for task in Path(f"/proc/{server.process.pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
        commands = [Path(f"/proc/{c}/cmdline").read_bytes() for c in children]
        assert sum(b"spawn_main" in c for c in commands) == 1, "one writer process"
        server.kill()  # SIGKILL: its children learn it from their closed input
        deadline = time.monotonic() + 30
        for child in children:
            while _state(child) not in ("gone", "Z"):
                assert time.monotonic() < deadline, f"{child} outlived serve"
                time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
