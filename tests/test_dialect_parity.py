"""Input one dialect would store and the other reject gets the same answer on both."""

from __future__ import annotations

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
