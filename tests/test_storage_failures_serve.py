"""A full disk over `searchtrail serve` (TCP, the writer process): 507 with its detail and
Retry-After, readiness 503, one log line for the burst, nothing acknowledged lost, and
writes again once there is room."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from searchtrail import Clickstream
from tests.smalldisk import resize, small_disk
from tests.support import serve, sqlite_only
from tests.test_storage_failures import META, push_until_full, stored_ids

pytestmark = [pytest.mark.slow, sqlite_only]  # `serve`; SQLite's file on a small disk


def test_a_full_disk_over_serve(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "3m") as disk:
        url = f"sqlite:///{disk / 'st.db'}"
        env = {"SEARCHTRAIL_READY_MIN_FREE_MB": "0.2"}
        with (
            serve(url, tmp_path, "--log-level", "warning", env=env) as server,
            httpx.Client(base_url=server.url, timeout=60) as http,
        ):
            assert http.get("/health/ready").status_code == 200
            assert http.post("/session", json={"session_id": "s1"}).status_code == 200
            acknowledged, refusal = push_until_full(http, "s1")  # type: ignore[arg-type]
            assert refusal["status"] == 507, refusal
            assert refusal["body"] == {"detail": "the database's disk is full", "code": "disk_full"}
            assert refusal["headers"]["retry-after"] == "30"  # type: ignore[index]
            for k in range(20):  # the burst goes on: still one line in the log
                events = [{"event_id": f"m{k}-{j}", "meta": META} for j in range(20)]
                r = http.post("/session/events", json={"session_id": "s1", "events": events})
                assert r.status_code == 507, r.text
            ready = http.get("/health/ready")
            assert (ready.status_code, ready.json()["code"]) == (503, "not_ready"), ready.text
            assert http.get("/health").status_code == 200
            assert sorted(stored_ids(http, "s1")) == sorted(acknowledged)  # type: ignore[arg-type]

            resize(disk, "16m")
            r = http.post(
                "/session/events", json={"session_id": "s1", "events": [{"event_id": "x"}]}
            )
            assert r.status_code == 200 and r.json()["stored"] == 1, r.text
            assert http.get("/health/ready").status_code == 200
        logged = server.log.read_text()
        assert logged.count("disk_full: the database's disk is full") == 1, logged
        with Clickstream(url) as cs:
            stored = {e.event_id for e in cs.iter_session_events("s1", page_size=5000)}
        assert stored == {*acknowledged, "x"}
