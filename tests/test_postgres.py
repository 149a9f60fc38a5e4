"""How the store uses PostgreSQL's locks: registrations run side by side; a release waits.

A registration holds the batch gate shared until it commits, so any number of
registrations proceed together, while a release (exclusive) waits for those in
flight: no session can join a batch after its release was answered.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

import searchtrail.storage.sql.postgres as store_module
from searchtrail import Clickstream, SessionNotFound, Settings
from searchtrail.http import create_app
from searchtrail.storage.sql import normalize_database_url
from searchtrail.timestamps import now_ms
from tests.pg import PgServer
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
    with cs.storage.engine.connect() as conn:
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
        with cs.storage.engine.connect() as held, held.begin():
            cs.storage.db.dialect.batch_gate(held, exclusive=False)
            assert cs.storage.transfer._collecting_batch_id(held, now_ms()) == first.batch_id

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
        assert cs.storage.engine.dialect.driver == "psycopg"
        assert cs.storage.engine.pool.size() == 3  # type: ignore[attr-defined]
    assert normalize_database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_database_url("postgres://h/db") == "postgresql+psycopg://h/db"


@postgres_only
def test_a_lock_held_too_long_is_503_and_writes_nothing(database_url: str) -> None:
    settings = Settings(database_url=database_url, sqlite_busy_timeout_ms=50)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        holder = cs.storage.engine.connect()
        holder.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        try:
            push = {"session_id": "s1", "events": [{"event_id": "e"}]}
            r = client.post("/session/events", json=push)
            assert r.status_code == 503
            assert r.json()["code"] == "database_locked" and r.headers["retry-after"] == "1"
        finally:
            holder.rollback()
            holder.close()
        assert client.get("/session", params={"session_id": "s1"}).json()["events"] == []
        assert client.post("/session/events", json=push).json()["stored"] == 1


def _end_server_connections(database_url: str) -> int:
    """End every server process of the database but this one's: what a restart does to them."""
    import psycopg

    raw = normalize_database_url(database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


_PUSH = {"session_id": "s1", "events": [{"event_id": "e1"}]}


@postgres_only
def test_connections_ended_while_idle_are_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection unused for a while is checked out only after a ping."""
    monkeypatch.setattr(store_module, "PG_PING_IDLE_AFTER_S", 0.0)
    with (
        Clickstream(database_url) as cs,
        TestClient(create_app(clickstream=cs)) as client,
    ):
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        assert _end_server_connections(database_url) >= 1
        assert client.get("/session", params={"session_id": "s1"}).status_code == 200
        assert _end_server_connections(database_url) >= 1
        assert client.post("/session/events", json=_PUSH).json()["stored"] == 1
        assert _end_server_connections(database_url) >= 1
        assert client.post("/session", json={"session_id": "s2"}).status_code == 200


@postgres_only
def test_a_connection_ended_in_steady_use_fails_one_request_with_503_then_all_are_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ping, the request that finds a broken connection is a 503 to retry: a
    get on the loop's pool (loopreads.py), then a push on SQLAlchemy's."""
    monkeypatch.setattr(store_module, "PG_PING_IDLE_AFTER_S", 3600.0)
    with (
        Clickstream(settings=Settings(database_url=database_url, pool_size=4)) as cs,
        TestClient(create_app(clickstream=cs)) as client,
    ):
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        # Several connections in the pool, all of them about to be ended.
        conns = [cs.storage.engine.connect() for _ in range(3)]
        for conn in conns:
            conn.execute(text("SELECT 1"))
            conn.close()
        assert _end_server_connections(database_url) >= 4
        for r in (
            client.get("/session", params={"session_id": "s1"}),
            client.post("/session/events", json=_PUSH),
        ):
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
        # Each pool replaced every connection made before the failure, not only that one.
        for _ in range(3):
            assert client.get("/session", params={"session_id": "s1"}).status_code == 200
            assert client.post("/session/events", json=_PUSH).status_code == 200


@postgres_only
def test_a_get_is_one_statement_outside_a_transaction_and_leaves_the_pool_transactional(
    database_url: str,
) -> None:
    """One round trip per get: no BEGIN and ROLLBACK around it, one statement for the session
    and its events. Other work keeps its transactions."""
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split()[0], conn.connection.dbapi_connection.autocommit))

    with Clickstream(settings=Settings(database_url=database_url, pool_size=1)) as cs:
        cs.create_session(session_id="s1")
        event.listen(cs.storage.engine, "before_cursor_execute", record)
        assert cs.get_session("s1").session_id == "s1"
        assert seen == [("SELECT", True)]
        seen.clear()
        cs.push_events("s1", [{"event_id": "e1"}])
        assert seen and all(autocommit is False for _, autocommit in seen)


@pytest.mark.slow  # starts `searchtrail serve`
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


@postgres_only
def test_a_get_reads_on_the_loop_while_reads_on_loop_is_open_and_answers_the_same(
    database_url: str,
) -> None:
    """Its own async connections (loopreads.py), not SQLAlchemy's pool in a thread; the
    same session either way, JSON and all."""
    with Clickstream(database_url) as cs:
        meta = {"ü": [1, None, "x", {"n": 1.5}], "empty": {}}
        cs.create_session(
            session_id="s1",
            search_query="q",
            search_results=[{"object_id": "a", "rank": 1, "meta": {"price": 3}}],
            search_meta=meta,
        )
        cs.push_events("s1", [{"event_id": "e1", "meta": meta}, {"event_id": "e2"}])
        cs.create_session(session_id="s2")
        engine_reads: list[str] = []

        @event.listens_for(cs.storage.engine, "before_cursor_execute")
        def seen(*_: object) -> None:
            engine_reads.append(threading.current_thread().name)

        async def both() -> list[Any]:
            answers: list[Any] = [await cs.get_session_async(s) for s in ("s1", "s2")]
            async with cs.storage.reads_on_loop():
                answers += [await cs.get_session_async(s) for s in ("s1", "s2")]
                with pytest.raises(SessionNotFound):
                    await cs.get_session_async("nope")
            return answers

        one, two, loop_one, loop_two = asyncio.run(both())
        assert (loop_one, loop_two) == (one, two)
        assert loop_one.search_meta == meta and loop_one.events[0].meta == meta
        assert len(engine_reads) == 2 and all(
            t.startswith("searchtrail-read") for t in engine_reads
        )


@postgres_only
def test_the_apps_lifespan_opens_and_closes_the_loops_reads(database_url: str) -> None:
    with Clickstream(database_url) as cs:
        cs.create_session(session_id="s1")
        engine_reads: list[str] = []

        @event.listens_for(cs.storage.engine, "before_cursor_execute")
        def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            engine_reads.append(statement)

        with TestClient(create_app(clickstream=cs)) as client:
            reader = cs.storage.db.loop_reader
            assert client.get("/session", params={"session_id": "s1"}).status_code == 200
            assert client.get("/session", params={"session_id": "s9"}).status_code == 404
        assert not [s for s in engine_reads if "FROM sessions" in s]
        assert reader is not None and reader._pool is not None and reader._pool.closed
        assert cs.storage.db.loop_reader is None


@postgres_only
def test_a_get_on_the_loop_while_the_database_refuses_connections_is_503_then_recovers(
    dialect: str, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg's pool waits for a connection while it reconnects: PG_READ_WAIT_S, then 503."""
    monkeypatch.setattr(store_module, "PG_READ_WAIT_S", 0.3)
    url = pg_server.new_database()
    name = url.rsplit("/", 1)[1]
    get = {"session_id": "s1"}
    with Clickstream(url) as cs, TestClient(create_app(clickstream=cs)) as client:
        cs.create_session(session_id="s1")
        assert client.get("/session", params=get).status_code == 200
        pg_server.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            ended = pg_server.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            assert len(ended) >= 1
            for _ in range(2):  # the broken connection, then the wait for a new one
                r = client.get("/session", params=get)
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "database_unavailable"
            ready = client.get("/health/ready")  # its ping is a read like any other: not a 500
            assert (ready.status_code, ready.json()["code"]) == (503, "not_ready")
            assert "(database_unavailable)" in ready.json()["detail"]
            assert client.get("/health").status_code == 200  # liveness asks no database
        finally:
            pg_server.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        deadline = time.monotonic() + 60
        while (status := client.get("/session", params=get).status_code) != 200:
            assert status == 503 and time.monotonic() < deadline
            time.sleep(0.1)
