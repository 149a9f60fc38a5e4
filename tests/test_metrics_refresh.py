"""The app's background refresh of the metrics' per-session stats (``metrics_refresh_s``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import Unavailable
from searchtrail.http import create_app
from tests.support import serve


def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def _traffic(client: TestClient) -> None:
    for sid in ("s1", "s2", "s3"):
        results = [{"object_id": "a"}, {"object_id": "b"}]
        r = client.post("/session", json={"session_id": sid, "search_results": results})
        assert r.status_code == 200, r.text
    events = [{"event_id": "e1", "object_id": "b", "event_type": "click"}]
    for sid in ("s1", "s2"):
        r = client.post("/session/events", json={"session_id": sid, "events": events})
        assert r.status_code == 200, r.text


def test_the_app_brings_stats_up_to_date_without_being_asked(database_url: str) -> None:
    settings = Settings(database_url=database_url, metrics_refresh_s=0.05)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        _traffic(client)
        # No metrics call (each refreshes first): only the background task computes them.
        _until(lambda: cs.storage.metrics.stale() == 0)
        client.post(
            "/session/events",
            json={"session_id": "s3", "events": [{"event_id": "e2", "object_id": "a"}]},
        )
        _until(lambda: cs.storage.metrics.stale() == 0)
        assert cs.refresh_metrics() == 0
        whole = cs.metrics()
        assert (whole.sessions, whole.sessions_with_interaction, whole.mrr) == (3, 3, 2 / 3)


def test_a_failed_refresh_is_logged_and_the_next_one_runs(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="searchtrail")
    failures: list[BaseException] = [Unavailable("the database is locked"), RuntimeError("boom")]
    real = Clickstream.refresh_metrics

    def flaky(self: Clickstream, limit: int | None = None) -> int:
        if failures:
            raise failures.pop(0)
        return real(self, limit)

    monkeypatch.setattr(Clickstream, "refresh_metrics", flaky)
    settings = Settings(database_url=database_url, metrics_refresh_s=0.05)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        _traffic(client)
        _until(lambda: not failures and cs.storage.metrics.stale() == 0)
    logged = [r for r in caplog.records if "background refresh failed" in r.getMessage()]
    assert len(logged) == 2, [r.getMessage() for r in logged]
    # Unavailable: one line naming it; anything else: with its traceback.
    assert "the database is locked" in logged[0].getMessage() and not logged[0].exc_info
    assert logged[1].exc_info is not None and "boom" in str(logged[1].exc_info[1])


def test_shutdown_waits_for_the_running_step_then_stops_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = threading.Event()
    outcomes: list[Any] = []
    real = Clickstream.refresh_metrics

    def slow(self: Clickstream, limit: int | None = None) -> int:
        started.set()
        time.sleep(0.3)  # shutdown begins meanwhile
        try:
            outcomes.append(real(self, limit))  # the storage must still be open
        except Exception as exc:
            outcomes.append(exc)
        return 0

    monkeypatch.setattr(Clickstream, "refresh_metrics", slow)
    # No clickstream passed in: the app opens its own and closes it at shutdown.
    app = create_app(Settings(database_url=database_url, metrics_refresh_s=0.05))
    with TestClient(app) as client:
        _traffic(client)
        assert started.wait(10)
    task = app.state.metrics_refresh
    assert task.done() and not task.cancelled() and task.exception() is None
    assert outcomes and all(isinstance(o, int) for o in outcomes), outcomes
    calls = len(outcomes)
    time.sleep(0.2)
    assert len(outcomes) == calls  # nothing runs after shutdown


def test_no_background_refresh_at_zero(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, metrics_refresh_s=0))
    with TestClient(app) as client:
        _traffic(client)
        assert app.state.metrics_refresh is None


@pytest.mark.slow
def test_serve_refreshes_in_the_background_and_stops_cleanly(
    database_url: str, tmp_path: Path
) -> None:
    env = {"SEARCHTRAIL_METRICS_REFRESH_S": "0.2"}
    with serve(database_url, tmp_path, "--workers", "2", env=env) as server:
        with httpx.Client(base_url=server.url) as http:
            for sid in ("s1", "s2", "s3"):
                r = http.post(
                    "/session", json={"session_id": sid, "search_results": [{"object_id": "a"}]}
                )
                assert r.status_code == 200, r.text
                events = [{"event_id": "e1", "object_id": "a"}]
                r = http.post("/session/events", json={"session_id": sid, "events": events})
                assert r.status_code == 200, r.text
        with Clickstream(database_url) as cs:
            _until(lambda: cs.storage.metrics.stale() == 0)
        server.kill(signal.SIGTERM)
        assert server.process.returncode == 0
    log = server.log.read_text()
    assert "background refresh failed" not in log and "Traceback" not in log, log
