"""The dashboard (/dashboard/): its files over HTTP, and the page in a real headless Chromium.

The fast tests read the files through the app. The browser tests start `searchtrail serve`
over TCP on a known clickstream (two rankers over eight days, a zero-result query,
interleaved sessions whose results carry ``meta.team``) and read the page's DOM through
the DevTools protocol, holding it to the API's answers.

Screenshots: with SEARCHTRAIL_TESTS_SCREENSHOTS=1 the browser tests write
docs/dashboard.png and docs/dashboard-compare.png (1280x900), e.g.
``SEARCHTRAIL_TESTS_SCREENSHOTS=1 .venv/bin/python -m pytest -m browser tests/test_dashboard.py``.
"""

from __future__ import annotations

import hashlib
import re
import time
import tomllib
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream
from searchtrail.clickmodels.registry import MODELS
from searchtrail.http.routers.dashboard import CONTENT_TYPES
from searchtrail.keys import Scope
from tests.dashboard_page import (
    CLICKMODEL,
    COLOURS,
    DAY_MS,
    METRICS,
    ROOT,
    UNITS,
    Dashboard,
    dashboard,
    fill,
    ms,
    same,
    shown_as,
)
from tests.support import sqlite_only
from tests.test_browser import eventually

# The page and the auth in front of its data, whatever stores the data (the metrics
# themselves are tested on both dialects elsewhere).
pytestmark = sqlite_only

STATIC = ROOT / "src" / "searchtrail" / "static" / "dashboard"
# The position bias panel's select: bias.js's order, then any other model by name.
ORDER = ["pbm", "ubm", "cascade", "dbn", "sdbn", "coec"]
OFFERED = sorted(MODELS, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
DEFAULT_MODEL = "pbm" if "pbm" in MODELS else "coec"


# -- the files ---------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append(value)


def _references(client: TestClient) -> dict[str, str]:
    """Every path the page loads or links to (its modules' imports too) -> its answer's type."""
    parser = _Refs()
    parser.feed(client.get("/dashboard/").text)
    todo = [r for r in parser.refs if not r.startswith("data:")]
    for ref in todo:  # relative: the page works wherever the service is mounted
        assert not re.match(r"^(/|[a-z]+:)", ref), ref
    seen: dict[str, str] = {}
    while todo:
        path = urljoin("/dashboard/", todo.pop())
        if path in seen:
            continue
        r = client.get(path)
        assert r.status_code == 200, path
        seen[path] = r.headers["content-type"]
        if path.endswith(".js") and "/vendor/" not in path:
            imports = re.findall(r'^import .* from "(\./[\w.]+)";$', r.text, re.M)
            todo += [urljoin(path, i) for i in imports]
    return seen


def test_the_dashboard_is_an_html_page(client: TestClient) -> None:
    r = client.get("/dashboard/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>searchtrail dashboard</title>" in r.text
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    moved = client.get("/dashboard", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (308, "dashboard/")
    again = client.get("/dashboard/", headers={"If-None-Match": r.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_every_asset_the_page_references_is_served_with_its_type(client: TestClient) -> None:
    served = _references(client)
    expected = {
        "/dashboard/dashboard.css": "text/css; charset=utf-8",
        "/dashboard/vendor/uPlot.min.css": "text/css; charset=utf-8",
        "/dashboard/vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
        "/dashboard/vendor/LICENSE": "text/plain; charset=utf-8",
    }
    for module in ("dashboard", "api", "bias", "charts", "compare", "format", "queries"):
        expected[f"/dashboard/{module}.js"] = "text/javascript; charset=utf-8"
    assert served == expected
    # Nothing else of the package is reachable, nor anything outside it.
    for path in ("/dashboard/vendor/README.md", "/dashboard/nope.js", "/dashboard/../README.md"):
        r = client.get(path)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path


def test_the_vendored_library_and_its_licence_are_package_data() -> None:
    vendor = files("searchtrail").joinpath("static/dashboard/vendor")
    assert vendor.joinpath("uPlot.iife.min.js").read_text().startswith("/*! https://github.com")
    assert "MIT License" in vendor.joinpath("LICENSE").read_text()
    # The wheel holds what pyproject's package-data globs match (setuptools globs each
    # pattern from the package directory): every file of the dashboard must be matched.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package = ROOT / "src" / "searchtrail"
    globbed = {p for g in pyproject["tool"]["setuptools"]["package-data"]["searchtrail"]
               for p in package.glob(g) if p.is_file()}  # fmt: skip
    on_disk = {p for p in STATIC.rglob("*") if p.is_file()}
    assert on_disk - globbed == set()
    # The vendored files are the release's, as vendor/README.md records them.
    readme = (STATIC / "vendor" / "README.md").read_text()
    sums = dict(re.findall(r"^\| `([\w.]+)` \| `[\w./]+` \| `([0-9a-f]{64})` \|$", readme, re.M))
    assert set(sums) == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, digest in sums.items():
        assert hashlib.sha256(vendor.joinpath(name).read_bytes()).hexdigest() == digest, name


def test_no_url_leaves_the_page_but_in_the_vendored_comments(client: TestClient) -> None:
    for path in [*_references(client), "/dashboard/"]:
        text = client.get(path).text
        if "/vendor/" in path:  # the library's own comments may name its home page
            text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert not re.search(r"https?:|//[\w.-]+\.\w", text), path


def test_the_page_is_public_and_its_data_needs_read(cs: Clickstream, client: TestClient) -> None:
    assert client.get(METRICS).status_code == 200  # no key exists: the service is open
    read = cs.keys.create("dashboard", [Scope.READ]).key
    ingest = cs.keys.create("pages", [Scope.INGEST]).key
    for path in ("/dashboard/", "/dashboard/dashboard.js", "/dashboard/vendor/uPlot.iife.min.js"):
        assert client.get(path).status_code == 200, path
    assert client.get(METRICS).status_code == 401
    assert client.get(METRICS, headers={"X-API-Key": ingest}).status_code == 403
    assert client.get(METRICS, headers={"Authorization": f"Bearer {read}"}).status_code == 200


def test_the_models_offered_are_those_the_api_fits(cs: Clickstream, client: TestClient) -> None:
    r = client.get("/dashboard/clickmodels.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.json() == {"models": sorted(MODELS)}
    assert "coec" in MODELS
    # Every name listed is fitted; a name not listed is refused, and the refusal lists them.
    for name in MODELS:
        assert client.get(CLICKMODEL, params={"model": name}).status_code == 200, name
    refused = client.get(CLICKMODEL, params={"model": "nope"})
    assert refused.status_code == 422
    assert ", ".join(sorted(MODELS)) in refused.text
    # Names of code, not data: public even where the data needs a key.
    cs.keys.create("dashboard", [Scope.READ])
    assert client.get(CLICKMODEL, params={"model": "coec"}).status_code == 401
    assert client.get("/dashboard/clickmodels.json").json() == {"models": sorted(MODELS)}


def test_every_served_type_is_one_the_router_knows() -> None:
    suffixes = {p.suffix or p.name for p in STATIC.rglob("*") if p.is_file()}
    assert suffixes - set(CONTENT_TYPES) == {".md"}  # vendor/README.md, for people, not served


# -- the page in Chromium ----------------------------------------------------------------


@pytest.mark.browser
def test_the_page_shows_the_apis_numbers_and_draws_its_charts(
    database_url: str, tmp_path: Path
) -> None:
    fill(database_url, int(time.time() * 1000))
    with dashboard(database_url, tmp_path) as d:
        d.open()  # no key exists: the page asks none, as the API on loopback
        assert not d.visible("key-form")
        shown = d.range()
        since, until = ms(shown["since"]), ms(shown["until"])
        # The default: the last 30 days, today (UTC) included.
        assert until - since == 30 * DAY_MS and until % DAY_MS == 0
        assert since < time.time() * 1000 < until
        now = d.api("", shown)
        before = d.api("", {"since": 2 * since - until, "until": since})
        tiles = d.page.evaluate(
            "[...document.querySelectorAll('.tile')].map((t) => ({...t.dataset,"
            " text: t.querySelector('.value').textContent}))"
        )
        assert [t["metric"] for t in tiles] == list(UNITS)
        assert now["sessions"] == 112
        # The position bias: the default model, fitted over the range, as the API fits it.
        assert d.text("#bias-model option") == OFFERED
        assert d.page.evaluate("document.getElementById('bias-model').value") == DEFAULT_MODEL
        bias = d.wait_bias(DEFAULT_MODEL, shown["since"])
        fit = d.fit(DEFAULT_MODEL, shown)
        assert fit["counts"]["sessions"] == 112 and bias["until"] == shown["until"]
        assert bias["plotted"] == fit["examination"] and len(fit["examination"]) == 10
        q = fit["fit"]
        assert q["test_sessions"] > 0 and q["log_likelihood"] is not None
        assert bias["caption"] == (
            f"{DEFAULT_MODEL}: held-out log-likelihood {q['log_likelihood']:.3f}, "
            f"perplexity {q['perplexity']:.3f}"
        )
        for t in tiles:
            name = t["metric"]
            assert same(t["value"], now[name]) and same(t["previous"], before[name]), t
            assert shown_as(now[name], t["text"], UNITS[name]), (t, now[name])
        charts = d.charts()
        assert set(charts) == set(COLOURS)
        for c in charts.values():
            assert c["width"] > 200 and c["height"] > 100, c
            assert c["inked"] > 1000 and c["painted"] > 30, c  # axes, and the data's colour
        d.screenshot("dashboard.png")
        # Another range, from the form: the last three days.
        loads = int(d.page.evaluate("document.body.dataset.loaded"))
        start = datetime.fromtimestamp((until - 3 * DAY_MS) / 1000, UTC).date().isoformat()
        d.page.evaluate(
            f"document.getElementById('from').value = {start!r};"
            "document.getElementById('range').requestSubmit()"
        )
        d.wait_loaded(after=loads)
        assert d.range() == {"since": f"{start}T00:00:00.000Z", "until": shown["until"]}
        sessions = d.api("", d.range())["sessions"]
        assert 0 < sessions < 112
        assert d.text(".tile[data-metric=sessions] .value") == [f"{sessions:,}"]
        # The panel follows the range, and the select: each model's curve is the API's.
        for model in [DEFAULT_MODEL, *(m for m in OFFERED if m != DEFAULT_MODEL)]:
            if model != DEFAULT_MODEL:
                d.page.evaluate(
                    f"document.getElementById('bias-model').value = {model!r};"
                    "document.getElementById('bias-model').dispatchEvent(new Event('change'))"
                )
            bias = d.wait_bias(model, d.range()["since"])
            fit = d.fit(model, d.range())
            assert 0 < fit["counts"]["sessions"] < 112
            assert bias["plotted"] == fit["examination"], model
            assert d.charts()["chart-bias"]["painted"] > 30, model
        assert d.errors() == []


@pytest.mark.browser
def test_clicking_a_query_lists_its_sessions(database_url: str, tmp_path: Path) -> None:
    fill(database_url, int(time.time() * 1000))
    with dashboard(database_url, tmp_path) as d:
        d.open()
        shown = d.range()
        # A query is data, shown as text: its markup is not markup.
        query = "<b>bold</b> & co"
        assert query in d.text("#list-top .query")
        assert d.page.evaluate("document.querySelectorAll('main b').length") == 0
        d.click("#list-top .query", query)
        sessions = d.api("/sessions", {**shown, "query": query, "limit": 50})
        assert len(sessions) == 16
        eventually(lambda: d.text("#drill .session h3 code") or None, "the query's sessions")
        assert d.visible("drill")
        assert d.text("#drill-title") == [f"Sessions of “{query}”"]
        assert d.text("#drill .session h3 code") == [s["session_id"] for s in sessions]
        for i, s in enumerate(sessions):
            hits = d.page.evaluate(
                f"[...document.querySelectorAll('#drill .session')[{i}].querySelectorAll('li.hit')]"
                ".map((li) => [li.querySelector('code').textContent,"
                " [...li.querySelectorAll('.badge')].map((b) => b.textContent)])"
            )
            acted = [[r["object_id"], r["interactions"]] for r in s["results"] if r["interactions"]]
            assert hits == acted, s["session_id"]
        # A query that showed nothing: its sessions say so.
        d.click("#list-zero_results .query", "nothing here")
        eventually(
            lambda: d.text("#drill-title") == ["Sessions of “nothing here”"] or None, "the drill"
        )
        eventually(lambda: d.text("#drill .session .empty") or None, "the empty sessions")
        assert set(d.text("#drill .session .empty")) == {"No results shown."}
        assert d.errors() == []


def _shows_the_comparison(d: Dashboard, shown: dict[str, str], a: str, b: str) -> None:
    """The compare section holds the API's comparison of B against A over the range."""
    expected = d.api("/compare", [*shown.items(), ("ranker", a), ("ranker", b)])
    verdicts = d.page.evaluate(
        "[...document.querySelectorAll('#compare-result tr[data-metric]')]"
        ".map((tr) => [tr.dataset.metric, tr.querySelector('.verdict').textContent])"
    )
    assert verdicts == [[m["metric"], m["verdict"]] for m in expected["metrics"]]
    assert d.text("#compare-result th")[1:4] == [a, b, f"{b} \u2212 {a}"]
    line = d.text("#interleaving")[0]
    i = expected["interleaving"]
    assert f"{a} won {i['wins_a']}, {b} won {i['wins_b']}" in line
    assert line.endswith(f": {i['verdict']}")
    # B's clicks come more often and nearer the top (fill): it is better on CTR.
    assert dict(verdicts)["ctr"] == ("better" if b == "B" else "worse")


@pytest.mark.browser
def test_the_compare_form_shows_each_verdict(database_url: str, tmp_path: Path) -> None:
    fill(database_url, int(time.time() * 1000))
    with dashboard(database_url, tmp_path) as d:
        d.open()
        shown = d.range()
        # Pre-filled from by=ranker: the two rankers with the most sessions, A first.
        rankers = [d.page.evaluate(f"document.getElementById('ranker-{x}').value") for x in "ab"]
        assert rankers == ["A", "B"]
        _shows_the_comparison(d, shown, "A", "B")
        d.click("#list-top .query", "red shoes")
        eventually(lambda: d.text("#drill .session") or None, "the query's sessions")
        d.page.evaluate("document.getElementById('compare').scrollIntoView()")
        d.screenshot("dashboard-compare.png")
        # The other way round, from the form.
        d.page.evaluate(
            "document.getElementById('ranker-a').value = 'B';"
            "document.getElementById('ranker-b').value = 'A';"
            "document.getElementById('compare-form').requestSubmit()"
        )
        eventually(lambda: d.text("#compare-result th")[1:2] == ["B"] or None, "the answer")
        _shows_the_comparison(d, shown, "B", "A")
        assert d.errors() == []


@pytest.mark.browser
def test_with_keys_the_page_asks_for_one_then_shows_data(database_url: str, tmp_path: Path) -> None:
    fill(database_url, int(time.time() * 1000))
    with Clickstream(database_url) as cs:
        read = cs.keys.create("dashboard", [Scope.READ]).key
        ingest = cs.keys.create("pages", [Scope.INGEST]).key
    with dashboard(database_url, tmp_path) as d:
        d.page.call("Network.enable")
        d.open(loaded=False)
        eventually(lambda: d.visible("key-form") or None, "the question for a key")
        assert not d.visible("content")
        assert d.text("#key-message") == ["This service needs an API key to show its metrics."]

        def answer(key: str) -> None:
            d.page.evaluate(
                f"document.getElementById('key-input').value = {key!r};"
                "document.getElementById('key-form').requestSubmit()"
            )

        answer(ingest)  # valid, but not for reading: asked again, and told why
        refused = "The key was refused: API key"
        eventually(lambda: refused in d.text("#key-message")[0] or None, "the refusal")
        assert "lacks the 'read' scope" in d.text("#key-message")[0]
        assert d.visible("key-form")
        answer(read)
        d.wait_loaded()
        assert not d.visible("key-form") and d.visible("content") and d.visible("forget-key")
        now = d.api("", d.range(), key=read)
        assert d.text(".tile[data-metric=sessions] .value") == [f"{now['sessions']:,}"]
        fit = d.fit(DEFAULT_MODEL, d.range(), key=read)
        assert d.wait_bias(DEFAULT_MODEL, d.range()["since"])["plotted"] == fit["examination"]
        # Kept for this tab only, and sent in a header, never in a URL.
        stored = "Object.values(sessionStorage).concat('|', Object.values(localStorage))"
        assert d.page.evaluate(stored) == [read, "|"]
        sent = [
            m["params"]["request"]
            for m in d.page.events
            if m.get("method") == "Network.requestWillBeSent"
            and METRICS in m["params"]["request"]["url"]
        ]
        assert sent and all(read not in r["url"] for r in sent)
        assert sent[-1]["headers"]["Authorization"] == f"Bearer {read}"
        # The refused requests are the only errors: the browser logs a 401 and a 403.
        assert d.errors(allow=r"status of 40[13] \(") == []
        # A reload in the tab keeps it; forgetting it asks again.
        d.open()
        d.page.evaluate("document.getElementById('forget-key').click()")
        eventually(lambda: d.visible("key-form") or None, "the question again")
        assert d.page.evaluate("sessionStorage.length") == 0
        assert d.errors(allow=r"status of 401 \(") == []


@pytest.mark.browser
def test_an_empty_service_shows_the_page_without_errors(database_url: str, tmp_path: Path) -> None:
    with dashboard(database_url, tmp_path) as d:
        d.open()
        values = d.text(".tile .value")
        assert values == ["0", "—", "—", "—", "—", "—"]
        bias = d.wait_bias(DEFAULT_MODEL, d.range()["since"], state="empty")
        assert bias["caption"] == "No sessions in this range: nothing to fit."
        assert bias["plotted"] == [None] * 10
        charts = d.charts()
        assert len(charts) == 6
        assert all(
            c["width"] > 200 and c["height"] > 100 and c["inked"] > 500 for c in charts.values()
        )
        assert d.text("#list-top .empty") == ["No sessions in this range."]
        assert "No session in this range names its ranker" in d.text("#compare-result")[0]
        assert d.errors() == []
