"""Schema revisions on both dialects: from nothing, from the previous revision, and refusal.

The migrations must build exactly schema.py's tables (compared by Alembic's
autogenerate), and a process must refuse a database whose schema is behind with a
message that names the command to run.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import MetaData, text

from searchtrail import Clickstream
from searchtrail.errors import SchemaOutdated
from searchtrail.storage.sql import SqlStorage as Store
from searchtrail.storage.sql.migrate import (
    ensure_schema,
    head_revision,
    schema_differences,
    schema_status,
    upgrade,
)
from searchtrail.storage.sql.partitions import month_base, month_of
from searchtrail.storage.sql.schema import metadata
from searchtrail.timestamps import now_ms
from tests.pg import PgServer
from tests.support import clean_env, free_port, sqlite_only

PREVIOUS = "0001"


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with no tables at all."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database("template0")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


def _differences(url: str) -> list[object]:
    store = Store(url)
    try:
        return schema_differences(store.engine)
    finally:
        store.close()


def _revision(url: str) -> str | None:
    store = Store(url)
    try:
        return schema_status(store.engine).current
    finally:
        store.close()


def _write_as_of_then(url: str, **rows: list[dict[str, object]]) -> None:
    """Rows as the code of an older revision wrote them: into the columns its tables have.

    Today's code writes today's columns, so it cannot stand in for the code of the time.
    """
    store = Store(url)
    try:
        tables = MetaData()
        tables.reflect(store.engine, only=list(rows))
        with store.engine.begin() as conn:
            for name, values in rows.items():
                conn.execute(tables.tables[name].insert(), values)
    finally:
        store.close()


def _session(number: int, session_id: str, **columns: object) -> dict[str, object]:
    return {
        "session_number": number, "session_id": session_id, "batch_id": 1,
        "search_query": None, "search_results": [], "created_at_ms": 1_700_000_000_000,
        "created_at_given": False, "is_irrelevant": False, "registered_at_ms": 1_700_000_000_000,
        **columns,
    }  # fmt: skip


def _event(number: int, event_id: str, object_id: str | None) -> dict[str, object]:
    return {
        "session_number": number, "event_id": event_id, "object_id": object_id,
        "event_type": "click", "created_at_ms": 1_700_000_000_000 + len(event_id),
    }  # fmt: skip


_BATCH = {
    "batch_id": 1, "state": "collecting", "collecting": 1,
    "created_at_ms": 1_700_000_000_000, "updated_at_ms": 1_700_000_000_000,
}  # fmt: skip


def _execute(url: str, sql: str) -> None:
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        store.close()


def test_upgrade_from_empty_builds_exactly_the_schema(empty_url: str) -> None:
    assert upgrade(empty_url) == (None, head_revision())
    assert _differences(empty_url) == []
    assert upgrade(empty_url) == (head_revision(), head_revision())  # again: nothing to do


def test_the_previous_revision_differs_and_the_upgrade_closes_the_gap(empty_url: str) -> None:
    upgrade(empty_url, PREVIOUS)
    assert _differences(empty_url) != []  # so the comparison can tell revisions apart
    upgrade(empty_url)
    assert _differences(empty_url) == []


def test_opening_an_empty_database_creates_it_at_head(empty_url: str) -> None:
    with Clickstream(empty_url) as cs:
        cs.create_session(session_id="s1")
    assert _revision(empty_url) == head_revision()
    assert _differences(empty_url) == []


def test_a_schema_behind_is_refused_until_db_upgrade_which_keeps_the_data(
    empty_url: str,
) -> None:
    upgrade(empty_url, PREVIOUS)
    # The previous revision's tables hold data written by the code of that time.
    _write_as_of_then(
        empty_url,
        batches=[_BATCH],
        sessions=[_session(1, "s1", search_results=[{"object_id": "a"}])],
        events=[_event(1, "e1", "a")],
        improvement_queue=[
            {"session_id": "s1", "state": "pending", "attempts": 0, "enqueued_at_ms": 1}
        ],
    )
    with pytest.raises(SchemaOutdated) as refused:
        Clickstream(empty_url)
    assert "searchtrail db upgrade" in refused.value.detail
    assert f"is at {PREVIOUS}" in refused.value.detail

    done = cli("db", "upgrade", "--database-url", empty_url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from {PREVIOUS} to revision {head_revision()}" in done.stdout
    with Clickstream(empty_url) as cs:
        assert [e.event_id for e in cs.get_session("s1").events] == ["e1"]
        assert cs.improvement_counts().pending == 1
    checked = cli("db", "check", "--database-url", empty_url)
    assert checked.returncode == 0, checked.stderr
    assert f"revision {head_revision()}; the tables match" in checked.stdout


def test_a_database_from_before_migrations_is_stamped_then_upgraded(empty_url: str) -> None:
    upgrade(empty_url, "0001")
    _execute(empty_url, "DROP TABLE alembic_version")
    with pytest.raises(SchemaOutdated, match="has no schema revision"):
        Clickstream(empty_url)
    assert upgrade(empty_url) == (None, head_revision())
    assert _differences(empty_url) == []


def test_a_revision_from_a_newer_searchtrail_is_refused(empty_url: str) -> None:
    upgrade(empty_url)
    _execute(empty_url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaOutdated, match="newer searchtrail"):
        Clickstream(empty_url)


def test_db_current_and_check_fail_on_a_schema_behind(empty_url: str) -> None:
    upgrade(empty_url, PREVIOUS)
    current = cli("db", "current", "--database-url", empty_url)
    assert current.returncode == 1
    assert f"current: {PREVIOUS}\nhead: {head_revision()}" in current.stdout
    assert "searchtrail db upgrade" in current.stderr
    checked = cli("db", "check", "--database-url", empty_url)
    assert checked.returncode == 1
    assert "searchtrail db upgrade" in checked.stderr


@pytest.mark.slow  # starts `searchtrail serve`
def test_serve_refuses_a_schema_behind_and_names_the_command(
    empty_url: str, tmp_path: Path
) -> None:
    upgrade(empty_url, PREVIOUS)
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve", "--port", str(free_port()),
         "--database-url", empty_url],
        capture_output=True, text=True, env=clean_env(), timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "run `searchtrail db upgrade`" in proc.stderr
    assert _revision(empty_url) == PREVIOUS  # serve never alters a schema on its own


def test_processes_opening_one_empty_database_together_create_it_once(empty_url: str) -> None:
    # Separate Clickstream objects have separate connections, as processes do; the schema
    # lock makes one create the tables while the others wait and then find them.
    errors: list[BaseException] = []

    def open_it(i: int) -> None:
        try:
            with Clickstream(empty_url) as cs:
                cs.create_session(session_id=f"s{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _revision(empty_url) == head_revision()
    assert _differences(empty_url) == []
    with Clickstream(empty_url) as cs:
        assert cs.storage.count("sessions") == 6


def _create(url: str) -> None:
    store = Store(url)
    try:
        store.create_schema()
    finally:
        store.close()


def _drop_tables(url: str, *names: str) -> None:
    for name in names:
        _execute(url, f"DROP TABLE {name}")


def test_tables_dropped_under_a_head_revision_are_refused_by_name(empty_url: str) -> None:
    _create(empty_url)
    with Clickstream(empty_url) as cs:  # a healthy database at head starts
        cs.create_session(session_id="s1")
    _drop_tables(empty_url, "events", "api_keys")

    store = Store(empty_url)
    try:
        with pytest.raises(SchemaOutdated) as refused:
            ensure_schema(store.engine)
    finally:
        store.close()
    detail = refused.value.detail
    assert f"at revision {head_revision()}" in detail
    assert "api_keys, events are missing" in detail
    assert "sessions" not in detail
    assert "backup" in detail
    assert "alembic_version" in detail
    with pytest.raises(SchemaOutdated, match="events are missing"):
        Clickstream(empty_url)
    with pytest.raises(SchemaOutdated, match="events are missing"):
        upgrade(empty_url)  # no revision recreates them: refused rather than "at head"
    # Refusing alters nothing: the revision row stays and the tables stay dropped.
    store = Store(empty_url)
    try:
        status = schema_status(store.engine)
    finally:
        store.close()
    assert (status.current, status.missing) == (head_revision(), ("api_keys", "events"))


def test_following_the_start_over_hint_gives_an_empty_database(empty_url: str) -> None:
    _create(empty_url)
    _drop_tables(empty_url, "events")
    with pytest.raises(SchemaOutdated):
        Clickstream(empty_url)
    remaining = [t.name for t in reversed(metadata.sorted_tables) if t.name != "events"]
    _drop_tables(empty_url, *remaining, "alembic_version")
    with Clickstream(empty_url) as cs:
        cs.create_session(session_id="s1")
    assert _differences(empty_url) == []


@pytest.mark.slow  # starts `searchtrail serve` and three CLI processes
def test_db_check_current_and_serve_fail_on_a_missing_table(empty_url: str, tmp_path: Path) -> None:
    _create(empty_url)
    _drop_tables(empty_url, "events")
    for command in ("check", "current", "upgrade"):
        done = cli("db", command, "--database-url", empty_url)
        assert done.returncode == 1, (command, done.stdout)
        assert "events are missing" in done.stderr, command
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve", "--port", str(free_port()),
         "--database-url", empty_url],
        capture_output=True, text=True, env=clean_env(), timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "events are missing" in proc.stderr


@sqlite_only
def test_0003_rebuilds_sqlite_sessions_keeping_rows_events_and_foreign_keys(
    empty_url: str,
) -> None:
    """search_query's column is declared again (text affinity), which on SQLite means a new
    table; foreign keys are off only inside the migration's transaction."""
    upgrade(empty_url, "0002")
    _write_as_of_then(
        empty_url,
        batches=[_BATCH],
        sessions=[
            _session(1, "s1", search_query="red", search_results=[{"object_id": "a"}]),
            _session(2, "s2", search_query=1.0),
            _session(3, "s4", search_query=0.12345678901234568),
        ],
        events=[_event(1, "e1", "a"), _event(1, "e2", None)],
    )
    store = Store(empty_url)
    try:
        upgrade(store.engine)
        assert schema_differences(store.engine) == []
        with store.engine.connect() as conn:  # the migration's own connection, from the pool
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'sessions'")
            assert "search_query JSON TEXT" in ddl.scalar_one()
            # A float kept all its digits: the copy alone would have written 15 of them.
            stored = conn.exec_driver_sql(
                "SELECT typeof(search_query), search_query FROM sessions WHERE session_id = 's4'"
            )
            assert stored.one() == ("text", "0.12345678901234568")
    finally:
        store.close()
    with Clickstream(empty_url) as cs:
        s1 = cs.get_session("s1")
        assert (s1.search_query, [e.event_id for e in s1.events]) == ("red", ["e1", "e2"])
        assert cs.get_session("s2").search_query == 1  # converted when stored; kept as it is
        cs.create_session(session_id="s3", search_query=1.0)
        assert repr(cs.get_session("s3").search_query) == "1.0"
        with pytest.raises(Exception, match="FOREIGN KEY"), cs.storage.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO events (session_number, event_id, event_type, created_at_ms)"
                " VALUES (999, 'e', 'click', 0)"
            )


@sqlite_only
def test_foreign_keys_are_checked_only_when_an_upgrade_changed_the_schema(empty_url: str) -> None:
    """The check reads every row: an upgrade with nothing to do (each server start's
    question) must not hold the write lock for it, and rows that point nowhere, which
    only a hand-made change can leave, stop a real upgrade without changing anything."""
    path = empty_url.removeprefix("sqlite:///")

    def orphan() -> None:
        raw = sqlite3.connect(path)  # foreign keys off: SQLite's default
        raw.execute(
            "INSERT INTO events (session_number, event_id, event_type, created_at_ms)"
            " VALUES (999, 'e', 'click', 0)"
        )
        raw.commit()
        raw.close()

    upgrade(empty_url)
    orphan()
    assert upgrade(empty_url) == (head_revision(), head_revision())

    other = empty_url.replace("empty.db", "behind.db")
    path = other.removeprefix("sqlite:///")
    upgrade(other, "0002")
    orphan()
    with pytest.raises(RuntimeError, match="points nowhere"):
        upgrade(other)
    assert _revision(other) == "0002"


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql
            return {
                name: list(map(tuple, rows(f"SELECT {cols} FROM {name} ORDER BY 1")))
                for name, cols in (
                    ("sessions", "session_number, session_id, batch_id, created_at_ms"),
                    ("events", "id, session_number, event_id, object_id, created_at_ms"),
                    ("session_stats", "session_number, created_at_ms, computed, results, clicks"),
                    ("session_stats_hourly", "hour, is_irrelevant, sessions, clicks"),
                )
            }  # fmt: skip
    finally:
        store.close()


def test_0009_partitions_a_populated_database_keeping_every_row(empty_url: str) -> None:
    """PostgreSQL: events and session_stats are rebuilt partitioned, every row kept, in
    the initial partition; new sessions number from this month's base. SQLite: no-op."""
    upgrade(empty_url, "0007")
    sessions = [_session(n, f"s{n}", search_results=[{"object_id": "a"}]) for n in (1, 2, 3)]
    events = [_event(n, f"e{k}", "a") for n in (1, 2) for k in range(n * 2)]
    _write_as_of_then(empty_url, batches=[_BATCH], sessions=sessions, events=events)
    before = _rows(empty_url)
    upgrade(empty_url)
    assert _differences(empty_url) == []
    assert _rows(empty_url) == before  # every row, the stats' and the hourly sums' too
    with Clickstream(empty_url) as cs:
        cs.refresh_metrics()
        assert [e.event_id for e in cs.get_session("s2").events] == ["e0", "e1", "e2", "e3"]
        cs.push_events("s3", [{"event_id": "late", "object_id": "a"}])  # its id: a new one
        fresh = cs.create_session(session_id="s4")
        assert cs.storage.count("events") == len(events) + 1
    if cs.storage.dialect == "postgresql":
        assert fresh.session_number >= month_base(month_of(now_ms()))
