"""How the store uses PostgreSQL's locks: registrations run side by side; a release waits.

A registration holds the batch gate shared until it commits, so any number of
registrations proceed together, while a release (exclusive) waits for those in
flight: no session can join a batch after its release was answered.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from searchtrail.store import normalize_database_url
from searchtrail.timestamps import now_ms
from tests.support import clean_env, free_port, postgres_only


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _lock_waiters(cs: Clickstream) -> int:
    with cs.store.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@postgres_only
def test_registrations_do_not_wait_for_each_other_and_a_release_waits_for_them(
    settings: Settings,
) -> None:
    with (
        Clickstream(settings=settings) as cs,
        Clickstream(settings=settings, create_schema=False) as other,
    ):
        first = cs.create_session(session_id="first")
        # A registration in flight: it holds the batch gate shared.
        with cs.store.engine.connect() as held, held.begin():
            cs.store._batch_gate(held, exclusive=False)
            assert cs.store._collecting_batch_id(held, now_ms()) == first.batch_id

            thread, answer = _in_thread(lambda: other.create_session(session_id="second"))
            thread.join(timeout=60)
            assert not thread.is_alive(), "a registration waited for another one"
            assert answer[0].batch_id == first.batch_id

            releasing, released = _in_thread(lambda: other.release_batch("r1"))
            while _lock_waiters(cs) == 0:  # the release queues behind the registration
                assert releasing.is_alive() and not released
                threading.Event().wait(0.01)
            assert not released
        releasing.join(timeout=60)
        assert released[0].batch_id == first.batch_id
        assert cs.get_batch(first.batch_id).sessions == 2


@postgres_only
def test_the_pool_is_sized_by_settings_and_uses_psycopg(database_url: str) -> None:
    settings = Settings(database_url=database_url, pool_size=3)
    with Clickstream(settings=settings) as cs:
        assert cs.store.engine.dialect.driver == "psycopg"
        assert cs.store.engine.pool.size() == 3  # type: ignore[attr-defined]
    assert normalize_database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_database_url("postgres://h/db") == "postgresql+psycopg://h/db"


@postgres_only
def test_a_lock_held_too_long_is_503_and_writes_nothing(database_url: str) -> None:
    settings = Settings(database_url=database_url, sqlite_busy_timeout_ms=50)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        holder = cs.store.engine.connect()
        holder.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        try:
            push = {"session_id": "s1", "events": [{"event_id": "e"}]}
            r = client.post("/session/events", json=push)
            assert r.status_code == 503
            assert r.json()["code"] == "unavailable" and r.headers["retry-after"] == "1"
        finally:
            holder.rollback()
            holder.close()
        assert client.get("/session", params={"session_id": "s1"}).json()["events"] == []
        assert client.post("/session/events", json=push).json()["stored"] == 1


def test_an_unreachable_server_stops_serve_with_a_message(tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve", "--port", str(free_port()),
         "--database-url", url],
        capture_output=True, text=True, env=clean_env(), timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "searchtrail serve: the database is unavailable" in proc.stderr
    assert "Traceback" not in proc.stderr
