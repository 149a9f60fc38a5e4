"""Input one dialect would store and the other reject gets the same answer on both."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

NUL = "\u0000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"search_query": f"red{NUL}shoes"}, "search_query"),
        ({"search_query": {"text": f"a{NUL}"}}, "search_query"),
        ({"search_meta": {f"k{NUL}": 1}}, "search_meta"),
        ({"payload_filter": {"a": [f"{NUL}"]}}, "payload_filter"),
        ({"search_results": [{"object_id": "o", "meta": {"m": NUL}}]}, "search_results[0].meta"),
    ],
)
def test_a_nul_character_in_a_session_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    # PostgreSQL cannot store U+0000 in text or JSONB; SQLite could, but answers the same.
    r = client.post("/session", json={"session_id": "s1", **body})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["detail"]] == [field]
    assert "NUL" in r.json()["detail"][0]["msg"]
    assert client.get("/session", params={"session_id": "s1"}).status_code == 404


def test_a_nul_character_in_event_meta_is_422_and_stores_nothing(client: TestClient) -> None:
    client.post("/session", json={"session_id": "s1"})
    events = [{"event_id": "e1"}, {"event_id": "e2", "meta": {"note": f"x{NUL}"}}]
    r = client.post("/session/events", json={"session_id": "s1", "events": events})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["detail"]] == ["events[1].meta"]
    assert client.get("/session", params={"session_id": "s1"}).json()["events"] == []


# PostgreSQL's JSONB holds a number as numeric, which has no negative zero and writes
# 1e300 out in full: what it answers for those is numeric's form, on any JSONB column.
_JSONB_FORM = {"-0.0": "0.0", "1e300": "1" + "0" * 300}


@pytest.mark.parametrize("number", ["1.0", "-0.0", "12", "3.25", "1e300", "1180591620717411303424"])
def test_a_bare_number_as_the_query_comes_back_as_it_was_sent(
    client: TestClient, dialect: str, number: str
) -> None:
    """On SQLite a column declared JSON turned a bare number's text into a number: 1.0 came
    back as 1 and 2**70 rounded to 15 digits (``schema.JsonText``)."""
    body = f'{{"session_id": "s1", "search_query": {number}}}'
    r = client.post("/session", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    sent = json.loads(_JSONB_FORM.get(number, number) if dialect == "postgresql" else number)
    for answer in (r.json(), client.get("/session", params={"session_id": "s1"}).json()):
        got = answer["search_query"]
        assert (type(got), repr(got)) == (type(sent), repr(sent))
