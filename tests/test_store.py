"""Store behaviour that only shows with the database itself in a particular state."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

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
            assert r.json()["code"] == "database_locked" and r.headers["retry-after"] == "1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/session", params={"session_id": "s1"}).json()["events"] == []
        r = client.post("/session/events", json={"session_id": "s1", "events": [{"event_id": "e"}]})
        assert r.json()["stored"] == 1


def test_a_write_waits_for_another_process_lock_and_keeps_its_busy_timeout(
    tmp_path: Path,
) -> None:
    """The group commit takes the write lock by trying every 0.5 ms with SQLite's busy
    timeout off (sqlite._begin_write); it must be back on for the transaction's statements."""
    path = tmp_path / "busy.db"
    settings = Settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=20_000)
    with Clickstream(settings=settings) as cs:
        cs.create_session(session_id="s1")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(1) as pool:
            push = pool.submit(cs.push_events, "s1", [{"event_id": "e"}])
            time.sleep(0.3)  # not a timing: it only lets the push start waiting
            assert not push.done()
            holder.execute("COMMIT")
            assert push.result().stored == 1
        holder.close()
        conn = cs.storage.db.writer_conn
        assert conn is not None
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 20_000


@sqlite_only  # PRAGMAs are SQLite's own; PostgreSQL has no equivalent knobs to check
def test_wal_mode_and_synchronous(cs: Clickstream) -> None:
    with cs.storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


@sqlite_only  # PostgreSQL's side: tests/test_postgres.py
def test_a_get_is_one_statement_without_begin_and_other_reads_keep_their_begin(
    cs: Clickstream,
) -> None:
    """One statement needs no read transaction: BEGIN and COMMIT were 15% of a get's time."""
    cs.create_session(session_id="s1")
    cs.push_events("s1", [{"event_id": "e1"}])
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split()[0], conn.connection.dbapi_connection.in_transaction))

    event.listen(cs.storage.engine, "before_cursor_execute", record)
    assert [e.event_id for e in cs.get_session("s1").events] == ["e1"]
    assert seen == [("SELECT", False)]
    seen.clear()
    cs.list_batches()
    assert seen[0] == ("BEGIN", False) and all(inside for _, inside in seen[1:])
