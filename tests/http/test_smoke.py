from __future__ import annotations

from fastapi.testclient import TestClient


def test_register_push_read(client: TestClient) -> None:
    r = client.post("/session", json={"session_id": "s1", "search_query": "q"})
    assert r.status_code == 200, r.text
    r = client.post("/session/events", json={"session_id": "s1", "events": [{"event_id": "e1"}]})
    assert r.json() == {"session_id": "s1", "stored": 1, "duplicates": 0}
    body = client.get("/session", params={"session_id": "s1"}).json()
    assert [e["event_id"] for e in body["events"]] == ["e1"]
