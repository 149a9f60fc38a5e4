"""Every client path of the contract, with and without the prefix, and every failure status."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from searchtrail.timestamps import now_ms
from tests.support import sqlite_only

pytestmark = sqlite_only  # paths, statuses and body parsing; their storage: tests/test_service.py


PREFIXES = ["", "/api/v1/clickstream"]


@pytest.fixture(params=PREFIXES, ids=["bare", "prefixed"])
def p(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def register(client: TestClient, p: str, session_id: str = "s1", **extra: Any) -> Any:
    body = {"session_id": session_id, "search_query": "q", "search_results": [{"object_id": "a"}]}
    r = client.post(f"{p}/session", json={**body, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_full_flow(client: TestClient, p: str) -> None:
    created = register(client, p)
    assert created["session_id"] == "s1" and created["events"] == []
    r = client.post(
        f"{p}/session/events",
        json={"session_id": "s1", "events": [{"event_id": "e1", "object_id": "a"}]},
    )
    assert r.status_code == 200
    assert r.json() == {"session_id": "s1", "stored": 1, "duplicates": 0}
    got = client.get(f"{p}/session", params={"session_id": "s1"})
    assert got.status_code == 200
    body = got.json()
    assert body["events"][0]["event_id"] == "e1"
    assert (
        isinstance(body["created_at"], int) and body["created_at"] == body["created_at_ms"] // 1000
    )
    assert isinstance(body["events"][0]["created_at"], int)
    r = client.post(f"{p}/session/irrelevant", json={"session_id": "s1"})
    assert r.status_code == 200
    assert client.get(f"{p}/session", params={"session_id": "s1"}).json()["is_irrelevant"] is True


def test_seed_examples(settings: Settings, p: str) -> None:
    """The two shapes shown in the original documentation (dated 2023, so a wide window)."""
    wide = settings.model_copy(update={"time_max_delta_minus_sec": 10**10})
    with Clickstream(settings=wide) as cs, TestClient(create_app(clickstream=cs)) as client:
        r = client.post(
            f"{p}/session", json={"session_id": "abc123", "created_at": "2023-01-01T00:00:00"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["created_at"] == 1_672_531_200
        payload = {
            "session_id": "abc123",
            "events": [{"created_at": "2023-01-01T00:00:00Z", "name": "click"}],
        }
        r = client.post(f"{p}/session/events", json=payload)
        assert r.status_code == 200, r.text
        assert client.post(f"{p}/session/events", json=payload).json()["duplicates"] == 1
        (event,) = client.get(f"{p}/session", params={"session_id": "abc123"}).json()["events"]
        assert event["event_type"] == "click" and event["created_at"] == 1_672_531_200


def test_timestamp_outside_window_is_400(client: TestClient, p: str) -> None:
    r = client.post(f"{p}/session", json={"session_id": "s", "created_at": 1_600_000_000})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid utc timestamp: 2020-09-13T12:26:40.000Z")
    assert "created_at" in r.json()["detail"] and r.json()["code"] == "invalid_timestamp"
    register(client, p)
    future = now_ms() + 3_600_000
    r = client.post(
        f"{p}/session/events",
        json={
            "session_id": "s1",
            "events": [{"event_id": "ok"}, {"event_id": "x", "created_at": future}],
        },
    )
    assert r.status_code == 400 and "events[1].created_at" in r.json()["detail"]
    assert client.get(f"{p}/session", params={"session_id": "s1"}).json()["events"] == []


@pytest.mark.parametrize("bad", [True, -1, "NaN", "tomorrow", {"t": 1}])
def test_malformed_timestamp_is_422(client: TestClient, p: str, bad: Any) -> None:
    r = client.post(f"{p}/session", json={"session_id": "s", "created_at": bad})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["detail"]] == ["created_at"]


def test_nan_literal_is_422(client: TestClient, p: str) -> None:
    r = client.post(f"{p}/session", content=b'{"session_id": "s", "created_at": NaN}')
    assert r.status_code == 422


def test_unknown_session(client: TestClient, p: str) -> None:
    for r in (
        client.get(f"{p}/session", params={"session_id": "nope"}),
        client.post(f"{p}/session/events", json={"session_id": "nope", "events": []}),
        client.post(f"{p}/session/irrelevant", json={"session_id": "nope"}),
    ):
        assert r.status_code == 404
        assert r.json() == {"detail": "Session with id=nope not found", "code": "not_found"}


def test_replay_and_conflict(client: TestClient, p: str) -> None:
    first = register(client, p)
    assert register(client, p) == first
    r = client.post(f"{p}/session", json={"session_id": "s1", "search_query": "other"})
    assert r.status_code == 409
    assert r.json()["code"] == "conflict" and "search_query" in r.json()["detail"]


def test_invalid_event_names_field_and_index(client: TestClient, p: str) -> None:
    register(client, p)
    events = [{"event_id": "ok"}, {"event_id": "ok2"}, {"event_id": "", "object_id": 5}]
    r = client.post(f"{p}/session/events", json={"session_id": "s1", "events": events})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["detail"]}
    assert fields == {"events[2].event_id", "events[2].object_id"}
    assert client.get(f"{p}/session", params={"session_id": "s1"}).json()["events"] == []


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b'{"session_id": "s1", "events": [}', b"\xff", b"[]", b"null"]
)
def test_malformed_json_is_422_never_500(client: TestClient, p: str, body: bytes) -> None:
    for path in ("/session", "/session/events", "/session/irrelevant"):
        r = client.post(f"{p}{path}", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (path, body, r.text)
        assert r.json()["code"] == "invalid_input"


def test_body_over_limit_is_413(client: TestClient, p: str) -> None:
    register(client, p)
    big = b'{"session_id": "s1", "events": [], "pad": "' + b"x" * 2_000_001 + b'"}'
    r = client.post(f"{p}/session/events", content=big)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    def chunks() -> Any:
        yield b'{"session_id": "s1", "events": ['
        for _ in range(3000):
            yield b'{"event_id": "' + b"e" * 1000 + b'"},'
        yield b"]}"

    r = client.post(f"{p}/session/events", content=chunks())  # no Content-Length
    assert r.status_code == 413


def test_too_many_events_is_422(client: TestClient, p: str) -> None:
    register(client, p)
    events = [{"event_id": str(i)} for i in range(1001)]
    r = client.post(f"{p}/session/events", json={"session_id": "s1", "events": events})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "events"
    assert "at most 1000" in r.json()["detail"][0]["msg"]


def test_get_without_session_id_is_422(client: TestClient, p: str) -> None:
    r = client.get(f"{p}/session")
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    assert r.json()["detail"][0]["field"] == "query.session_id"


def test_error_shape_is_one_shape(client: TestClient) -> None:
    """Pinned: every error is {"detail", "code"}; the 422 detail is a list of field errors."""
    assert client.get("/nowhere").json() == {"detail": "Not Found", "code": "not_found"}
    r = client.put("/session")
    assert r.status_code == 405 and r.json() == {
        "detail": "Method Not Allowed",
        "code": "method_not_allowed",
    }
    # Every method the path serves, not only the first route's (found by schemathesis).
    assert r.headers["allow"] == "GET, POST"
    assert client.put("/session/events").headers["allow"] == "POST"
    r = client.post("/session", json={"session_id": 1})
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "loc": ["session_id"],
                "field": "session_id",
                "msg": "Input should be a valid string",
                "type": "string_type",
            }
        ],
        "code": "invalid_input",
    }


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/clickstream/session/events" in spec["paths"]
    body = spec["paths"]["/session/events"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/SessionAddEventsRequest")
    assert "NewSessionEvent" in spec["components"]["schemas"]
