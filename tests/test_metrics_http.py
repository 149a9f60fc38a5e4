"""The metrics over HTTP: the same numbers as the library and the CLI, errors, scope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream
from searchtrail.errors import InvalidInput
from searchtrail.http import create_app
from tests import metrics_data
from tests.metrics_data import cli
from tests.support import sqlite_only

METRICS = "/api/v1/clickstream/internal/metrics"


@pytest.fixture
def loaded(database_url: str) -> Iterator[tuple[Clickstream, TestClient]]:
    settings = metrics_data.settings(database_url, metrics_refresh_s=0)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        metrics_data.load(cs)
        yield cs, client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    r = client.get(f"{METRICS}{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _cli_json(database_url: str, runs: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Each run's JSON, the runs side by side (a second each, mostly start-up)."""
    with ThreadPoolExecutor(len(runs)) as pool:
        started = {
            name: pool.submit(cli, *args, "--format", "json", "--database-url", database_url)
            for name, args in runs.items()
        }
        done = {name: future.result() for name, future in started.items()}
    for name, run in done.items():
        assert run.returncode == 0, (name, run.stderr)
    return {name: json.loads(run.stdout) for name, run in done.items()}


def test_the_same_numbers_through_library_http_and_cli(
    loaded: tuple[Clickstream, TestClient], database_url: str
) -> None:
    cs, client = loaded
    library = {
        "whole": cs.metrics().model_dump(mode="json"),
        "by query": cs.metrics(by="query").model_dump(mode="json"),
    }
    assert {k: library["whole"][k] for k in metrics_data.EXPECTED} == pytest.approx(
        metrics_data.EXPECTED
    )
    assert [(g["key"], g["sessions"]) for g in library["by query"]["groups"]] == [
        ("blue hat", 45),
        ("red shoes", 40),  # "Red Shoes"; the irrelevant "red  SHOES" is left out
        ("socks", 1),
    ]
    assert {"whole": _get(client, ""), "by query": _get(client, "", by="query")} == library
    assert _cli_json(database_url, {"whole": (), "by query": ("--by", "query")}) == library
    # The lists and a query's sessions: library and HTTP.
    assert _get(client, "/queries", limit=2) == cs.metrics_queries(limit=2).model_dump(mode="json")
    sessions = _get(client, "/sessions", query="socks")
    assert sessions == [s.model_dump(mode="json") for s in cs.metrics_sessions("socks")]
    assert sessions[0]["unshown_events"] == 1
    assert [r["interactions"] for r in sessions[0]["results"]] == [[], ["click"]]


def test_the_same_comparison_through_library_http_and_cli(
    loaded: tuple[Clickstream, TestClient], database_url: str
) -> None:
    cs, client = loaded
    library = cs.compare_rankers("A", "B", resamples=1000, seed=3).model_dump(mode="json")
    assert [m["verdict"] for m in library["metrics"]] == [
        "better",  # ctr
        "no significant difference",  # conversion_rate
        "better",  # mrr
        "worse",  # zero_result_rate: B shows no result 5 times in 45
    ]
    assert library["interleaving"]["wins_b"] == 1
    assert library["interleaving"]["verdict"] == "not enough data"  # one session
    http = _get(client, "/compare", ranker=["A", "B"], resamples=1000, seed=3)
    assert http == library
    args = ("compare", "--ranker", "A", "--ranker", "B", "--resamples", "1000", "--seed", "3")
    assert _cli_json(database_url, {"compare": args}) == {"compare": library}


def test_the_range_and_irrelevant_sessions(loaded: tuple[Clickstream, TestClient]) -> None:
    cs, client = loaded
    day2 = _get(client, "", since="2026-01-06T00:00:00Z")
    assert day2 == cs.metrics("2026-01-06T00:00:00Z").model_dump(mode="json")
    assert day2["sessions"] == 46 and day2["since"] == "2026-01-06T00:00:00.000Z"
    day1 = _get(client, "", until="1767657600000", include_irrelevant="true")  # epoch ms
    assert day1["sessions"] == 41 and day1["include_irrelevant"] is True


# The HTTP layer's validation and its scope; the numbers run on both dialects above.
BAD = [
    ("", {"by": "week"}, "query.by"),
    ("", {"since": "yesterday"}, "since"),
    ("", {"since": "\u00b2"}, "since"),  # a digit to str.isdigit(), not to int()
    ("", {"until": "2026-13-01"}, "until"),
    ("/queries", {"since": "soon"}, "since"),
    ("/queries", {"limit": 0}, "query.limit"),
    ("/compare", {"ranker": "A"}, "query.ranker"),
    ("/compare", {"ranker": ["A", "B", "C"]}, "query.ranker"),
    ("/compare", {"ranker": ["A", "B"], "resamples": 5}, "query.resamples"),
    ("/compare", {"ranker": ["A", "B"], "seed": -1}, "query.seed"),  # numpy refuses it
    ("/sessions", {}, "query.query"),
]


@sqlite_only
@pytest.mark.parametrize(("path", "params", "field"), BAD)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    r = client.get(f"{METRICS}{path}", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert [e["field"] for e in r.json()["detail"]] == [field]


@sqlite_only
def test_the_library_refuses_a_negative_seed(cs: Clickstream) -> None:
    with pytest.raises(InvalidInput, match="seed"):
        cs.compare_rankers("A", "B", seed=-1)


@sqlite_only
def test_read_scope_once_keys_exist(client: TestClient, cs: Clickstream) -> None:
    paths = ["", "?by=day", "/queries", "/compare?ranker=A&ranker=B", "/sessions?query=q"]
    for path in paths:  # no key yet: open, as every route
        assert client.get(f"{METRICS}{path}").status_code == 200, path
    keys = {scope: cs.keys.create(scope, [scope]).key for scope in ("ingest", "read", "admin")}
    for path in paths:
        assert client.get(f"{METRICS}{path}").status_code == 401, path
        for scope, key in keys.items():
            r = client.get(f"{METRICS}{path}", headers={"X-API-Key": key})
            assert r.status_code == (200 if scope == "read" else 403), (path, scope, r.text)


@sqlite_only
def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("", "/queries", "/compare", "/sessions"):
        assert "get" in paths[f"{METRICS}{path}"], path
    params = {p["name"]: p for p in paths[METRICS]["get"]["parameters"]}
    assert set(params) >= {"since", "until", "by", "include_irrelevant"}
    assert "ranker" in {p["name"] for p in paths[f"{METRICS}/compare"]["get"]["parameters"]}
