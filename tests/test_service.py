"""The library object, on a real SQLite file: the four operations and their rules."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from searchtrail import (
    Clickstream,
    InvalidInput,
    SessionConflict,
    SessionNotFound,
    Settings,
    TimestampOutOfWindow,
)
from searchtrail.errors import SearchtrailError, Unavailable
from searchtrail.service.observer import Observer, RefusalReason
from searchtrail.storage.sql._loopreads import SqliteLoopReader
from searchtrail.timestamps import now_ms
from tests.support import sqlite_only

RESULTS = [{"object_id": "a", "rank": 1}, {"object_id": "b", "rank": 2, "meta": {"price": 3}}]


def register(cs: Clickstream, session_id: str = "s1", **extra: Any) -> Any:
    fields = {"session_id": session_id, "search_query": "red shoes", "search_results": RESULTS}
    return cs.create_session({**fields, **extra})


def test_create_and_get(cs: Clickstream) -> None:
    created = register(cs, user_id="u1", search_meta={"page": 1})
    got = cs.get_session("s1")
    assert got == created
    assert got.search_query == "red shoes"
    assert [r.object_id for r in got.search_results] == ["a", "b"]
    assert got.search_results[1].meta == {"price": 3}
    assert got.user_id == "u1" and got.search_meta == {"page": 1}
    assert got.is_irrelevant is False and got.events == []
    assert got.created_at == got.created_at_ms // 1000
    assert abs(got.created_at_ms - now_ms()) < 60_000
    assert got.batch_id is not None and got.session_number is not None


def test_gets_from_the_loop_run_in_the_loop_on_sqlite_and_in_few_reader_threads_on_postgres(
    cs: Clickstream, dialect: str
) -> None:
    """On SQLite the hop to a thread and back cost more than the read (docs/performance.md);
    PostgreSQL's reads wait on the network, in the store's threads, not anyio's 40."""
    for i in range(20):
        register(cs, f"s{i}")
    cs.push_events("s3", [{"event_id": f"e{i}"} for i in range(10)])
    threads: set[str] = set()

    @event.listens_for(cs.storage.engine, "before_cursor_execute")
    def seen(*_: object) -> None:
        threads.add(threading.current_thread().name)

    async def main() -> list[str]:
        gets = [cs.get_session_async(f"s{i % 20}") for i in range(200)]
        return [s.session_id for s in await asyncio.gather(*gets)]

    assert asyncio.run(main()) == [f"s{i % 20}" for i in range(200)]
    if dialect == "sqlite":
        assert threads == {threading.current_thread().name}
    else:
        assert threads and all(t.startswith("searchtrail-read") for t in threads), threads
    assert asyncio.run(cs.get_session_async("s3")) == cs.get_session("s3")
    with pytest.raises(SessionNotFound):
        asyncio.run(cs.get_session_async("nope"))
    cs.close()
    with pytest.raises(Unavailable, match="closed"):
        asyncio.run(cs.get_session_async("s1"))


@sqlite_only  # PostgreSQL's gets always run in reader threads
def test_a_get_past_the_loops_budget_is_interrupted_and_read_whole_in_a_reader_thread(
    cs: Clickstream,
) -> None:
    register(cs, "big")
    events = [{"event_id": f"e{i:04}"} for i in range(400)]
    cs.push_events("big", events)
    reads: list[tuple[str, str]] = []

    @event.listens_for(cs.storage.engine, "after_cursor_execute")
    def done(*_: object) -> None:
        reads.append(("done", threading.current_thread().name))

    @event.listens_for(cs.storage.engine, "handle_error")
    def failed(ctx: Any) -> None:
        reads.append((str(ctx.original_exception), threading.current_thread().name))

    got = asyncio.run(cs.get_session_async("big", events_limit=10_000))
    assert [e.event_id for e in got.events] == [e["event_id"] for e in events]
    assert got == cs.get_session("big", events_limit=10_000)
    me = threading.current_thread().name
    assert reads[0] == ("interrupted", me)
    assert reads[1][0] == "done" and reads[1][1].startswith("searchtrail-read")
    # The loop's connection is fine after the interrupt.
    register(cs, "small")
    reads.clear()
    assert asyncio.run(cs.get_session_async("small")).session_id == "small"
    assert reads == [("done", me)]


@sqlite_only
def test_the_loops_reader_leaves_other_threads_and_real_errors_alone(cs: Clickstream) -> None:
    """Its one connection belongs to the first thread that reads; a database error that
    is not its budget's interrupt is the caller's, a 503."""
    reader = SqliteLoopReader(cs.storage.db.unbegun, text("SELECT :x"))
    elsewhere: list[object] = []
    other = threading.Thread(target=lambda: elsewhere.append(asyncio.run(reader.rows({"x": 2}))))
    assert asyncio.run(reader.rows({"x": 1})) == [(1,)]
    other.start()
    other.join()
    assert elsewhere == [None]
    broken = SqliteLoopReader(cs.storage.db.unbegun, text("SELECT * FROM no_such_table"))
    with pytest.raises(OperationalError, match="no such table"):
        asyncio.run(broken.rows({}))
    assert asyncio.run(reader.rows({"x": 3})) == [(3,)]
    reader.close()
    with pytest.raises(Unavailable, match="closed"):
        asyncio.run(reader.rows({"x": 4}))


@sqlite_only
def test_close_from_another_thread_waits_for_a_read_on_the_loop(cs: Clickstream) -> None:
    """As it waits for the reader threads' reads: it closed the connection under the read,
    which failed with a 500."""
    register(cs, "s1")
    closers: list[threading.Thread] = []

    @event.listens_for(cs.storage.engine, "after_cursor_execute")
    def close_meanwhile(*_: object) -> None:
        if not closers:
            closers.append(threading.Thread(target=cs.close))
            closers[0].start()
            closers[0].join(timeout=0.3)  # it waits for this read

    assert asyncio.run(cs.get_session_async("s1")).session_id == "s1"
    closers[0].join()
    with pytest.raises(Unavailable, match="closed"):
        asyncio.run(cs.get_session_async("s1"))


@sqlite_only
def test_the_loops_connection_does_not_go_back_to_the_pool_with_its_interrupt_armed(
    cs: Clickstream,
) -> None:
    """After a get past the budget, a blocking read on that connection was interrupted."""
    register(cs, "big")
    cs.push_events("big", [{"event_id": f"e{i:04}"} for i in range(400)])
    assert len(asyncio.run(cs.get_session_async("big", events_limit=400)).events) == 400
    assert cs.storage.db.loop_reader is not None
    cs.storage.db.loop_reader.close()
    assert len(cs.get_session("big", events_limit=400).events) == 400


def test_session_id_generated_when_omitted(cs: Clickstream) -> None:
    a = cs.create_session(search_query="q")
    b = cs.create_session(search_query="q")
    assert a.session_id and b.session_id and a.session_id != b.session_id
    assert cs.get_session(a.session_id).session_id == a.session_id


def test_structured_query_round_trips(cs: Clickstream) -> None:
    query = {"text": "shoes", "image": "https://x/y.png", "filters": [1, 2.5, None, True]}
    cs.create_session(session_id="s", search_query=query)
    assert cs.get_session("s").search_query == query


def test_created_at_keeps_milliseconds(cs: Clickstream) -> None:
    ms = now_ms() - 12_345
    cs.create_session(session_id="s", created_at=ms)
    assert cs.get_session("s").created_at_ms == ms
    cs.create_session(session_id="t", created_at=ms / 1000)
    assert cs.get_session("t").created_at_ms == ms


def test_replay_that_matches_answers_stored(cs: Clickstream) -> None:
    first = register(cs)
    again = register(cs)
    assert again == first
    assert again.created_at_ms == first.created_at_ms  # server time is not overwritten


def test_replay_with_given_created_at(cs: Clickstream) -> None:
    ms = now_ms() - 1000
    first = register(cs, created_at=ms)
    assert register(cs, created_at=ms) == first
    with pytest.raises(SessionConflict, match="created_at"):
        register(cs, created_at=ms - 5000)


def test_replay_that_contradicts_is_conflict(cs: Clickstream) -> None:
    register(cs)
    with pytest.raises(SessionConflict) as info:
        register(cs, search_query="blue shoes", user_id="u9")
    assert info.value.fields == ["search_query", "user_id"]
    assert cs.get_session("s1").search_query == "red shoes"


def test_push_counts_stored_and_duplicates(cs: Clickstream) -> None:
    register(cs)
    r = cs.push_events("s1", [{"event_id": "e1", "object_id": "a"}, {"event_id": "e1"}])
    assert (r.stored, r.duplicates) == (1, 1)
    r = cs.push_events("s1", [{"event_id": "e1"}, {"event_id": "e2", "event_type": "purchase"}])
    assert (r.stored, r.duplicates) == (1, 1)
    events = cs.get_session("s1").events
    assert [(e.event_id, e.event_type, e.object_id) for e in events] == [
        ("e1", "click", "a"),
        ("e2", "purchase", None),
    ]


def test_same_event_id_in_two_sessions_is_two_events(cs: Clickstream) -> None:
    register(cs, "s1")
    register(cs, "s2")
    assert cs.push_events("s1", [{"event_id": "e"}]).stored == 1
    assert cs.push_events("s2", [{"event_id": "e"}]).stored == 1


def test_events_in_time_order(cs: Clickstream) -> None:
    register(cs)
    now = now_ms()
    cs.push_events(
        "s1",
        [
            {"event_id": "late", "created_at": now - 1000},
            {"event_id": "early", "created_at": now - 5000},
            {"event_id": "middle", "created_at": (now - 3000) / 1000},
        ],
    )
    assert [e.event_id for e in cs.get_session("s1").events] == ["early", "middle", "late"]


def test_one_push_stores_events_in_its_order_and_each_event_id_once(cs: Clickstream) -> None:
    """Events of one time keep the push's order; a repeated id within a push is a duplicate."""
    register(cs)
    now = now_ms()
    metas = [None, {"price": 9.5, "tags": ["a", "b"]}, {"nested": {"x": [1, None]}}, None, {}]
    events = [{"event_id": f"e{i}", "created_at": now, "meta": m} for i, m in enumerate(metas)]
    result = cs.push_events("s1", [*events, {"event_id": "e2", "created_at": now}])
    assert (result.stored, result.duplicates) == (5, 1)
    stored = cs.get_session("s1").events
    assert [(e.event_id, e.meta) for e in stored] == [(f"e{i}", m) for i, m in enumerate(metas)]
    # No meta is SQL NULL, not a JSON null, whatever way the rows traveled to the database.
    with cs.storage.engine.connect() as conn:
        nulls = conn.execute(text("SELECT event_id FROM events WHERE meta IS NULL")).scalars()
        assert sorted(nulls) == ["e0", "e3"]


def test_seed_event_shape_name_and_no_id(cs: Clickstream) -> None:
    register(cs)
    iso = "2026-01-01T00:00:00Z"
    cs_wide = Clickstream(
        settings=cs.settings.model_copy(update={"time_max_delta_minus_sec": 10**9})
    )
    try:
        event = {"created_at": iso, "name": "add_to_cart"}
        assert cs_wide.push_events("s1", [event]).stored == 1
        assert cs_wide.push_events("s1", [event]).duplicates == 1  # a retry is a no-op
        (stored,) = cs_wide.get_session("s1").events
        assert stored.event_type == "add_to_cart"
        assert stored.event_id.startswith("auto-")
    finally:
        cs_wide.close()


def test_push_is_all_or_nothing(cs: Clickstream) -> None:
    register(cs)
    good = {"event_id": "ok"}
    with pytest.raises(InvalidInput) as info:
        cs.push_events("s1", [good, {"event_id": "bad", "created_at": "never"}])
    assert info.value.errors[0].field == "events[1].created_at"
    with pytest.raises(TimestampOutOfWindow) as window:
        cs.push_events("s1", [good, {"event_id": "old", "created_at": 1_000_000_000}])
    assert window.value.field == "events[1].created_at"
    assert cs.get_session("s1").events == []


def test_push_to_unknown_session(cs: Clickstream) -> None:
    with pytest.raises(SessionNotFound, match="Session with id=nope not found"):
        cs.push_events("nope", [{"event_id": "e"}])


def test_mark_irrelevant(cs: Clickstream) -> None:
    register(cs)
    cs.mark_irrelevant("s1")
    cs.mark_irrelevant("s1")  # idempotent
    assert cs.get_session("s1").is_irrelevant is True
    with pytest.raises(SessionNotFound):
        cs.mark_irrelevant("nope")


def test_get_unknown(cs: Clickstream) -> None:
    with pytest.raises(SessionNotFound):
        cs.get_session("nope")


def test_window_is_configurable(database_url: str) -> None:
    settings = Settings(
        database_url=database_url, time_max_delta_minus_sec=10, time_max_delta_plus_sec=0
    )
    with Clickstream(settings=settings) as cs:
        with pytest.raises(TimestampOutOfWindow, match="at most 10 s in the past"):
            cs.create_session(created_at=now_ms() - 60_000)
        with pytest.raises(TimestampOutOfWindow):
            cs.create_session(created_at=now_ms() + 60_000)


def test_data_survives_reopening(database_url: str) -> None:
    with Clickstream(database_url) as cs:
        register(cs)
        cs.push_events("s1", [{"event_id": "e1"}])
    with Clickstream(database_url) as cs:
        assert [e.event_id for e in cs.get_session("s1").events] == ["e1"]


def test_a_closed_clickstream_refuses_reads_and_writes(database_url: str) -> None:
    """A write after close() (or racing it) was committed on a connection opened for it,
    which nobody closed; now it is refused, and so is a read."""
    cs = Clickstream(database_url)
    cs.create_session(session_id="s1")
    cs.close()
    with pytest.raises(Unavailable, match="closed"):
        cs.create_session(session_id="s2")
    with pytest.raises(Unavailable, match="closed"):
        cs.get_session("s1")
    with Clickstream(database_url) as again:
        assert again.storage.count("sessions") == 1


class _Recorder(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def registered(self, created: bool, unknown_fields: int) -> None:
        self.seen.append(("registered", created, unknown_fields))

    def pushed(self, stored: int, duplicates: int, unknown_fields: int) -> None:
        self.seen.append(("pushed", stored, duplicates, unknown_fields))

    def refused(self, reason: RefusalReason, events: int) -> None:
        self.seen.append(("refused", reason, events))


def test_the_library_reports_each_outcome_to_its_observer(database_url: str) -> None:
    """The library's calls report as the HTTP path's do (tests/http/test_prometheus.py)."""
    with Clickstream(settings=Settings(database_url=database_url, max_events_per_session=3)) as cs:
        cs.observer = recorder = _Recorder()
        cs.create_session(session_id="s1")
        cs.create_session(session_id="s1")
        cs.create_session({"session_id": "s2", "typo": 1})
        cs.push_events("s1", [{"event_id": "a", "x_y": 1}, {"event_id": "b"}])
        cs.push_events("s1", [{"event_id": "a"}])
        failing: list[tuple[Any, ...]] = [
            ("nobody", [{"event_id": "a"}]),
            ("s1", [{"event_id": "c", "created_at": 1}, {"event_id": "d"}]),
            ("s1", [{"event_id": "c"}, {"event_id": "d"}]),
            ({"session_id": "s1", "events": [{"event_id": ""}, {}, {}]}, None),
        ]
        for request, events in failing:
            with pytest.raises(SearchtrailError):
                cs.push_events(request, events)
    assert recorder.seen == [
        ("registered", True, 0),
        ("registered", False, 0),
        ("registered", True, 1),
        ("pushed", 2, 0, 1),
        ("pushed", 0, 1, 0),
        ("refused", "unknown_session", 1),
        ("refused", "timestamp_window", 2),
        ("refused", "over_cap", 2),
        ("refused", "invalid", 3),
    ]
