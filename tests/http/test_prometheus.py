"""/metrics in process: the exposition, the counts after known traffic, who may scrape,
the request id on every answer, and the JSON log format.

Counters live for the test process, so these compare a scrape before and after.
A real server (one worker, two workers) is tests/test_prometheus_serve.py.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import SearchtrailError, Unavailable
from searchtrail.http import create_app
from searchtrail.keys import Scope
from searchtrail.logs import REQUEST_ID, JsonFormatter
from tests.prometheus_traffic import CAP, SESSIONS, delta, expected, samples, send_known_traffic
from tests.support import sqlite_only

# The HTTP layer's counting and access rules; the counts' storage outcomes (refusals,
# duplicates) run on both dialects through tests/test_prometheus_serve.py's real server.
pytestmark = sqlite_only


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, max_events_per_session=CAP, metrics_refresh_s=0)


@pytest.fixture
def limited(settings: Settings) -> Iterator[tuple[TestClient, Clickstream]]:
    """A remote client of a service whose rate limits allow one request and no refill:
    a scrape on the limiter would be refused the second time."""
    tight = settings.model_copy(
        update={
            "rate_limit_per_sec": 1e-6,
            "rate_limit_burst": 1,
            "anonymous_rate_limit_per_sec": 1e-6,
            "anonymous_rate_limit_burst": 1,
        }
    )
    with (
        Clickstream(settings=tight) as cs,
        TestClient(create_app(clickstream=cs), client=("203.0.113.9", 50000)) as client,
    ):
        yield client, cs


def _app(cs: Clickstream) -> FastAPI:
    app = create_app(clickstream=cs)

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/test/unavailable")
    async def unavailable() -> None:
        raise Unavailable("the database is locked")

    @app.get("/test/full")
    async def full() -> None:
        # The other half of issue 25 gives a full disk its own error; any code counts.
        exc = SearchtrailError("the database's disk is full")
        exc.status, exc.code = 507, "disk_full_test"  # type: ignore[misc]
        raise exc

    return app


@pytest.fixture
def local(cs: Clickstream) -> Iterator[TestClient]:
    """A client on loopback: /metrics needs no key from there."""
    with TestClient(_app(cs), client=("127.0.0.1", 50000), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def remote(cs: Clickstream) -> Iterator[TestClient]:
    with TestClient(_app(cs), client=("203.0.113.9", 50000)) as c:
        yield c


def test_known_traffic_gives_exact_counts(local: TestClient) -> None:
    before = samples(local.get("/metrics").text)
    send_known_traffic(local, "a")
    after = samples(local.get("/metrics").text)
    want = expected("group_commit")
    assert delta(before, after, list(want)) == want
    assert after["searchtrail_collecting_batch_sessions", ()] == SESSIONS
    assert after["searchtrail_batches", (("state", "collecting"),)] == 1
    assert after["searchtrail_batches", (("state", "released"),)] == 0
    assert after["searchtrail_improvement_queue_entries", (("state", "pending"),)] == 0
    assert after["searchtrail_database_up", ()] == 1
    assert after["searchtrail_write_queue_depth", (("path", "group_commit"),)] == 0


def test_the_exposition_is_prometheus_text_with_every_series(local: TestClient) -> None:
    local.post("/session", json={"session_id": "s"})
    r = local.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {name for name, _labels in samples(r.text)}
    assert {n for n in names if not n.startswith("searchtrail_")} == set()
    for series in (
        "searchtrail_http_requests_total",
        "searchtrail_http_request_duration_seconds_bucket",
        "searchtrail_sessions_registered_total",
        "searchtrail_events_stored_total",
        "searchtrail_events_refused_total",
        "searchtrail_unknown_fields_total",
        "searchtrail_write_queue_depth",
        "searchtrail_write_group_size_bucket",
        "searchtrail_database_errors_total",
        "searchtrail_batches",
        "searchtrail_collecting_batch_sessions",
        "searchtrail_improvement_queue_entries",
        "searchtrail_database_up",
    ):
        assert series in names
    buckets = samples(r.text)
    le = (("le", "+Inf"), ("method", "POST"), ("route", "/session"))
    assert buckets["searchtrail_http_request_duration_seconds_bucket", le] >= 1


def test_routes_are_templates_and_methods_a_bounded_set(local: TestClient) -> None:
    before = samples(local.get("/metrics").text)
    local.get("/no/such/path/12345")
    local.request("BREW", "/session")
    local.get("/dashboard/some/file.js")
    after = samples(local.get("/metrics").text)
    keys = [
        ("searchtrail_http_requests_total", (("method", m), ("route", r), ("status", s)))
        for m, r, s in (
            ("GET", "unmatched", "404"),
            ("OTHER", "/session", "405"),
            ("GET", "/dashboard/{path}", "404"),
        )
    ]
    assert delta(before, after, keys) == dict.fromkeys(keys, 1)
    assert not [labels for _n, labels in after if ("route", "/no/such/path/12345") in labels]


def test_database_errors_are_counted_by_code_and_a_500_too(local: TestClient) -> None:
    before = samples(local.get("/metrics").text)
    assert local.get("/test/unavailable").status_code == 503
    assert local.get("/test/full").status_code == 507
    assert local.get("/test/boom").status_code == 500
    after = samples(local.get("/metrics").text)
    errors = "searchtrail_database_errors_total"
    keys = [
        (errors, (("kind", "unavailable"),)),
        (errors, (("kind", "disk_full_test"),)),
        ("searchtrail_http_requests_total",
         (("method", "GET"), ("route", "/test/boom"), ("status", "500"))),
    ]  # fmt: skip
    assert delta(before, after, keys) == dict.fromkeys(keys, 1)
    assert (
        after[errors, (("kind", "schema_outdated"),)]
        == before[errors, (("kind", "schema_outdated"),)]
    )


def test_without_keys_anyone_may_scrape_and_never_hits_the_rate_limit(
    limited: tuple[TestClient, Clickstream],
) -> None:
    remote, _cs = limited
    assert [remote.get("/metrics").status_code for _ in range(4)] == [200] * 4
    assert remote.get("/session", params={"session_id": "x"}).status_code == 404
    assert remote.get("/session", params={"session_id": "x"}).status_code == 429  # burst of 1


def test_with_keys_a_remote_scrape_needs_the_metrics_read_or_admin_scope(
    limited: tuple[TestClient, Clickstream], local: TestClient
) -> None:
    remote, cs = limited
    keys = {s: cs.keys.create(s.value, [s]).key for s in Scope}
    refused = remote.get("/metrics")
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    ingest = remote.get("/metrics", headers={"X-API-Key": keys[Scope.INGEST]})
    assert ingest.status_code == 403
    assert "'metrics' scope or 'admin' or 'read'" in ingest.json()["detail"]
    for scope in (Scope.METRICS, Scope.READ, Scope.ADMIN):
        for _ in range(3):  # a key's burst is 1: scrapes are not rate limited
            r = remote.get("/metrics", headers={"Authorization": f"Bearer {keys[scope]}"})
            assert r.status_code == 200, (scope, r.text)
    # The metrics key opens nothing else.
    other = remote.get(
        "/session", params={"session_id": "x"}, headers={"X-API-Key": keys[Scope.METRICS]}
    )
    assert other.status_code == 403
    # Loopback needs no key, unless a proxy says it forwards someone else.
    assert local.get("/metrics").status_code == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert local.get("/metrics", headers={header: "198.51.100.7"}).status_code == 401


def test_ipv6_loopback_needs_no_key(cs: Clickstream) -> None:
    cs.keys.create("k", [Scope.INGEST])
    with TestClient(create_app(clickstream=cs), client=("::1", 50000)) as c:
        assert c.get("/metrics").status_code == 200
    with TestClient(create_app(clickstream=cs), client=("::ffff:127.0.0.1", 50000)) as c:
        assert c.get("/metrics").status_code == 200
    with TestClient(create_app(clickstream=cs), client=("10.0.0.1", 50000)) as c:
        assert c.get("/metrics").status_code == 401


def test_every_answer_carries_a_request_id(cs: Clickstream, local: TestClient) -> None:
    cs.keys.create("k", [Scope.READ])
    given = {"X-Request-ID": "abc-123_XYZ.1"}
    answers = {
        "ok": local.get("/health", headers=given),
        "404": local.get("/nowhere", headers=given),
        "401": local.get("/session", params={"session_id": "x"}, headers=given),
        "422": local.post("/session/events", content=b"[", headers=given),
        "500": local.get("/test/boom", headers=given),
    }
    assert {k: r.headers.get("X-Request-ID") for k, r in answers.items()} == dict.fromkeys(
        answers, "abc-123_XYZ.1"
    )
    generated = {local.get("/health").headers["X-Request-ID"] for _ in range(3)}
    assert len(generated) == 3 and all(len(g) == 32 for g in generated)
    for bad in ("", "a b", "x" * 129, "caf\u00e9"):
        got = local.get("/health", headers={"X-Request-ID": bad.encode()}).headers["X-Request-ID"]
        assert got != bad and len(got) == 32
    assert (
        local.get("/health", headers={"X-Request-ID": "x" * 128}).headers["X-Request-ID"]
        == "x" * 128
    )


def test_the_json_formatter_writes_one_object_per_record() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "searchtrail.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    for name, value in {
        "route": "/x",
        "status": 200,
        "latency_ms": 1.5,
        "request_id": "r1",
    }.items():
        setattr(record, name, value)
    line = json.loads(formatter.format(record))
    assert line.pop("time").endswith("Z")
    assert line == {
        "level": "info", "logger": "searchtrail.request", "pid": record.process,
        "message": "GET /x", "route": "/x", "status": 200, "latency_ms": 1.5, "request_id": "r1",
    }  # fmt: skip
    token = REQUEST_ID.set("inside")
    try:
        raise ValueError("multi\nline")
    except ValueError:
        failed = sys.exc_info()
        text = formatter.format(
            logging.LogRecord("searchtrail", logging.ERROR, __file__, 1, "failed", (), failed)
        )
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in text
    parsed = json.loads(text)
    assert parsed["request_id"] == "inside" and "ValueError: multi\nline" in parsed["exception"]
