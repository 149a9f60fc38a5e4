"""API keys and scopes on every route of the app, rate limits, and keys kept out of sight."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from searchtrail.keys import Scope
from tests.support import sqlite_only

# The HTTP layer's keys, scopes, CORS and limits; the keys' storage: tests/test_keys.py.
pytestmark = sqlite_only

INTERNAL = "/api/v1/clickstream/internal"
PUBLIC = {"/health", "/health/ready", "/st.js", "/api/v1/clickstream/st.js", "/t/st.js"}
EXPECTED_SCOPES = {
    ("POST", "/session"): "ingest",
    ("POST", "/session/events"): "ingest",
    ("POST", "/session/irrelevant"): "ingest",
    ("GET", "/session"): "read",
    ("GET", "/internal/batch/sessions"): "read",
    ("GET", "/internal/batches"): "read",
    ("GET", "/internal/batch"): "read",
    ("POST", "/internal/session/use-for-improvement"): "admin",
    ("POST", "/internal/batch/release"): "admin",
    ("POST", "/internal/batch/state"): "admin",
    ("POST", "/internal/improvement/claim"): "admin",
    ("POST", "/internal/improvement/ack"): "admin",
    ("GET", "/internal/improvement/counts"): "admin",
    ("POST", "/internal/users/delete"): "admin",
    ("POST", "/internal/keys"): "admin",
    ("GET", "/internal/keys"): "admin",
    ("POST", "/internal/keys/revoke"): "admin",
    ("GET", "/internal/metrics"): "read",
    ("GET", "/internal/metrics/queries"): "read",
    ("GET", "/internal/metrics/compare"): "read",
    ("GET", "/internal/metrics/sessions"): "read",
    ("GET", "/internal/clickmodel"): "read",
    ("GET", "/internal/clickmodel/labels"): "read",
}


INGEST_ROUTES = {r for r, scope in EXPECTED_SCOPES.items() if scope == "ingest"}


def _short(path: str) -> str:
    return path.removeprefix("/api/v1/clickstream").removeprefix("/t")


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves, as its OpenAPI document lists them."""
    spec = create_app(Settings(browser_prefix="/t")).openapi()  # no lifespan: no database
    routes = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            # The document tells clients which routes take a key, and how.
            schemes = {name for s in op.get("security", []) for name in s}
            expected = {"HTTPBearer", "APIKeyHeader"} if path not in PUBLIC else set()
            if (method.upper(), _short(path)) in INGEST_ROUTES:
                expected.add("APIKeyQuery")
            assert schemes == expected, (method, path)
            routes.append((method.upper(), path))
    return routes


ROUTES = app_routes()
GUARDED = [(m, p, Scope(EXPECTED_SCOPES[m, _short(p)])) for m, p in ROUTES if p not in PUBLIC]


def test_every_route_is_public_or_has_a_known_scope() -> None:
    """A new route fails here until it is given a scope (and the test below checks it)."""
    unknown = [
        (m, p) for m, p in ROUTES if p not in PUBLIC and (m, _short(p)) not in EXPECTED_SCOPES
    ]
    assert unknown == []
    assert {p for _m, p in ROUTES if p in PUBLIC} == PUBLIC
    assert {(m, _short(p)) for m, p, _s in GUARDED} == set(EXPECTED_SCOPES)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, browser_prefix="/t")


@dataclass
class Keys:
    ingest: str
    read: str
    admin: str
    metrics: str
    revoked: str
    wrong: str

    def of(self, scope: Scope) -> str:
        return str(getattr(self, scope.value))


@pytest.fixture
def keys(cs: Clickstream) -> Keys:
    made = {s: cs.keys.create(f"{s.value} key", [s]).key for s in Scope}
    revoked = cs.keys.create("old", list(Scope))
    cs.keys.revoke(revoked.key_id)
    wrong = made[Scope.ADMIN][:-4] + ("AAAA" if not made[Scope.ADMIN].endswith("AAAA") else "BBBB")
    return Keys(
        made[Scope.INGEST],
        made[Scope.READ],
        made[Scope.ADMIN],
        made[Scope.METRICS],
        revoked.key,
        wrong,
    )


def call(client: TestClient, method: str, path: str, **kw: object) -> object:
    if method == "POST":
        return client.post(path, content=b"{}", **kw)  # type: ignore[arg-type]
    return client.get(path, **kw)  # type: ignore[arg-type]


ids = [f"{m} {p}" for m, p, _ in GUARDED]


@pytest.mark.parametrize(("method", "path", "scope"), GUARDED, ids=ids)
def test_each_route_against_each_credential(
    client: TestClient, keys: Keys, method: str, path: str, scope: Scope
) -> None:
    def status(headers: dict[str, str] | None) -> tuple[int, dict[str, object]]:
        r = call(client, method, path, headers=headers or {})
        return r.status_code, r.json()  # type: ignore[attr-defined]

    refused = [None, {"X-API-Key": keys.wrong}, {"X-API-Key": keys.revoked},
               {"Authorization": "Bearer "}, {"Authorization": f"Basic {keys.admin}"}]  # fmt: skip
    for headers in refused:
        code, body = status(headers)
        assert code == 401, (headers, body)
        assert body["code"] == "unauthorized" and isinstance(body["detail"], str)
    for other in Scope:
        for headers in ({"X-API-Key": keys.of(other)},
                        {"Authorization": f"Bearer {keys.of(other)}"}):  # fmt: skip
            code, body = status(headers)
            if other is scope:
                assert code not in (401, 403, 429), body
            else:
                assert code == 403, body
                assert body["code"] == "forbidden" and scope.value in str(body["detail"])


def test_public_routes_need_no_key(client: TestClient, keys: Keys) -> None:
    for path in ("/health", "/st.js", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    assert client.get("/health/ready").json()["status"] == "ready"
    assert client.get("/session", params={"session_id": "x"}).status_code == 401


def test_no_key_exists_means_open(client: TestClient) -> None:
    r = client.post("/session", json={"session_id": "s1"})
    assert r.status_code == 200
    assert client.get("/session", params={"session_id": "s1"}).status_code == 200
    assert client.get(f"{INTERNAL}/improvement/counts").status_code == 200


def test_revoking_every_key_does_not_reopen(client: TestClient, cs: Clickstream) -> None:
    only = cs.keys.create("only", ["read"])
    cs.keys.revoke(only.prefix)
    r = client.get("/session", params={"session_id": "x"})
    assert r.status_code == 401
    assert client.post("/session", json={"session_id": "s"}).status_code == 401


def test_key_in_url_only_for_ingest_only_keys(client: TestClient, cs: Clickstream) -> None:
    browser = cs.keys.create("browser", ["ingest"]).key
    both = cs.keys.create("server", ["ingest", "read"]).key
    ok = client.post("/session", params={"key": browser}, json={"session_id": "s1"})
    assert ok.status_code == 200, ok.text
    refused = client.post("/session", params={"key": both}, json={"session_id": "s2"})
    assert refused.status_code == 403 and "never in the URL" in refused.json()["detail"]
    # A read route ignores a key in the URL.
    read = client.get("/session", params={"session_id": "s1", "key": both})
    assert read.status_code == 401


def test_revoke_from_another_process_is_bounded_by_the_cache(database_url: str) -> None:
    settings = Settings(database_url=database_url, auth_cache_sec=0)
    with Clickstream(settings=settings) as served, Clickstream(settings=settings) as cli:
        key = cli.keys.create("k", ["read"])
        with TestClient(create_app(clickstream=served)) as client:
            headers = {"X-API-Key": key.key}
            assert client.get(f"{INTERNAL}/batches", headers=headers).status_code == 200
            cli.keys.revoke(key.key_id)  # another KeyRing: only the database knows
            assert client.get(f"{INTERNAL}/batches", headers=headers).status_code == 401


def test_keys_over_http(client: TestClient, keys: Keys) -> None:
    admin = {"Authorization": f"Bearer {keys.admin}"}
    made = client.post(f"{INTERNAL}/keys", headers=admin, json={"name": "n", "scopes": ["read"]})
    assert made.status_code == 200
    new = made.json()
    assert new["key"].startswith(f"st_{new['prefix']}_") and new["scopes"] == ["read"]
    listed = client.get(f"{INTERNAL}/keys", headers=admin)
    assert new["key"] not in listed.text and "key_hash" not in listed.text
    assert [k["name"] for k in listed.json()["keys"]][-1] == "n"
    read = {"X-API-Key": new["key"]}
    assert client.get(f"{INTERNAL}/batches", headers=read).status_code == 200
    revoked = client.post(f"{INTERNAL}/keys/revoke", headers=admin, json={"key_id": new["key_id"]})
    assert revoked.status_code == 200 and revoked.json()["revoked_at_ms"] is not None
    assert client.get(f"{INTERNAL}/batches", headers=read).status_code == 401
    missing = client.post(f"{INTERNAL}/keys/revoke", headers=admin, json={"key_id": 999})
    assert missing.status_code == 404
    huge = client.post(f"{INTERNAL}/keys/revoke", headers=admin, json={"key_id": 2**64})
    assert huge.status_code == 422 and huge.json()["detail"][0]["field"] == "key_id"
    bad = client.post(f"{INTERNAL}/keys", headers=admin, json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"].startswith("scopes")


def test_keys_never_logged_nor_answered(
    client: TestClient, cs: Clickstream, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = cs.keys.create("browser", ["ingest"]).key
    secrets = [keys.ingest, keys.read, keys.admin, keys.revoked, keys.wrong, browser]
    answers = [
        client.post("/session", headers={"X-API-Key": keys.ingest}, json={"session_id": "s"}),
        client.post("/session", params={"key": browser}, json={"session_id": "t"}),
        client.post("/session", params={"key": keys.admin}, json={"session_id": "u"}),
        client.get("/session", headers={"X-API-Key": keys.wrong}, params={"session_id": "s"}),
        client.get("/session", headers={"X-API-Key": keys.revoked}, params={"session_id": "s"}),
        client.get(f"{INTERNAL}/batches", headers={"X-API-Key": keys.ingest}),
        client.get(f"{INTERNAL}/keys", headers={"X-API-Key": keys.admin}),
        client.get("/openapi.json"),
    ]
    # The test client's own httpx logger prints the URLs it requests; the server's logs are
    # everything else.
    server_logs = [
        f"{r.getMessage()} {r.args}" for r in caplog.records if not r.name.startswith("httpx")
    ]
    text = "\n".join(server_logs) + "".join(r.text + str(r.headers) for r in answers)
    for key in secrets:
        secret = key.split("_", 2)[2]
        assert secret not in text
    with cs.storage.engine.connect() as conn:
        stored = str([tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys")])
    assert not any(key.split("_", 2)[2] in stored for key in secrets)


@pytest.fixture
def limited(database_url: str) -> Iterator[tuple[TestClient, Clickstream]]:
    # A refill of one token per ~11 days: nothing refills while the test runs.
    settings = Settings(
        database_url=database_url,
        rate_limit_per_sec=1e-6,
        rate_limit_burst=2,
        anonymous_rate_limit_per_sec=1e-6,
        anonymous_rate_limit_burst=3,
    )
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        yield client, cs


def test_rate_limit_per_key(limited: tuple[TestClient, Clickstream]) -> None:
    client, cs = limited
    a = {"X-API-Key": cs.keys.create("a", ["read"]).key}
    b = {"X-API-Key": cs.keys.create("b", ["read"]).key}
    assert [client.get(f"{INTERNAL}/batches", headers=a).status_code for _ in range(2)] == [200] * 2
    r = client.get(f"{INTERNAL}/batches", headers=a)
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited" and "Retry-After" in r.headers
    assert int(r.headers["Retry-After"]) >= 1
    assert client.get(f"{INTERNAL}/batches", headers=b).status_code == 200  # its own bucket


def test_rate_limit_per_ip_without_keys(limited: tuple[TestClient, Clickstream]) -> None:
    client, _cs = limited
    codes = [client.get(f"{INTERNAL}/batches").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.get("/health").status_code == 200  # never limited
    assert client.get("/health/ready").status_code == 200


def test_text_plain_body_as_sent_by_sendbeacon(client: TestClient, cs: Clickstream) -> None:
    key = cs.keys.create("browser", ["ingest"]).key
    plain = {"Content-Type": "text/plain;charset=UTF-8"}
    r = client.post("/session", params={"key": key}, headers=plain, content=b'{"session_id": "s1"}')
    assert r.status_code == 200, r.text
    events = b'{"session_id": "s1", "events": [{"event_id": "e1", "object_id": "a"}]}'
    r = client.post("/session/events", params={"key": key}, headers=plain, content=events)
    assert r.json() == {"session_id": "s1", "stored": 1, "duplicates": 0}
    assert [e.event_id for e in cs.get_session("s1").events] == ["e1"]


def test_cors_preflight_and_browser_prefix(database_url: str) -> None:
    settings = Settings(
        database_url=database_url, cors_origins=["https://shop.example"], browser_prefix="/t"
    )
    with TestClient(create_app(settings)) as client:
        ask = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type,x-api-key,x-request-id"}  # fmt: skip
        ok = client.options("/session", headers={"Origin": "https://shop.example", **ask})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
        refused = client.options("/session", headers={"Origin": "https://evil.example", **ask})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = client.post(
            "/t/session",
            headers={"Origin": "https://shop.example", "Content-Type": "text/plain"},
            content=b'{"session_id": "s1"}',
        )
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == "https://shop.example"
        # The page's script may read the request id to report it.
        assert simple.headers["access-control-expose-headers"].lower() == "x-request-id"
        other = client.post(
            "/t/session/events",
            headers={"Origin": "https://evil.example"},
            json={"session_id": "s1", "events": [{"event_id": "e"}]},
        )
        assert "access-control-allow-origin" not in other.headers
        script = client.get("/t/st.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.get("/t/session", params={"session_id": "s1"}).status_code == 405
        assert client.get("/t/internal/batches").status_code == 404


def test_browser_prefix_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="browser_prefix"):
        Settings(browser_prefix="t/")
