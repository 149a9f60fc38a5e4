"""Click models over HTTP: the library's numbers, the cache, errors, scope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream
from searchtrail.clickmodels.registry import MODELS
from searchtrail.http import create_app
from searchtrail.service.clickmodels import fit_answer
from tests import clickmodel_data
from tests.support import sqlite_only

CLICKMODEL = "/api/v1/clickstream/internal/clickmodel"
MODEL = "coec" if "coec" in MODELS else sorted(MODELS)[0]


@pytest.fixture
def loaded(database_url: str) -> Iterator[tuple[Clickstream, TestClient]]:
    settings = clickmodel_data.settings(database_url, metrics_refresh_s=0)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        clickmodel_data.load(cs)
        yield cs, client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    r = client.get(f"{CLICKMODEL}{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_same_numbers_as_the_library_and_a_cached_answer(
    loaded: tuple[Clickstream, TestClient],
) -> None:
    cs, client = loaded
    library = fit_answer(cs.fit_click_model(MODEL)).model_dump(mode="json")
    answer = _get(client, "", model=MODEL)
    assert answer == library
    assert answer["counts"] == {"sessions": 60, "pairs": 6, "clicks": 30}
    hits = cs._fit_cache.hits
    assert _get(client, "", model=MODEL) == library
    assert cs._fit_cache.hits == hits + 1  # answered from the cache
    labels = _get(client, "/labels", model=MODEL, query="Red Shoes")
    assert cs._fit_cache.hits == hits + 2
    assert labels["labels"] == cs.fit_click_model(MODEL).labels()[: len(labels["labels"])]
    assert [r["object_id"] for r in labels["labels"]] != []
    assert {r["query"] for r in labels["labels"]} == {"red shoes"}
    top = _get(client, "/labels", model=MODEL, limit=2)
    assert [r["impressions"] for r in top["labels"]] == [50, 50]
    # New data is a new version of the scope: fitted again, and counted.
    cs.create_session(session_id="new", search_query="hats", search_results=[{"object_id": "h2"}])
    assert _get(client, "", model=MODEL)["counts"]["sessions"] == 61
    assert cs._fit_cache.hits == hits + 3  # the top labels hit; the new version missed


@sqlite_only  # the numbers run on both dialects above
def test_a_narrower_scope(loaded: tuple[Clickstream, TestClient]) -> None:
    cs, client = loaded
    params = {"since": "2026-02-02T09:30:00Z", "max_position": 3, "include_irrelevant": "true"}
    answer = _get(client, "", model=MODEL, **params)
    library = cs.fit_click_model(
        MODEL, "2026-02-02T09:30:00Z", max_position=3, include_irrelevant=True
    )
    assert answer == fit_answer(library).model_dump(mode="json")
    assert answer["counts"]["sessions"] == 30 and len(answer["examination"]) == 3


BAD = [
    ("", {}, "query.model"),
    ("", {"model": "nosuch"}, "model"),
    ("", {"model": MODEL, "since": "yesterday"}, "since"),
    ("", {"model": MODEL, "max_position": 0}, "query.max_position"),
    ("/labels", {"model": MODEL, "limit": 0}, "query.limit"),
    ("/labels", {"model": "nosuch", "query": "x"}, "model"),
]


@sqlite_only
@pytest.mark.parametrize(("path", "params", "field"), BAD)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    r = client.get(f"{CLICKMODEL}{path}", params=params)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["detail"]] == [field]


@sqlite_only
def test_an_unknown_batch_is_404(client: TestClient) -> None:
    r = client.get(CLICKMODEL, params={"model": MODEL, "batch_id": 999})
    assert r.status_code == 404, r.text


@sqlite_only
def test_read_scope_once_keys_exist(client: TestClient, cs: Clickstream) -> None:
    paths = [f"?model={MODEL}", f"/labels?model={MODEL}"]
    for path in paths:  # no key yet: open, as every route; an empty database answers
        assert client.get(f"{CLICKMODEL}{path}").status_code == 200, path
    keys = {scope: cs.keys.create(scope, [scope]).key for scope in ("ingest", "read", "admin")}
    for path in paths:
        assert client.get(f"{CLICKMODEL}{path}").status_code == 401, path
        for scope, key in keys.items():
            r = client.get(f"{CLICKMODEL}{path}", headers={"X-API-Key": key})
            assert r.status_code == (200 if scope == "read" else 403), (path, scope, r.text)


@sqlite_only
def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    params = {p["name"] for p in paths[CLICKMODEL]["get"]["parameters"]}
    assert params >= {"model", "since", "until", "batch_id", "include_irrelevant", "max_position"}
    labels = {p["name"] for p in paths[f"{CLICKMODEL}/labels"]["get"]["parameters"]}
    assert labels >= {"model", "query", "limit"}
