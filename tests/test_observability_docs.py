"""The Grafana dashboard, the alert rules and docs/operating.md name only series that a
real scrape of /metrics has, and operating.md names every one of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.prometheus_traffic import samples
from tests.support import sqlite_only

DOCS = Path(__file__).resolve().parent.parent / "docs"
SERIES = re.compile(r"\bsearchtrail_[a-z0-9_]+\b")

pytestmark = sqlite_only  # the HTTP layer's exposition; storage plays no part


@pytest.fixture
def scraped(client: TestClient) -> set[str]:
    """Sample names of a scrape after a registration and a push (histograms included)."""
    client.post("/session", json={"session_id": "s"})
    client.post("/session/events", json={"session_id": "s", "events": [{"event_id": "e"}]})
    r = client.get("/metrics")
    assert r.status_code == 200
    return {name for name, _labels in samples(r.text)}


def _exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` string anywhere in a JSON or YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def test_the_dashboard_is_importable_and_uses_only_scraped_series(scraped: set[str]) -> None:
    dashboard = json.loads((DOCS / "grafana-searchtrail.json").read_text())
    assert dashboard["uid"] == "searchtrail"
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    graphs = [p for p in panels if p["type"] != "row"]
    assert all(p["targets"] and p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in graphs)
    exprs = list(_exprs(dashboard))
    assert len(exprs) >= len(graphs)
    used = {name for e in exprs for name in SERIES.findall(e)}
    assert used - scraped == set()
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert len(families) >= 12  # every family of docs/operating.md is on a panel


def test_the_alert_rules_are_valid_and_use_only_scraped_series(scraped: set[str]) -> None:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    found = [r for g in rules["groups"] for r in g["rules"]]
    assert len({r["alert"] for r in found}) == len(found) >= 8
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
    exprs = [r["expr"] for r in found]
    used = {name for e in exprs for name in SERIES.findall(e)}
    assert used - scraped == set()
    wanted = [
        'up{job="searchtrail"}',  # Prometheus's own series: the target answers
        'status="507"',
        "searchtrail_database_errors_total",
        "searchtrail_write_queue_depth",
        "histogram_quantile(0.99",
        "searchtrail_database_up",
    ]
    assert [w for w in wanted if not any(w in e for e in exprs)] == []


def test_operating_md_names_every_series(scraped: set[str]) -> None:
    text = (DOCS / "operating.md").read_text()
    named = set(SERIES.findall(text))
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in scraped}
    families = {f for f in families if not f.endswith("_created")}
    assert {f for f in families if f not in named} == set()
    assert named - families - scraped == set(), "operating.md names a series no scrape has"
