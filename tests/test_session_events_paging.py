"""Bounded sessions: GET /session answers a page of events with a cursor to the rest, and a
session holds at most max_events_per_session events (a push past it is a 409, whole).

Every test runs on SQLite and PostgreSQL; the cap is small here to keep them fast, except
in the one test of the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import AsyncClient, Clickstream, Client, Settings
from searchtrail.errors import InvalidInput, SessionFull
from searchtrail.timestamps import now_ms
from tests.support import serve

CAP = 250


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, max_events_per_session=CAP)


def stamps(n: int) -> list[int]:
    """Timestamps out of push order, with many ties: the answer's order is (time, push)."""
    base = now_ms() - 3_600_000
    return [base + (i * 7919) % 37 for i in range(n)]


def fill(cs: Clickstream, sid: str, n: int, start: int = 0) -> list[str]:
    """Push events e{start}..e{start+n-1}; answers their ids in the order a get answers."""
    times = stamps(start + n)[start:]
    evs = [{"event_id": f"e{start + i}", "created_at": t} for i, t in enumerate(times)]
    for at in range(0, n, 1000):
        result = cs.push_events(sid, evs[at : at + 1000])
        assert result.stored == len(evs[at : at + 1000])
    order = sorted(range(n), key=lambda i: (times[i], i))
    return [f"e{start + i}" for i in order]


def page_through(client: TestClient, sid: str, **params: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        query = {"session_id": sid, **params}
        if cursor is not None:
            query["events_after"] = cursor
        r = client.get("/session", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        yield body
        assert body["has_more_events"] is (body["events_cursor"] is not None)
        if body["events_cursor"] is None:
            return
        cursor = body["events_cursor"]


def event_ids(pages: Iterator[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for page in pages for e in page["events"]]


def test_a_full_session_answers_pages_and_refuses_one_more_event(
    cs: Clickstream, client: TestClient
) -> None:
    cs.create_session(session_id="s1")
    expected = fill(cs, "s1", CAP)

    first = client.get("/session", params={"session_id": "s1"}).json()
    assert len(first["events"]) == 100 and first["has_more_events"] is True
    assert first["events_cursor"]
    pages = list(page_through(client, "s1"))
    assert [len(p["events"]) for p in pages] == [100, 100, 50]
    assert event_ids(iter(pages)) == expected  # each once, in (created_at_ms, push) order
    assert pages[-1]["events_cursor"] is None

    more = {"session_id": "s1", "events": [{"event_id": "one-more"}]}
    r = client.post("/session/events", json=more)
    assert r.status_code == 409, r.text
    assert r.json() == {
        "detail": "session s1 holds 250 events; this push would add 1 new one, past "
        "max_events_per_session=250",
        "code": "session_full",
    }
    with pytest.raises(SessionFull) as refused:
        cs.push_events("s1", [{"event_id": "x"}, {"event_id": "y"}])
    assert (refused.value.held, refused.value.new, refused.value.cap) == (250, 2, CAP)
    everything = cs.get_session("s1", events_limit=10_000)
    assert len(everything.events) == CAP and not everything.has_more_events
    assert everything.events_cursor is None


def test_a_push_at_the_cap_is_judged_by_its_new_events(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")
    fill(cs, "s1", CAP - 5)
    # 5 known and 5 new: exactly up to the cap.
    half = [{"event_id": f"e{i}"} for i in range(CAP - 10, CAP - 5)]
    new = [{"event_id": f"n{i}"} for i in range(5)]
    result = cs.push_events("s1", half + new)
    assert (result.stored, result.duplicates) == (5, 5)
    # Duplicates alone still pass at the cap; one new event among them is refused whole.
    assert cs.push_events("s1", half + new).stored == 0
    with pytest.raises(SessionFull, match="would add 1 new one"):
        cs.push_events("s1", [*half, {"event_id": "n-last"}])
    assert len(list(cs.iter_session_events("s1", page_size=1000))) == CAP
    assert cs.storage.count("events") == CAP


def test_events_limit_zero_answers_the_session_and_a_cursor_to_its_events(
    cs: Clickstream, client: TestClient
) -> None:
    cs.create_session(session_id="empty")
    none = client.get("/session", params={"session_id": "empty", "events_limit": 0}).json()
    assert (none["events"], none["has_more_events"], none["events_cursor"]) == ([], False, None)

    cs.create_session(session_id="s1", search_query="q")
    expected = fill(cs, "s1", 30)
    zero = client.get("/session", params={"session_id": "s1", "events_limit": 0}).json()
    assert zero["search_query"] == "q" and zero["events"] == []
    assert zero["has_more_events"] is True and zero["events_cursor"]
    # The cursor of an empty page reads from where that page stood: nothing is skipped.
    rest = cs.get_session("s1", events_limit=30, events_after=zero["events_cursor"])
    assert [e.event_id for e in rest.events] == expected and rest.events_cursor is None
    mid = cs.get_session("s1", events_limit=10)
    again = cs.get_session("s1", events_limit=0, events_after=mid.events_cursor)
    after = cs.get_session("s1", events_limit=100, events_after=again.events_cursor)
    assert [e.event_id for e in after.events] == expected[10:]


def test_a_page_that_ends_with_the_last_event_says_there_are_no_more(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")
    expected = fill(cs, "s1", 20)
    first = cs.get_session("s1", events_limit=10)
    last = cs.get_session("s1", events_limit=10, events_after=first.events_cursor)
    assert [e.event_id for e in first.events + last.events] == expected
    assert last.has_more_events is False and last.events_cursor is None
    # A cursor past every event still answers the session, with no events.
    past = cs.get_session("s1", events_after="9223372036854775807.9223372036854775807")
    assert past.session_id == "s1" and past.events == [] and not past.has_more_events


def test_events_pushed_between_pages_are_read_once_if_after_the_cursor(
    cs: Clickstream, client: TestClient
) -> None:
    cs.create_session(session_id="s1")
    t = now_ms() - 60_000
    cs.push_events("s1", [{"event_id": f"a{i}", "created_at": t + i} for i in range(10)])
    first = cs.get_session("s1", events_limit=5)
    assert [e.event_id for e in first.events] == [f"a{i}" for i in range(5)]
    cs.push_events(
        "s1",
        [
            {"event_id": "before", "created_at": t},  # ties a0, stored later: after a0
            {"event_id": "tie", "created_at": t + 4},  # ties the cursor's event: after it
            {"event_id": "late", "created_at": t + 100},
            {"event_id": "a7", "created_at": t + 7},  # a duplicate: not stored again
        ],
    )
    rest = list(page_through(client, "s1", events_limit=3, events_after=first.events_cursor))
    read = [e.event_id for e in first.events] + event_ids(iter(rest))
    assert read == [*(f"a{i}" for i in range(5)), "tie", *(f"a{i}" for i in range(5, 10)), "late"]
    # What sorted before the cursor when it was pushed is in a read from the start.
    everything = [e.event_id for e in cs.iter_session_events("s1", page_size=4)]
    assert everything[:2] == ["a0", "before"] and sorted(everything) == sorted({*read, "before"})


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"events_limit": 10_001}, "events_limit", "at most 10000"),
        ({"events_limit": -1}, "events_limit", "greater than or equal to 0"),
        ({"events_limit": "many"}, "query.events_limit", "valid integer"),
        ({"events_after": "abc"}, "events_after", "events_cursor"),
        ({"events_after": "1.2.3"}, "events_after", "events_cursor"),
        ({"events_after": ""}, "events_after", "events_cursor"),
        ({"events_after": "1.-2"}, "events_after", "events_cursor"),
        ({"events_after": "99999999999999999999.1"}, "events_after", "events_cursor"),
    ],
)
def test_bad_paging_input_is_422_naming_the_parameter(
    cs: Clickstream, client: TestClient, params: dict[str, Any], field: str, words: str
) -> None:
    cs.create_session(session_id="s1")
    r = client.get("/session", params={"session_id": "s1", **params})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["field"] == field and words in error["msg"], error
    if field != "query.events_limit":
        with pytest.raises(InvalidInput, match=field):
            cs.get_session("s1", **params)


def test_the_default_cap_holds_ten_thousand_events(database_url: str) -> None:
    with Clickstream(database_url) as cs:
        assert cs.settings.max_events_per_session == 10_000
        cs.create_session(session_id="big")
        expected = fill(cs, "big", 10_000)
        with pytest.raises(SessionFull, match="holds 10,000 events"):
            cs.push_events("big", [{"event_id": "e0"}, {"event_id": "one-more"}])
        first = cs.get_session("big")
        assert len(first.events) == 100 and first.has_more_events
        read = [e.event_id for e in cs.iter_session_events("big", page_size=3000)]
        assert read == expected


@pytest.mark.slow  # starts `searchtrail serve`
def test_the_client_pages_through_a_full_session_under_serve(
    database_url: str, tmp_path: Path
) -> None:
    """The real server, its writer process enforcing the cap from the environment."""
    env = {"SEARCHTRAIL_MAX_EVENTS_PER_SESSION": "30"}
    with serve(database_url, tmp_path, env=env) as server, Client(server.url) as c:
        c.create_session(session_id="s1")
        assert c.push_events("s1", [{"event_id": f"e{i}"} for i in range(25)]).stored == 25
        with pytest.raises(SessionFull) as refused:
            c.push_events("s1", [{"event_id": f"e{i}"} for i in range(20, 31)])
        assert (refused.value.session_id, refused.value.held, refused.value.new) == ("s1", 25, 6)
        assert refused.value.cap == 30 and refused.value.status == 409
        result = c.push_events("s1", [{"event_id": f"e{i}"} for i in range(20, 30)])
        assert (result.stored, result.duplicates) == (5, 5)

        page = c.get_session("s1", events_limit=7)
        assert len(page.events) == 7 and page.has_more_events and page.events_cursor
        nxt = c.get_session("s1", events_limit=7, events_after=page.events_cursor)
        assert nxt.events[0].event_id == "e7"
        ids = [e.event_id for e in c.iter_session_events("s1", page_size=7)]
        assert ids == [f"e{i}" for i in range(30)]
        assert len(c.get_session("s1").events) == 30
        with pytest.raises(InvalidInput, match="events_after"):
            c.get_session("s1", events_after="nope")
        with pytest.raises(InvalidInput, match="page_size"):
            next(c.iter_session_events("s1", page_size=0))

        async def read_async() -> list[str]:
            async with AsyncClient(server.url) as ac:
                first = await ac.get_session("s1", events_limit=4)
                assert first.has_more_events
                return [e.event_id async for e in ac.iter_session_events("s1", page_size=4)]

        assert asyncio.run(read_async()) == ids
        log = server.log.read_text()
    assert "Traceback" not in log, log[-5000:]


def test_a_batch_page_says_which_sessions_have_more_events_and_where_they_start(
    cs: Clickstream,
) -> None:
    for sid, n in (("few", 3), ("many", 12), ("none", 0)):
        cs.create_session(session_id=sid)
        if n:
            fill(cs, sid, n)
    batch_id = cs.list_batches()[0].batch_id
    page = {s.session_id: s for s in cs.batch_sessions(batch_id, events_limit=5).sessions}
    assert not page["few"].has_more_events and page["few"].events_cursor is None
    assert not page["none"].has_more_events and page["none"].events == []
    many = page["many"]
    assert len(many.events) == 5 and many.has_more_events and many.events_cursor
    rest = cs.get_session("many", events_after=many.events_cursor)
    read = [e.event_id for e in many.events + rest.events]
    assert read == [e.event_id for e in cs.get_session("many").events]
    assert sorted(read) == sorted(f"e{i}" for i in range(12))
    zero = cs.batch_sessions(batch_id, events_limit=0).sessions
    assert [(s.session_id, s.has_more_events) for s in zero] == [
        ("few", True),
        ("many", True),
        ("none", False),
    ]
    assert len(cs.get_session("few", events_after=zero[0].events_cursor).events) == 3
