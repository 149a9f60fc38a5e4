"""Storage failures a person can act on: a full disk (507), a locked database (503),
readiness that says so, and one log line per burst of them."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from searchtrail import Clickstream, Settings
from searchtrail.burstlog import BurstLog
from searchtrail.http import create_app
from tests.smalldisk import resize, small_disk
from tests.support import sqlite_only

pytestmark = sqlite_only  # a file system and a file lock of SQLite's; PostgreSQL: test_pg_failures

META = {"note": "x" * 900}


def push_until_full(client: TestClient, sid: str) -> tuple[list[str], dict[str, object]]:
    """Push 50-event pushes until one is refused; what was acknowledged, and the refusal."""
    acknowledged: list[str] = []
    for i in range(10_000):
        ids = [f"e{i}-{j}" for j in range(50)]
        events = [{"event_id": e, "object_id": "o", "meta": META} for e in ids]
        r = client.post("/session/events", json={"session_id": sid, "events": events})
        if r.status_code != 200:
            return acknowledged, {"status": r.status_code, "body": r.json(), "headers": r.headers}
        acknowledged.extend(ids)
    raise AssertionError("the disk never filled")


def stored_ids(client: TestClient, sid: str) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        params = {"session_id": sid, "events_limit": 1000}
        if after is not None:
            params["events_after"] = after
        page = client.get("/session", params=params).json()
        ids.extend(e["event_id"] for e in page["events"])
        after = page.get("events_cursor")
        if not after:
            return ids


@dataclass
class Room:
    """Where a database really runs out of space, and how an operator makes room."""

    url: str
    make_room: Callable[[], None]
    on_a_disk: bool  # False: capped by SQLite's max_page_count, which statvfs cannot see
    attach: Callable[[Clickstream], None] = lambda _cs: None


@contextmanager
def limited_room(tmp_path: Path) -> Iterator[Room]:
    """A 1.5 MB tmpfs; where mounting is not permitted (not root), the write connections'
    ``PRAGMA max_page_count`` instead: SQLite answers SQLITE_FULL for both."""
    try:
        with small_disk(tmp_path / "disk", "1536k") as disk:
            yield Room(f"sqlite:///{disk / 'st.db'}", lambda: resize(disk, "16m"), True)
            return
    except RuntimeError as exc:
        if "could not mount" not in str(exc):
            raise
    cap = {"pages": 0}

    def attach(cs: Clickstream) -> None:
        with cs.storage.engine.connect() as conn:
            cap["pages"] = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one()) + 700

        @event.listens_for(cs.storage.db.writer, "connect")
        def _capped(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count={cap['pages']}")

    def make_room() -> None:
        cap["pages"] = 1 << 30  # the next write connection (after the failure) gets it

    yield Room(f"sqlite:///{tmp_path / 'st.db'}", make_room, False, attach)


def test_a_full_disk_is_507_readiness_503_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    with limited_room(tmp_path) as room:
        settings = Settings(database_url=room.url, ready_min_free_mb=0.2)
        with (
            Clickstream(settings=settings) as cs,
            TestClient(create_app(clickstream=cs)) as client,
        ):
            room.attach(cs)
            assert client.get("/health/ready").status_code == 200
            assert client.post("/session", json={"session_id": "s1"}).status_code == 200
            acknowledged, refusal = push_until_full(client, "s1")
            assert refusal["status"] == 507, refusal
            assert refusal["body"] == {"detail": "the database's disk is full", "code": "disk_full"}
            assert refusal["headers"]["retry-after"] == "30"  # type: ignore[index]
            if room.on_a_disk:
                ready = client.get("/health/ready")
                assert ready.status_code == 503 and ready.json()["code"] == "not_ready"
                assert "disk" in ready.json()["detail"], ready.json()
            assert client.get("/health").status_code == 200  # alive: a restart would not help
            assert sorted(stored_ids(client, "s1")) == sorted(acknowledged)

            room.make_room()  # what the operator does
            r = client.post(
                "/session/events", json={"session_id": "s1", "events": [{"event_id": "after"}]}
            )
            assert r.status_code == 200 and r.json()["stored"] == 1
            assert client.get("/health/ready").status_code == 200
        with Clickstream(settings=settings) as cs:
            stored = {e.event_id for e in cs.iter_session_events("s1", page_size=5000)}
        assert stored == {*acknowledged, "after"}


def test_a_locked_database_is_503_database_locked_and_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    settings = Settings(
        database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=50, ready_min_free_mb=0
    )
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            push = {"session_id": "s1", "events": [{"event_id": "e"}]}
            r = client.post("/session/events", json=push)
            assert (r.status_code, r.json()["code"]) == (503, "database_locked"), r.text
            assert "locked" in r.json()["detail"] and r.headers["retry-after"] == "1"
            ready = client.get("/health/ready")
            assert (ready.status_code, ready.json()["code"]) == (503, "not_ready")
            assert "(database_locked)" in ready.json()["detail"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/health/ready").json()["status"] == "ready"


def test_readiness_writes_its_row_and_watches_the_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    settings = Settings(database_url=url, ready_min_free_mb=0)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        r = client.get("/health/ready")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert r.json()["disk_free_mb"] > 0
        assert cs.storage.count("health_checks") == 1
    # A threshold above what the disk has: not ready, before any write fails.
    huge = Settings(database_url=url, ready_min_free_mb=1e12)
    with Clickstream(settings=huge) as cs, TestClient(create_app(clickstream=cs)) as client:
        r = client.get("/health/ready")
        assert r.status_code == 503 and "(disk_low)" in r.json()["detail"]
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200


def test_a_burst_is_logged_once_then_summarized(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = BurstLog(logging.getLogger("searchtrail.test"), every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="searchtrail.test"):
        for _ in range(500):  # 500 refusals within a second: one line
            log.note("disk_full", "the database's disk is full")
            now[0] += 0.002
        assert [r.getMessage() for r in caplog.records] == [
            "disk_full: the database's disk is full"
        ]
        log.note("database_locked", "locked")  # another kind has a burst of its own
        now[0] = 30.0
        log.note("disk_full", "the database's disk is full")
        now[0] = 61.0
        log.note("disk_full", "the database's disk is full")  # a minute on: one summary
        assert caplog.records[-1].getMessage().startswith("disk_full: 501 more in the last 61 s")
        now[0] = 62.0
        log.note("disk_full", "the database's disk is full")  # counted, not logged
        now[0] = 500.0  # quiet for longer than every_s: a new burst, naming what was left
        log.note("disk_full", "again")
        assert caplog.records[-1].getMessage() == "disk_full: again (1 more of the previous burst)"
    assert len(caplog.records) == 4
