"""`searchtrail serve` as a real process over TCP: kill -9 durability, workers, bad settings."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from searchtrail import Clickstream
from tests.support import clean_env, serve, sqlite_only

pytestmark = pytest.mark.slow  # `searchtrail serve` processes, killed and multi-worker


def test_acknowledged_events_survive_kill_9(database_url: str, tmp_path: Path) -> None:
    acknowledged: list[str] = []
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/session", json={"session_id": "s1"}).status_code == 200
        for i in range(50):
            ids = [f"e{i}-{j}" for j in range(20)]
            r = http.post(
                "/session/events",
                json={"session_id": "s1", "events": [{"event_id": e} for e in ids]},
            )
            assert r.status_code == 200
            acknowledged.extend(ids)
        server.kill()  # SIGKILL the instant after the last 200
    with Clickstream(database_url) as cs:
        stored = [e.event_id for e in cs.iter_session_events("s1", page_size=10_000)]
    assert sorted(stored) == sorted(acknowledged)


def test_two_workers_share_one_file(database_url: str, dialect: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, "--workers", "2") as server:
        # Correct on SQLite too, but slower than one worker: serve says so.
        said = server.log.read_text()
        assert ("on SQLite more workers make writes slower" in said) is (dialect == "sqlite")

        def one_session(n: int) -> int:
            with httpx.Client(base_url=server.url) as http:
                sid = f"s{n}"
                assert http.post("/session", json={"session_id": sid}).status_code == 200
                total = 0
                for k in range(10):
                    events = [{"event_id": f"e{k}"}, {"event_id": f"e{k - 1}"}]  # one repeat
                    r = http.post("/session/events", json={"session_id": sid, "events": events})
                    assert r.status_code == 200, r.text
                    total += r.json()["stored"]
                return total

        with ThreadPoolExecutor(8) as pool:
            stored = list(pool.map(one_session, range(40)))
    assert stored == [11] * 40  # e-1 .. e9, each once
    with Clickstream(database_url) as cs:
        assert cs.storage.count("events") == 40 * 11
        assert cs.storage.count("sessions") == 40


def test_bad_setting_stops_serve_with_the_variable_name(tmp_path: Path) -> None:
    env = clean_env(SEARCHTRAIL_PORT="eighty", CLICKSTREAM_TIME_MAX_DELTA_PLUS_SEC="-3")
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SEARCHTRAIL_PORT" in proc.stderr and "valid integer" in proc.stderr
    assert "CLICKSTREAM_TIME_MAX_DELTA_PLUS_SEC" in proc.stderr
    assert not (tmp_path / "searchtrail.db").exists()


@sqlite_only  # reading environment variables, the same whatever the database
def test_original_window_variables_are_honoured(database_url: str, tmp_path: Path) -> None:
    env = {"CLICKSTREAM_TIME_MAX_DELTA_MINUS_SEC": "1000000000"}
    with serve(database_url, tmp_path, env=env) as server:
        r = httpx.post(
            f"{server.url}/session", json={"session_id": "old", "created_at": 1_600_000_000}
        )
        assert r.status_code == 200, r.text
