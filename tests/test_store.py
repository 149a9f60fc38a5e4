"""Store behaviour that only shows with the database itself in a particular state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from tests.support import sqlite_only


def test_locked_database_is_503_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    settings = Settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=50)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            r = client.post(
                "/session/events", json={"session_id": "s1", "events": [{"event_id": "e"}]}
            )
            assert r.status_code == 503
            assert r.json()["code"] == "unavailable" and r.headers["retry-after"] == "1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/session", params={"session_id": "s1"}).json()["events"] == []
        r = client.post("/session/events", json={"session_id": "s1", "events": [{"event_id": "e"}]})
        assert r.json()["stored"] == 1


@sqlite_only  # PRAGMAs are SQLite's own; PostgreSQL has no equivalent knobs to check
def test_wal_mode_and_synchronous(cs: Clickstream) -> None:
    with cs.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
