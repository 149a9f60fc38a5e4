"""The OpenAPI document lists every error a route answers, in the one shape it has."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from searchtrail.http.errors import ErrorBody
from searchtrail.keys import Scope
from tests.support import sqlite_only

pytestmark = sqlite_only  # the document and the error shape, whatever stores the data


ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, browser_prefix="/t", max_body_bytes=1024)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def documented(op: dict[str, Any], r: Any) -> None:
    """The answer's status is listed for the route, and its body has the listed shape."""
    listed = op["responses"]
    assert str(r.status_code) in listed, (r.status_code, sorted(listed))
    assert listed[str(r.status_code)]["content"]["application/json"]["schema"] == ERROR_REF
    ErrorBody.model_validate(r.json())
    if r.status_code in (429, 503, 507):
        assert "Retry-After" in listed[str(r.status_code)]["headers"]


def test_every_error_status_in_the_document_has_the_one_shape() -> None:
    spec = create_app(Settings(browser_prefix="/t")).openapi()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ErrorBody" in schemas
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                    method,
                    path,
                    status,
                )
        if op.get("security"):
            assert {"401", "403", "429", "503", "507"} <= set(op["responses"]), (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(op["responses"]), (method, path)


def send(client: TestClient, method: str, path: str, key: str | None, body: bytes = b"{") -> Any:
    headers = {"X-API-Key": key} if key else {}
    if method == "GET":  # no required parameter, and a state no batch has
        return client.get(path, headers=headers, params={"state": "bogus"})
    return client.post(path, headers=headers, content=body)


def test_each_route_answers_its_errors_as_documented(cs: Clickstream, client: TestClient) -> None:
    """Provoke the errors a route gives from outside, and hold each answer to the document."""
    spec = client.get("/openapi.json").json()
    ingest = cs.keys.create("ingest", [Scope.INGEST]).key
    read = cs.keys.create("read", [Scope.READ]).key
    every = cs.keys.create("all", list(Scope)).key
    for method, path, op in operations(spec):
        if not op.get("security"):
            continue
        # Every route lacks ingest's scope or read's: one of them is a 403.
        answers = [send(client, method, path, key) for key in (None, ingest, read, every)]
        if method == "POST":
            answers.append(send(client, method, path, every, body=b"x" * 1025))
        seen = set()
        for r in answers:
            if r.status_code >= 400:
                documented(op, r)
                seen.add(r.status_code)
        expected = {401, 403} | ({413, 422} if method == "POST" else set())
        assert expected <= seen, (method, path, seen)


def test_a_503_is_documented_where_it_is_answered(cs: Clickstream, client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    cs.close()  # a closed store answers Unavailable, as a database that went away does
    for path, params in (("/health/ready", {}), ("/session", {"session_id": "s1"})):
        r = client.get(path, params=params)
        assert r.status_code == 503, r.text
        documented(spec["paths"][path]["get"], r)


def test_an_event_schema_admits_what_a_push_accepts(client: TestClient) -> None:
    """event_id may be left out or null, and event_type spelled name; with both, event_type
    counts and name is an unknown key (kept), as the original ignores it."""
    event = client.get("/openapi.json").json()["components"]["schemas"]["NewSessionEvent"]
    assert "event_id" not in event.get("required", [])
    assert {"type": "null"} in event["properties"]["event_id"]["anyOf"]
    assert event["then"]["properties"]["name"]["type"] == "string"
    assert event["additionalProperties"] is not False
    client.post("/session", json={"session_id": "s1"}).raise_for_status()
    accepted = [{"event_type": "click"}, {"event_id": None, "name": "cart"}]
    r = client.post("/session/events", json={"session_id": "s1", "events": accepted})
    assert r.json()["stored"] == 2, r.text
    both = [{"event_id": "b", "event_type": "click", "name": "cart"}]
    r = client.post("/session/events", json={"session_id": "s1", "events": both})
    assert r.json()["unknown_fields"] == ["events[0].name"], r.text
    stored = {e["event_id"]: e for e in client.get("/session?session_id=s1").json()["events"]}
    assert (stored["b"]["event_type"], stored["b"]["extra"]) == ("click", {"name": "cart"})


def test_the_session_get_documents_its_paging_and_the_push_its_cap() -> None:
    spec = create_app(Settings()).openapi()
    get = spec["paths"]["/session"]["get"]
    params = {p["name"]: p for p in get["parameters"]}
    assert set(params) == {"session_id", "events_limit", "events_after"}
    assert not params["events_limit"]["required"] and not params["events_after"]["required"]
    limit = params["events_limit"]["schema"]
    assert (limit["minimum"], limit["maximum"]) == (0, 10_000)
    session = spec["components"]["schemas"]["Session"]["properties"]
    assert {"has_more_events", "events_cursor"} <= set(session)
    push = spec["paths"]["/session/events"]["post"]["responses"]
    assert "max_events_per_session" in push["409"]["description"]
    assert push["409"]["content"]["application/json"]["schema"] == ERROR_REF
