"""The dashboard in headless Chromium, for tests/test_dashboard.py: a known clickstream,
the page driven and its DOM read through the DevTools protocol, and what it logged.

Screenshots: with SEARCHTRAIL_TESTS_SCREENSHOTS=1, ``Dashboard.screenshot`` writes
docs/NAME (the browser tests of test_dashboard.py write docs/dashboard.png and
docs/dashboard-compare.png).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from searchtrail import Clickstream, Settings
from searchtrail.paths import INTERNAL_PREFIX
from tests.chromium import Page, chromium
from tests.support import Server, serve
from tests.test_browser import eventually

ROOT = Path(__file__).resolve().parent.parent
METRICS = INTERNAL_PREFIX + "/metrics"
CLICKMODEL = INTERNAL_PREFIX + "/clickmodel"
SCREENSHOTS = os.environ.get("SEARCHTRAIL_TESTS_SCREENSHOTS") == "1"
DAY_MS = 86_400_000

QUERIES = ["red shoes", "blue shirt", "running socks", "wool hat", "<b>Bold</b> & co"]
ZERO = "nothing here"
Shown = list[dict[str, Any]]


def _session(rng: random.Random, day: int, i: int) -> tuple[str, Shown, dict[str, str], list[str]]:
    """Session ``i`` of a day: its query, results, search_meta and the objects clicked."""
    if i >= 12:  # interleaved: results alternate between the teams, B's drawing more clicks
        objects = [f"sku-{k}" for k in range(10)]
        shown = [{"object_id": o, "meta": {"team": "AB"[k % 2]}} for k, o in enumerate(objects)]
        return QUERIES[day % 4], shown, {}, [objects[rng.choice([0, 1, 3, 5])]]
    ranker = "A" if i % 2 == 0 or (i == 11 and day < 4) else "B"
    if i < 2:
        return ZERO, [], {"ranker": ranker}, []
    objects = [f"sku-{(k * 7 + i) % 40}" for k in range(12)]
    clicks, top = (0.85, 2) if ranker == "B" else (0.35, 8)
    clicked = [objects[rng.randrange(top)]] if rng.random() < clicks else []
    return (
        QUERIES[(i + day) % len(QUERIES)],
        [{"object_id": o} for o in objects],
        {"ranker": ranker},
        clicked,
    )


def fill(database_url: str, now_ms: int) -> None:
    """Eight days of 14 sessions: ranker A (52 sessions) and B (44), B's clicks more
    frequent and nearer the top, each with a query that shows no result; two interleaved
    sessions a day (no ranker) whose results carry their team in ``meta.team``."""
    window = Settings(database_url=database_url, time_max_delta_minus_sec=10 * 86_400)
    rng = random.Random(21)
    with Clickstream(settings=window) as cs:
        for day in range(8):
            for i in range(14):
                at = now_ms - day * DAY_MS - (i + 1) * 60_000
                sid = f"d{day}-{i}"
                query, shown, meta, clicked = _session(rng, day, i)
                cs.create_session(
                    session_id=sid,
                    search_query=query,
                    search_results=shown,
                    search_meta=meta,
                    created_at=at,
                )
                events = [
                    {"event_id": f"{sid}-{o}", "object_id": o, "created_at": at + 4000}
                    for o in clicked
                ]
                if clicked and rng.random() < 0.3:
                    bought = {"event_type": "purchase", "created_at": at + 9000}
                    events.append({"event_id": f"{sid}-p", "object_id": clicked[0], **bought})
                if events:
                    cs.push_events(sid, events)


CHARTS_JS = """[...document.querySelectorAll(".chart")].map((box) => {
  const canvas = box.querySelector("canvas");
  if (!canvas) return {id: box.id, width: 0, height: 0, inked: 0, painted: 0};
  const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const [r, g, b] = %s[box.id];
  let inked = 0, painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    inked++;
    const off = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
    if (off < 60) painted++;
  }
  return {id: box.id, width: canvas.width, height: canvas.height, inked, painted};
})"""
COLOURS = {
    "chart-sessions": (0x33, 0x66, 0xCC),
    "chart-ctr": (0x2A, 0x9D, 0x8F),
    "chart-conversion_rate": (0xE0, 0x7A, 0x1F),
    "chart-zero_result_rate": (0xB5, 0x17, 0x9E),
    "chart-position": (0x33, 0x66, 0xCC),
    "chart-bias": (0x6A, 0x4C, 0x93),
}


@dataclass
class Dashboard:
    server: Server
    page: Page

    def open(self, *, loaded: bool = True) -> None:
        self.page.goto(f"{self.server.url}/dashboard/")
        if loaded:
            self.wait_loaded()

    def wait_loaded(self, after: int = 0) -> None:
        """Until every part of a load newer than ``after`` is drawn (the page counts loads)."""
        check = f"Number(document.body.dataset.loaded || 0) > {after} || null"
        eventually(lambda: self.page.evaluate(check), "the dashboard's data")

    def range(self) -> dict[str, str]:
        """The range the page shows, as it sends it to the API."""
        found: dict[str, str] = self.page.evaluate(
            "({since: document.body.dataset.since, until: document.body.dataset.until})"
        )
        return found

    def api(self, path: str, params: Any = None, key: str | None = None) -> Any:
        return self._get(METRICS + path, params, key)

    def fit(self, model: str, params: dict[str, str], key: str | None = None) -> Any:
        """The click model API's fit of ``model`` over ``params`` (since, until)."""
        return self._get(CLICKMODEL, {**params, "model": model}, key)

    def _get(self, path: str, params: Any, key: str | None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = httpx.get(f"{self.server.url}{path}", params=params, headers=headers)
        r.raise_for_status()
        return r.json()

    def wait_bias(self, model: str, since: str, state: str = "ready") -> dict[str, Any]:
        """Until the position bias panel shows ``model``'s fit from ``since`` on: its
        data attributes, the values its chart plots (``plotted``) and its caption."""
        read = (
            "(() => { const p = document.getElementById('bias');"
            " const box = document.getElementById('chart-bias');"
            " return {...p.dataset, plotted: box.dataset.plotted,"
            " caption: document.getElementById('bias-fit').textContent}; })()"
        )

        def drawn() -> dict[str, Any] | None:
            found: dict[str, Any] = self.page.evaluate(read)
            ok = (found.get("state"), found.get("model"), found.get("since")) == (
                state,
                model,
                since,
            )
            return found if ok else None

        found = eventually(drawn, f"the position bias of {model}")
        found["plotted"] = json.loads(found["plotted"])
        return found

    def visible(self, element_id: str) -> bool:
        shown: bool = self.page.evaluate(
            f"document.getElementById({element_id!r}).getClientRects().length > 0"
        )
        return shown

    def text(self, selector: str) -> list[str]:
        found: list[str] = self.page.evaluate(
            f"[...document.querySelectorAll({selector!r})].map((e) => e.textContent)"
        )
        return found

    def errors(self, allow: str = "^$") -> list[Any]:
        """Errors the page logged or threw, and the browser's own (a failed load, a CSP
        violation), but those whose text matches ``allow``."""
        self.page.evaluate("1")  # collect what arrived meanwhile
        found = []
        for message in self.page.events:
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(params["args"])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found += [] if re.search(allow, params["entry"]["text"]) else [params["entry"]]
        return found

    def click(self, selector: str, text: str) -> None:
        """Click the element of ``selector`` whose text is ``text``."""
        find = f"[...document.querySelectorAll({selector!r})].find((e) => e.textContent === text)"
        clicked = self.page.evaluate(
            f"((text) => {{ const e = {find}; e?.click(); return Boolean(e); }})({text!r})"
        )
        assert clicked, f"no {selector} {text!r}"

    def charts(self) -> dict[str, dict[str, int]]:
        """Each chart's canvas: its size, its pixels drawn, and those in its series' colour."""
        colours = {k: list(v) for k, v in COLOURS.items()}
        return {c["id"]: c for c in self.page.evaluate(CHARTS_JS % colours)}

    def screenshot(self, name: str) -> None:
        if not SCREENSHOTS:
            return
        time.sleep(0.3)  # let the last paint land
        shot = self.page.call("Page.captureScreenshot", format="png")
        path = ROOT / "docs" / name
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.stat().st_size < 300_000, f"{name}: {path.stat().st_size} bytes"


@contextmanager
def dashboard(database_url: str, tmp_path: Path) -> Iterator[Dashboard]:
    with serve(database_url, tmp_path) as server, chromium(tmp_path / "profile") as page:
        page.call("Log.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield Dashboard(server, page)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def same(text: str, value: float | None) -> bool:
    """A number the page keeps as text (JavaScript's String) is the API's number."""
    return value is None if text == "null" else float(text) == value


def shown_as(value: float | None, text: str, unit: float) -> bool:
    """The tile's text is the API's value at the tile's precision (``unit``: its last digit)."""
    if value is None:
        return text == "—"
    number = float(text.replace(",", "").rstrip("%")) / (100 if text.endswith("%") else 1)
    return abs(number - value) <= unit / 2 + 1e-12


UNITS = {"sessions": 1, "ctr": 0.001, "conversion_rate": 0.001, "zero_result_rate": 0.001,
         "mrr": 0.001, "mean_click_position": 0.01}  # fmt: skip
