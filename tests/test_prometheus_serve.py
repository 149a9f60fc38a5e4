"""/metrics and JSON logs of `searchtrail serve` over TCP: exact counts after known
traffic, with one worker and with two (each scrape sums both, and a worker killed keeps
what it counted), and one JSON object per stderr line."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from searchtrail import Clickstream
from tests.prometheus_traffic import CAP, SESSIONS, delta, expected, samples, send_known_traffic
from tests.support import Server, serve, sqlite_only

pytestmark = pytest.mark.slow  # `searchtrail serve` processes

ENV = {"SEARCHTRAIL_MAX_EVENTS_PER_SESSION": str(CAP), "SEARCHTRAIL_METRICS_REFRESH_S": "0"}


def _scrape(server: Server) -> str:
    r = httpx.get(f"{server.url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return r.text


def test_one_worker_counts_known_traffic_exactly(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, env=ENV) as server:
        before = samples(_scrape(server))
        with httpx.Client(base_url=server.url, timeout=30) as http:
            send_known_traffic(http, "t")
        after = samples(_scrape(server))
    want = expected("writer_process")
    assert delta(before, after, list(want)) == want
    assert after["searchtrail_collecting_batch_sessions", ()] == SESSIONS
    assert after["searchtrail_write_queue_depth", (("path", "writer_process"),)] == 0


def _workers(server: Server) -> list[psutil.Process]:
    """serve's worker processes: its children that carry the metrics directory."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            command = " ".join(child.cmdline())
            if "PROMETHEUS_MULTIPROC_DIR" in child.environ() and "resource_tracker" not in command:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _log_lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]


def test_two_workers_add_up_and_a_dead_workers_counts_stay(
    database_url: str, tmp_path: Path
) -> None:
    runs = 6
    args = ("--workers", "2", "--log-format", "json", "--log-level", "info")
    with serve(database_url, tmp_path, *args, env=ENV) as server:
        deadline = time.monotonic() + 60
        while len(workers := _workers(server)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2
        metrics_dir = Path(workers[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
        before = samples(_scrape(server))

        def one_run(n: int) -> None:
            # A new connection per request: the two workers share them out.
            with httpx.Client(
                base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
            ) as http:
                send_known_traffic(http, f"r{n}")

        with ThreadPoolExecutor(runs) as pool:
            list(pool.map(one_run, range(runs)))
        want = expected("writer_process", runs)
        scrapes = [samples(_scrape(server)) for _ in range(4)]  # whichever worker answers
        for after in scrapes:
            assert delta(before, after, list(want)) == want
            assert after["searchtrail_collecting_batch_sessions", ()] == SESSIONS * runs
        served = {
            line["pid"] for line in _log_lines(server) if line["logger"] == "searchtrail.request"
        }
        assert served == {w.pid for w in workers}, "both workers served requests"

        # A worker killed: uvicorn starts another; what the dead one counted stays in the
        # sums, and its queue gauge leaves them at the next scrape.
        dead = workers[0].pid
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = {w.pid for w in _workers(server)}
            if dead not in alive and len(alive) == 2:
                break
            time.sleep(0.2)
        after_death = samples(_scrape(server))
        assert delta(before, after_death, list(want)) == want
        assert not list(metrics_dir.glob(f"gauge_live*_{dead}.db"))
        assert list(metrics_dir.glob(f"counter_{dead}.db"))
    assert not metrics_dir.exists(), "serve removes its metrics directory at exit"


@sqlite_only  # the log format is the HTTP layer's and serve's, not storage's
def test_json_logs_one_object_per_line_with_the_requests_fields(
    database_url: str, tmp_path: Path
) -> None:
    with Clickstream(database_url) as cs:
        key = cs.keys.create("pusher", ["ingest"])
    args = ("--log-format", "json", "--log-level", "info")
    with serve(database_url, tmp_path, *args) as server, httpx.Client(base_url=server.url) as http:
        headers = {"X-API-Key": key.key, "X-Request-ID": "req-42"}
        r = http.post("/session", json={"session_id": "s1"}, headers=headers)
        assert r.status_code == 200 and r.headers["X-Request-ID"] == "req-42"
        missing = http.post("/session/events", json={"session_id": "x", "events": []})
        assert missing.status_code == 401
        generated = missing.headers["X-Request-ID"]
        # A request's line is written once its answer is sent: wait for both.
        deadline = time.monotonic() + 30
        while True:
            lines = _log_lines(server)  # each line parses: every record is one object
            requests = {
                line["request_id"]: line
                for line in lines
                if line["logger"] == "searchtrail.request"
            }
            if {"req-42", generated} <= set(requests) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert {line["level"] for line in lines} <= {"debug", "info", "warning", "error", "critical"}
    ok, refused = requests["req-42"], requests[generated]
    assert ok["route"] == "/session" and ok["status"] == 200 and ok["method"] == "POST"
    assert ok["key_prefix"] == key.prefix and ok["latency_ms"] > 0
    assert refused["status"] == 401 and "key_prefix" not in refused
    assert refused["route"] == "/session/events"
    assert any(line["logger"] == "searchtrail.serve" for line in lines)  # serve's own lines
    assert any(line["logger"].startswith("uvicorn") for line in lines)
