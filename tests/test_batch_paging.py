"""GET /batch/sessions: keyset pages in session_number order, events capped per session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from searchtrail import Clickstream, Settings
from searchtrail.errors import BatchNotFound, InvalidInput
from searchtrail.http.app import INTERNAL_PREFIX, create_app
from searchtrail.timestamps import now_ms
from tests.bulk import bulk_sessions
from tests.support import sqlite_only

PAGE = f"{INTERNAL_PREFIX}/batch/sessions"


@contextmanager
def statements(cs: Clickstream) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the store sends while the block runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(cs.storage.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(cs.storage.engine, "before_cursor_execute", record)


@pytest.mark.slow  # 10,000 sessions; the paging rules run small in the fast set
def test_paging_a_released_batch_of_10000_sessions_returns_each_once_in_order(
    cs: Clickstream, client: TestClient
) -> None:
    bulk_sessions(cs, 10_000, prefix="s", chunk=5_000)
    batch_id = cs.release_batch("r1").batch_id
    cs.create_session(session_id="next-batch", search_query="q")
    expected = [f"s{i}" for i in range(10_000)]

    ids: list[str] = []
    numbers: list[int] = []
    after = 0
    while True:
        page = cs.batch_sessions(batch_id, after_number=after, limit=997, events_limit=1)
        if page.last_number is None:
            assert page.sessions == []
            break
        assert page.batch_id == batch_id
        assert page.last_number == page.sessions[-1].session_number
        for s in page.sessions:
            assert s.batch_id == batch_id
            assert len(s.events) <= 1
            ids.append(s.session_id)
            numbers.append(s.session_number or 0)
        after = page.last_number
    assert ids == expected
    assert numbers == sorted(set(numbers))

    over_http: list[str] = []
    after = 0
    while True:
        r = client.get(PAGE, params={"batch_id": batch_id, "after_number": after, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"batch_id", "last_number", "sessions"}
        if body["last_number"] is None:
            break
        over_http.extend(s["session_id"] for s in body["sessions"])
        after = body["last_number"]
    assert over_http == expected


def test_a_page_is_one_sessions_query_and_one_events_query_never_offset(
    cs: Clickstream,
) -> None:
    bulk_sessions(cs, 600)
    batch_id = cs.release_batch("r1").batch_id
    first = cs.batch_sessions(batch_id, limit=10)
    with statements(cs) as seen:
        page = cs.batch_sessions(batch_id, after_number=first.last_number or 0, limit=500)
    assert len(page.sessions) == 500
    assert sum(len(s.events) for s in page.sessions) > 0
    selects = [s for s, _ in seen if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in selects if "FROM events" in s]) == 1
    assert len(selects) <= 3  # batch exists, the sessions, their events
    for statement, parameters in seen:
        # SQLAlchemy spells SQLite's LIMIT as "LIMIT ? OFFSET ?"; the offset must stay 0.
        if "OFFSET" in statement.upper():
            assert statement.rstrip().upper().endswith("OFFSET ?")
            assert parameters[-1] == 0


def test_events_limit_caps_each_session_separately_oldest_first(cs: Clickstream) -> None:
    base = now_ms() - 60_000
    for sid, n in (("none", 0), ("three", 3), ("seven", 7)):
        cs.create_session(session_id=sid, search_query="q")
        if n:
            # Pushed newest first: the page must order by time, not by arrival.
            pushed = [{"event_id": f"e{i}", "created_at": base + i} for i in reversed(range(n))]
            cs.push_events(sid, pushed)
    batch_id = cs.list_batches()[0].batch_id
    page = cs.batch_sessions(batch_id, limit=10, events_limit=5)
    got = {s.session_id: [e.event_id for e in s.events] for s in page.sessions}
    assert got == {"none": [], "three": ["e0", "e1", "e2"], "seven": [f"e{i}" for i in range(5)]}
    empty = cs.batch_sessions(batch_id, limit=10, events_limit=0)
    assert [len(s.events) for s in empty.sessions] == [0, 0, 0]
    full = cs.get_session("seven")
    assert [e.event_id for e in full.events] == [f"e{i}" for i in range(7)]


def test_an_empty_page_has_a_null_last_number(cs: Clickstream, client: TestClient) -> None:
    number = cs.create_session(session_id="s1", search_query="q").session_number or 0
    batch_id = cs.list_batches()[0].batch_id
    r = client.get(PAGE, params={"batch_id": batch_id, "after_number": number})
    assert r.json() == {"batch_id": batch_id, "last_number": None, "sessions": []}
    # A collecting batch pages like any other.
    r = client.get(PAGE, params={"batch_id": batch_id})
    assert [s["session_id"] for s in r.json()["sessions"]] == ["s1"]
    assert r.json()["sessions"][0]["session_number"] == number


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"after_number": -1}, "after_number", "greater than or equal to 0"),
        ({"limit": 1001}, "limit", "at most 1000 (max_page_size)"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"events_limit": -1}, "events_limit", "greater than or equal to 0"),
        ({"events_limit": 1001}, "events_limit", "at most 1000 (max_events_limit)"),
        ({"limit": "ten"}, "query.limit", "integer"),
    ],
)
@sqlite_only  # query parameter validation, before any storage
def test_bad_paging_input_is_422_naming_the_parameter(
    cs: Clickstream, client: TestClient, params: dict[str, Any], field: str, words: str
) -> None:
    cs.create_session(session_id="s1", search_query="q")
    r = client.get(PAGE, params={"batch_id": 1, **params})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["field"] == field
    assert words in error["msg"]


def test_an_unknown_or_missing_batch_is_a_clear_4xx(cs: Clickstream, client: TestClient) -> None:
    r = client.get(PAGE, params={"batch_id": 999})
    assert (r.status_code, r.json()["detail"]) == (404, "Batch with id=999 not found")
    with pytest.raises(BatchNotFound):
        cs.batch_sessions(999)
    r = client.get(PAGE)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.batch_id"


def test_the_page_size_maximum_is_a_setting(database_url: str) -> None:
    settings = Settings(database_url=database_url, max_page_size=5, max_events_limit=2)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        cs.create_session(session_id="s1", search_query="q")
        assert client.get(PAGE, params={"batch_id": 1, "limit": 5}).status_code == 200
        r = client.get(PAGE, params={"batch_id": 1, "limit": 6})
        assert r.status_code == 422
        assert "at most 5 (max_page_size)" in r.json()["detail"][0]["msg"]
        with pytest.raises(InvalidInput, match="events_limit"):
            cs.batch_sessions(1, events_limit=3)
