"""Keys the contract does not name: accepted as the original accepts them, kept, reported.

The bodies below are the shapes Embedding Studio's own clients send (its fine-tuning
tutorial and its demo uploader): a dict ``search_query``, ``search_meta``, float ranks,
``item_info`` on results and events, uuid event ids, events without ``event_type``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import InvalidInput, SessionConflict
from searchtrail.http import create_app
from tests.support import serve, sqlite_only

P = "/api/v1/clickstream"


def _tutorial_session(session_id: str) -> dict[str, object]:
    return {
        "session_id": session_id,
        "search_query": {"text": "white sneakers", "filters": {"size": 42}},
        "search_meta": {"text": "white sneakers", "engine": "v1"},
        "search_results": [
            {
                "object_id": f"item-{i}",
                "rank": 0.9 - i / 10,
                "meta": {"file": f"item-{i}.jpg"},
                "item_info": {"title": f"Sneaker {i}", "price": 10.5 + i},
            }
            for i in range(3)
        ],
        "user_id": "u-1",
    }


def _tutorial_events() -> list[dict[str, object]]:
    return [
        {"event_id": str(uuid.uuid4()), "object_id": "item-1", "item_info": {"title": "S1"}},
        {"event_id": str(uuid.uuid4()), "object_id": "item-2", "event_type": "add_to_cart"},
    ]


def test_the_original_clients_shapes_are_stored_and_read_back(client: TestClient) -> None:
    created = client.post(f"{P}/session", json=_tutorial_session("t1"))
    assert created.status_code == 200, created.text
    assert created.json()["unknown_fields"] == [f"search_results[{i}].item_info" for i in range(3)]
    events = _tutorial_events()
    pushed = client.post(f"{P}/session/events", json={"session_id": "t1", "events": events})
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {
        "session_id": "t1",
        "stored": 2,
        "duplicates": 0,
        "unknown_fields": ["events[0].item_info"],
    }
    got = client.get(f"{P}/session", params={"session_id": "t1"}).json()
    assert got["search_query"] == {"text": "white sneakers", "filters": {"size": 42}}
    assert [r["rank"] for r in got["search_results"]] == [0.9, 0.8, 0.7]
    assert got["search_results"][1]["extra"] == {"item_info": {"title": "Sneaker 1", "price": 11.5}}
    assert got["search_results"][1]["meta"] == {"file": "item-1.jpg"}
    assert "unknown_fields" not in got  # only a registration's answer names them
    by_id = {e["event_id"]: e for e in got["events"]}
    first, second = (by_id[str(e["event_id"])] for e in events)
    assert (first["event_type"], first["extra"]) == ("click", {"item_info": {"title": "S1"}})
    assert (second["event_type"], second["extra"]) == ("add_to_cart", None)


def test_the_demo_uploaders_release_and_batch_paging_work(client: TestClient) -> None:
    for n in range(3):
        sid = f"demo-{n}"
        assert client.post(f"{P}/session", json=_tutorial_session(sid)).status_code == 200
        push = {"session_id": sid, "events": _tutorial_events()}
        assert client.post(f"{P}/session/events", json=push).status_code == 200
    released = client.post(f"{P}/internal/batch/release", json={"release_id": str(uuid.uuid4())})
    assert released.status_code == 200, released.text
    batch_id = released.json()["batch_id"]
    seen: list[str] = []
    after = 0
    while True:
        page = client.get(
            f"{P}/internal/batch/sessions",
            params={"batch_id": batch_id, "after_number": after, "limit": 2},
        ).json()
        if page["last_number"] is None:
            break
        for s in page["sessions"]:
            seen.append(s["session_id"])
            assert s["search_results"][0]["extra"]["item_info"]["title"] == "Sneaker 0"
            assert len(s["events"]) == 2
        after = page["last_number"]
    assert seen == ["demo-0", "demo-1", "demo-2"]


def test_a_typo_is_accepted_kept_and_named(client: TestClient) -> None:
    client.post("/session", json={"session_id": "s1"}).raise_for_status()
    body = {"session_id": "s1", "events": [{"event_id": "e1", "evnt_type": "purchase"}]}
    r = client.post("/session/events", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["unknown_fields"] == ["events[0].evnt_type"]
    (event,) = client.get("/session?session_id=s1").json()["events"]
    assert (event["event_type"], event["extra"]) == ("click", {"evnt_type": "purchase"})


def test_a_typo_at_the_top_of_a_registration_is_kept_as_the_sessions_extra(
    cs: Clickstream,
) -> None:
    created = cs.create_session(session_id="s1", usr_id="u1")
    assert created.unknown_fields == ["usr_id"]
    assert (created.user_id, created.extra) == (None, {"usr_id": "u1"})
    assert cs.get_session("s1").extra == {"usr_id": "u1"}


@pytest.fixture
def strict_client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, strict_fields=True)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as c:
        yield c


@sqlite_only  # request validation; kept unknown keys run on both above
def test_strict_fields_refuses_unknown_keys_and_stores_nothing(strict_client: TestClient) -> None:
    r = strict_client.post("/session", json=_tutorial_session("t1"))
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["detail"]]
    assert fields == [f"search_results[{i}].item_info" for i in range(3)]
    assert {e["type"] for e in r.json()["detail"]} == {"extra_forbidden"}
    assert strict_client.get("/session?session_id=t1").status_code == 404
    strict_client.post("/session", json={"session_id": "s1"}).raise_for_status()
    body = {"session_id": "s1", "events": [{"event_id": "e1", "evnt_type": "purchase"}]}
    r = strict_client.post("/session/events", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "events[0].evnt_type"
    assert strict_client.get("/session?session_id=s1").json()["events"] == []


def test_strict_fields_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEARCHTRAIL_STRICT_FIELDS", "true")
    assert Settings().limits.strict_fields is True


def test_unknown_keys_keep_meta_rules_and_a_bad_one_stores_nothing(cs: Clickstream) -> None:
    cs.create_session(session_id="s1")
    big = {"event_id": "e1", "note": "x" * 20_000}
    with pytest.raises(InvalidInput) as too_big:
        cs.push_events("s1", [{"event_id": "e0"}, big])
    (error,) = too_big.value.errors
    assert error.field == "events[1].note"
    assert "16384 bytes" in error.msg
    with pytest.raises(InvalidInput) as nul:
        cs.push_events("s1", [{"event_id": "e0", "note": {"k": "a\x00b"}}])
    assert nul.value.errors[0].field == "events[0].note"
    with pytest.raises(InvalidInput) as nul_key:
        cs.create_session(session_id="s2", **{"bad\x00key": 1})
    assert "NUL" in nul_key.value.errors[0].msg
    assert cs.get_session("s1").events == []


def test_a_replay_must_match_the_kept_keys_too(cs: Clickstream) -> None:
    first = cs.create_session(_tutorial_session("t1"))
    again = cs.create_session(_tutorial_session("t1"))
    assert again.search_results == first.search_results
    changed = _tutorial_session("t1")
    changed["campaign"] = "spring"
    with pytest.raises(SessionConflict) as conflict:
        cs.create_session(changed)
    assert "extra" in str(conflict.value)


def test_each_unknown_key_name_is_logged_once(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="searchtrail"):
        for n in range(3):
            client.post("/session", json=_tutorial_session(f"t{n}")).raise_for_status()
    logged = [r.getMessage() for r in caplog.records if "unknown field" in r.getMessage()]
    assert len(logged) == 1
    assert "search_results[].item_info" in logged[0]


@pytest.mark.slow  # starts `searchtrail serve` twice
def test_through_the_real_server_and_its_writer_process(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        assert http.post(f"{P}/session", json=_tutorial_session("t1")).status_code == 200
        push = {"session_id": "t1", "events": _tutorial_events()}
        assert http.post(f"{P}/session/events", json=push).json()["stored"] == 2
        got = http.get(f"{P}/session", params={"session_id": "t1"}).json()
        extras = sorted(str(e["extra"]) for e in got["events"])
        assert extras == ["None", "{'item_info': {'title': 'S1'}}"]
    assert server.log.read_text().count("unknown field search_results[].item_info") == 1
    with serve(database_url, tmp_path, env={"SEARCHTRAIL_STRICT_FIELDS": "1"}) as server:
        refused = httpx.post(f"{server.url}/session", json=_tutorial_session("t2"))
        assert refused.status_code == 422
