"""The metrics scenario: the 30-day summary and daily series over HTTP, on a big database.

The database (``bench.metricsdata``) is built once per size and reused; each run works on
a copy of it, since the fresh-delta rounds push events into it. Requests go one at a
time from this process to ``searchtrail serve`` (its default background refresh every
``metrics_refresh_s`` included), the summary and the series alternating. Then the same
again with a delta: before each request a few pushes land in sessions of the window, so
the request's own refresh (a metrics call refreshes what is left first) has work.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.metricsdata import DAYS, MetricsData, metrics_database, metrics_postgres_database
from bench.procs import check_interrupt
from searchtrail.paths import CLIENT_PREFIX, INTERNAL_PREFIX

if TYPE_CHECKING:
    from bench.runner import Bench

__all__ = ["MetricsLatency", "MetricsRun", "run_metrics"]

_DAY_MS = 86_400_000
WINDOW_DAYS = 30
PUSHES_PER_REQUEST = 3
EVENTS_PER_PUSH = 100


@dataclass
class MetricsLatency:
    title: str
    ms: list[float]

    def pct(self, q: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class MetricsRun:
    data: MetricsData
    dialect: str
    window_sessions: int
    requests: int
    series: list[MetricsLatency] = field(default_factory=list)

    def p95(self, key: str) -> float:
        return next(s for s in self.series if s.title == key).pct(95)


def _copy(bench: Bench, data: MetricsData) -> str:
    """A copy of the cached database for this run, whose pushes must not change it."""
    if bench.postgres is not None:
        name = data.url.rsplit("/", 1)[-1]
        bench.postgres.admin("DROP DATABASE IF EXISTS metrics_run")
        bench.postgres.admin(f"CREATE DATABASE metrics_run TEMPLATE {name}")
        return bench.postgres.url("metrics_run")
    source = Path(data.url.removeprefix("sqlite:///"))
    target = bench.scratch / "metrics.db"
    shutil.copyfile(source, target)
    with target.open("rb") as f:  # into the page cache, as on a server that has been running
        while f.read(16 * 2**20):
            pass
    return f"sqlite:///{target}"


def _push(client: httpx.Client, session: str, tag: str) -> None:
    now = int(time.time() * 1000)
    events = [
        {"event_id": f"{tag}-{j}", "object_id": f"o{j}", "event_type": "click", "created_at": now}
        for j in range(EVENTS_PER_PUSH)
    ]
    r = client.post(
        f"{CLIENT_PREFIX}/session/events", json={"session_id": session, "events": events}
    )
    if r.status_code != 200:
        raise RuntimeError(f"push to {session}: {r.status_code} {r.text}")


def run_metrics(bench: Bench, n: int, requests: int) -> MetricsRun:
    o = bench.o
    if bench.postgres is not None:
        data = metrics_postgres_database(bench.postgres, o.data_dir, n)
    else:
        data = metrics_database(o.data_dir, n)
    url = _copy(bench, data)
    server = bench.serve(url)
    since = data.last_ms - WINDOW_DAYS * _DAY_MS
    summary = f"{INTERNAL_PREFIX}/metrics?since={since}"
    daily = summary + "&by=day"
    titles = (
        f"{WINDOW_DAYS}-day summary",
        f"{WINDOW_DAYS}-day daily series",
        f"{WINDOW_DAYS}-day summary, fresh delta",
        f"{WINDOW_DAYS}-day daily series, fresh delta",
    )
    series = {t: MetricsLatency(t, []) for t in titles}
    # The delta's pushes go to sessions of the window (session numbers follow time).
    first = n - n * WINDOW_DAYS // DAYS
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.get(summary)
            answer.raise_for_status()
            window = int(answer.json()["sessions"])
            for _ in range(5):  # warm-up
                client.get(summary).raise_for_status()
                client.get(daily).raise_for_status()
            for delta in (False, True):
                for i in range(requests):
                    check_interrupt()
                    for which, path in ((0, summary), (1, daily)):
                        if delta:
                            for k in range(PUSHES_PER_REQUEST):
                                session = (
                                    f"m{first + (i * 7919 + k * 104729 + which) % (n - first)}"
                                )
                                _push(client, session, f"d{i}-{which}-{k}")
                        started = time.perf_counter()
                        client.get(path).raise_for_status()
                        ms = (time.perf_counter() - started) * 1000
                        series[titles[which + 2 * delta]].ms.append(ms)
    finally:
        bench.servers.stop(server)
    if bench.postgres is not None:
        bench.postgres.admin("DROP DATABASE IF EXISTS metrics_run")
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    return MetricsRun(data, o.dialect, window, requests, list(series.values()))
