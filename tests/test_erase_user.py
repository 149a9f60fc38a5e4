"""Erasing a user and exporting their data, on both dialects: counts, a second call, the
audit, metrics exact of what remains, the admin route and the commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from searchtrail import Clickstream, Settings
from searchtrail.errors import InvalidInput, SessionNotFound
from searchtrail.paths import INTERNAL_PREFIX
from searchtrail.storage.sql.engine import normalize_database_url
from searchtrail.storage.sql.schema import privacy_audit
from searchtrail.timestamps import now_ms
from tests.bulk import session_rows
from tests.support import clean_env, sqlite_only

HOUR = 3_600_000


def _sessions_of(cs: Clickstream, user: str, prefix: str, n: int, events: int = 2) -> None:
    for i in range(n):
        sid = f"{prefix}{i}"
        cs.create_session(
            session_id=sid,
            user_id=user,
            search_query=f"q {i}",
            search_results=[{"object_id": f"o{j}"} for j in range(5)],
        )
        cs.push_events(sid, [{"event_id": f"e{k}", "object_id": f"o{k}"} for k in range(events)])


def audit_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(privacy_audit).order_by(privacy_audit.c.audit_id))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def test_an_erase_counts_what_it_removed_and_again_answers_zeros(
    cs: Clickstream, database_url: str
) -> None:
    _sessions_of(cs, "alice", "a", 3)
    _sessions_of(cs, "bob", "b", 2, events=1)
    cs.use_for_improvement("a1")
    cs.use_for_improvement("b0")

    first = cs.delete_user("alice")
    assert first.model_dump() == {
        "user_id": "alice",
        "sessions": 3,
        "events": 6,
        "queue_entries": 1,
    }
    for i in range(3):
        with pytest.raises(SessionNotFound):
            cs.get_session(f"a{i}")
    assert len(cs.get_session("b1").events) == 1  # another user's sessions stay
    assert cs.improvement_counts().pending == 1
    assert cs.storage.count("events") == 2 and cs.storage.count("session_stats") == 2

    again = cs.delete_user("alice")
    assert (again.sessions, again.events, again.queue_entries) == (0, 0, 0)

    audit = audit_rows(database_url)
    counts = [
        (r["action"], r["path"], r["sessions"], r["events"], r["queue_entries"]) for r in audit
    ]
    assert counts == [("erase", "library", 3, 6, 1), ("erase", "library", 0, 0, 0)]
    assert all(abs(r["at_ms"] - now_ms()) < 60_000 for r in audit)
    assert "alice" not in repr(audit)


def _load(cs: Clickstream, prefix: str, n: int, at: int, user: str | None = None) -> None:
    rows, evs = [], []
    for i in range(n):
        row, session_events = session_rows(i, prefix, at)
        row["created_at_ms"] = at + i * 611_000  # about ten minutes apart: shared hours
        if user is not None:
            row["user_id"] = user
        for e in session_events:
            e["created_at_ms"] = row["created_at_ms"] + 3_000
        rows.append(row)
        evs.extend(session_events)
    cs.bulk_register(rows, evs)


def _rounded(value: Any) -> Any:
    """Floats to 12 decimals: the hourly sums add and take out reciprocal ranks in floating
    point, so mrr may differ in its last bits (as tests/test_metrics_rollup.py allows);
    every count is compared exactly."""
    if isinstance(value, float):
        return round(value, 12)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _all_metrics(cs: Clickstream, at: int) -> list[Any]:
    since, until = at - HOUR, at + 40 * HOUR
    out: list[Any] = []
    for irrelevant in (False, True):
        out.append(cs.metrics(since, until, include_irrelevant=irrelevant).model_dump())
        for by in ("hour", "day", "query"):
            groups = cs.metrics(since, until, by=by, include_irrelevant=irrelevant)
            out.append(groups.model_dump())
        # Whole hours come from the hourly sums: a range inside them, and one across.
        out.append(cs.metrics(at + 2 * HOUR, at + 9 * HOUR).model_dump())
    return _rounded(out)


def test_metrics_after_an_erase_are_those_of_a_database_that_never_had_the_user(
    cs: Clickstream, second_url: str
) -> None:
    at = (now_ms() // HOUR - 30) * HOUR + 17
    with Clickstream(second_url) as never:
        for db in (cs, never):
            _load(db, "s", 120, at)
        _load(cs, "z", 60, at + 5_000, user="zed")  # the same hours as the others
        cs.refresh_metrics()  # zed's sessions count in the hourly sums before the erase
        assert _all_metrics(cs, at) != _all_metrics(never, at)
        assert cs.delete_user("zed").sessions == 60
        assert _all_metrics(cs, at) == _all_metrics(never, at)


def test_an_export_holds_every_session_event_and_queue_entry_of_the_user(
    cs: Clickstream, tmp_path: Path
) -> None:
    _sessions_of(cs, "alice", "a", 2, events=3)
    _sessions_of(cs, "bob", "b", 1)
    cs.use_for_improvement("a0")
    out = tmp_path / "alice.jsonl"
    assert cs.export_user("alice", out) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["session_id"] for line in lines] == ["a0", "a1"]
    assert all(line["user_id"] == "alice" for line in lines)
    assert [[e["event_id"] for e in line["events"]] for line in lines] == [["e0", "e1", "e2"]] * 2
    assert [len(line["queue_entries"]) for line in lines] == [1, 0]
    assert lines[0]["queue_entries"][0]["state"] == "pending"
    assert lines[0]["search_results"][4]["object_id"] == "o4"
    assert "has_more_events" not in lines[0]
    assert cs.export_user("nobody", tmp_path / "none.jsonl") == 0
    assert (tmp_path / "none.jsonl").read_text() == ""


@sqlite_only  # the HTTP layer: the erase itself runs on both dialects above
def test_the_route_needs_the_admin_scope(cs: Clickstream, database_url: str) -> None:
    from searchtrail.http import create_app

    _sessions_of(cs, "alice", "a", 2)
    read = cs.keys.create("reader", ["read"]).key
    admin = cs.keys.create("admin", ["admin"]).key
    path = f"{INTERNAL_PREFIX}/users/delete"
    with TestClient(create_app(clickstream=cs)) as client:
        denied = client.post(path, json={"user_id": "alice"}, headers={"X-API-Key": read})
        assert denied.status_code == 403, denied.text
        assert denied.json()["code"] == "forbidden"
        assert len(cs.get_session("a0").events) == 2
        auth = {"Authorization": f"Bearer {admin}"}
        done = client.post(path, json={"user_id": "alice"}, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json() == {"user_id": "alice", "sessions": 2, "events": 4, "queue_entries": 0}
        again = client.post(path, json={"user_id": "alice"}, headers=auth)
        assert again.json()["sessions"] == 0
        bad = client.post(path, json={"user_id": ""}, headers=auth)
        assert bad.status_code == 422 and "user_id" in bad.text
    assert [r["path"] for r in audit_rows(database_url)] == ["http", "http"]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
    )


@pytest.fixture
def alice(cs: Clickstream) -> Clickstream:
    _sessions_of(cs, "alice", "a", 2)
    _sessions_of(cs, "bob", "b", 1)
    return cs


@sqlite_only  # one process each, seconds apiece: the erase runs on both dialects above
def test_the_commands_export_then_erase_a_user(
    alice: Clickstream, database_url: str, tmp_path: Path
) -> None:
    printed = cli("users", "export", "alice", "--database-url", database_url)
    assert printed.returncode == 0, printed.stderr
    assert [json.loads(x)["session_id"] for x in printed.stdout.splitlines()] == ["a0", "a1"]
    assert "2 sessions" in printed.stderr
    out = tmp_path / "a.jsonl"
    written = cli("users", "export", "alice", "--out", str(out), "--database-url", database_url)
    assert written.returncode == 0 and written.stdout == ""
    assert out.read_text() == printed.stdout

    erased = cli("users", "delete", "alice", "--database-url", database_url)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout) == {
        "user_id": "alice", "sessions": 2, "events": 4, "queue_entries": 0
    }  # fmt: skip
    assert [r["path"] for r in audit_rows(database_url)] == ["cli"]
    assert len(alice.get_session("b0").events) == 2


@sqlite_only  # argument checks, before any database
def test_an_empty_user_id_is_refused_naming_the_field(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with Clickstream(settings=Settings(database_url=url)) as cs:
        with pytest.raises(InvalidInput, match="user_id"):
            cs.delete_user("")
        with pytest.raises(InvalidInput, match="retention_days"):
            cs.prune()


@sqlite_only  # SQLite's plan of the statement the erase runs; PostgreSQL's is the planner's
def test_an_erase_finds_the_sessions_through_the_user_index(cs: Clickstream) -> None:
    from sqlalchemy import event

    _sessions_of(cs, "alice", "a", 2)
    ran: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        ran.append((statement, params))

    writer = cs.storage.db.writer  # type: ignore[attr-defined]
    event.listen(writer, "before_cursor_execute", seen)
    try:
        cs.delete_user("alice")
    finally:
        event.remove(writer, "before_cursor_execute", seen)
    finds = [(s, p) for s, p in ran if s.lstrip().startswith("SELECT") and "user_id IN" in s]
    assert finds
    with cs.storage.engine.connect() as conn:  # type: ignore[attr-defined]
        for statement, params in finds:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            assert "INDEX ix_sessions_user_id" in str(plan), plan
