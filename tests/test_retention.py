"""Retention on both dialects: old sessions go with their events, queue entries and
stats, in chunks; unarchived batches' stay; a dry run changes nothing; two pruners at
once remove each session once; metrics stay exact of what remains."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import SessionNotFound
from searchtrail.models import PruneSummary
from searchtrail.timestamps import now_ms
from tests.bulk import session_rows
from tests.support import sqlite_only
from tests.test_erase_user import _rounded, audit_rows, cli

DAY = 86_400_000
TABLES = ("sessions", "events", "session_stats", "improvement_queue", "privacy_audit")


def _load(cs: Clickstream, prefix: str, n: int, at: int) -> None:
    """``n`` sessions from ``at`` on, an hour apart, into the collecting batch."""
    rows, evs = [], []
    for i in range(n):
        row, session_events = session_rows(i, prefix, at)
        row["created_at_ms"] = at + i * 3_600_000
        for e in session_events:
            e["created_at_ms"] = row["created_at_ms"] + 2_000
        rows.append(row)
        evs.extend(session_events)
    cs.bulk_register(rows, evs)


def _archive_collecting(cs: Clickstream, release_id: str) -> None:
    released = cs.release_batch({"release_id": release_id})
    cs.set_batch_state(released.batch_id, "archived")


def _counts(cs: Clickstream) -> dict[str, int]:
    return {t: cs.storage.count(t) for t in TABLES}


def _sessions(cs: Clickstream, prefix: str, n: int) -> list[str]:
    kept = []
    for i in range(n):
        try:
            cs.get_session(f"{prefix}{i}", events_limit=0)
            kept.append(f"{prefix}{i}")
        except SessionNotFound:
            pass
    return kept


@pytest.fixture
def aged(cs: Clickstream) -> Clickstream:
    """Batch 1, archived: 30 sessions 60 days old. Batch 2, collecting: 10 sessions 60
    days old and 10 of today. A queue entry on an old archived session."""
    _load(cs, "old", 30, now_ms() - 60 * DAY)
    cs.use_for_improvement("old3")
    _archive_collecting(cs, "r1")
    _load(cs, "kept", 10, now_ms() - 60 * DAY)
    _load(cs, "new", 10, now_ms() - 10 * 3_600_000)
    return cs


def test_a_prune_removes_old_archived_sessions_and_a_dry_run_nothing(
    aged: Clickstream, database_url: str
) -> None:
    cs = aged
    before = _counts(cs)
    old_events = sum(len(session_rows(i, "old", 0)[1]) for i in range(30))
    dry = cs.prune(dry_run=True, retention_days=30)
    assert (dry.dry_run, dry.sessions, dry.events, dry.queue_entries) == (True, 30, old_events, 1)
    assert _counts(cs) == before

    pruned = cs.prune(retention_days=30)
    assert (pruned.sessions, pruned.events, pruned.queue_entries) == (30, old_events, 1)
    assert pruned.chunks == 1 and not pruned.more
    assert _sessions(cs, "old", 30) == []
    assert _sessions(cs, "kept", 10) == [f"kept{i}" for i in range(10)]  # batch not archived
    assert len(_sessions(cs, "new", 10)) == 10
    after = _counts(cs)
    assert after["sessions"] == after["session_stats"] == 20
    assert after["events"] == before["events"] - old_events
    assert after["improvement_queue"] == 0
    assert [(r["action"], r["path"], r["sessions"]) for r in audit_rows(database_url)] == [
        ("prune", "library", 30)
    ]
    assert cs.prune(retention_days=30).sessions == 0  # nothing left to go: no audit row
    assert len(audit_rows(database_url)) == 1


def test_without_keep_unarchived_every_old_session_goes(
    database_url: str, aged: Clickstream
) -> None:
    with Clickstream(
        settings=Settings(
            database_url=database_url, retention_days=30, retention_keep_unarchived=False
        )
    ) as cs:
        assert cs.prune(dry_run=True).sessions == 40
        assert cs.prune().sessions == 40
        assert _sessions(cs, "kept", 10) == []
        assert len(_sessions(cs, "new", 10)) == 10


def test_a_prune_goes_a_chunk_per_transaction(aged: Clickstream) -> None:
    cs = aged
    cs.storage.privacy.prune_chunk = 7  # type: ignore[attr-defined]
    first = cs.prune(retention_days=30, max_chunks=2)
    assert (first.sessions, first.chunks, first.more) == (14, 2, True)
    # Oldest first: the earliest created sessions went.
    assert _sessions(cs, "old", 14) == []
    rest = cs.prune(retention_days=30)
    assert (rest.sessions, rest.chunks, rest.more) == (16, 3, False)


def _all_metrics(cs: Clickstream, since: int, until: int) -> list[Any]:
    out: list[Any] = [cs.metrics(since, until, include_irrelevant=True).model_dump()]
    for by in ("day", "hour", "query"):
        out.append(cs.metrics(since, until, by=by).model_dump())
    return _rounded(out)


def test_metrics_after_a_prune_are_those_of_what_remains(
    aged: Clickstream, second_url: str
) -> None:
    cs = aged
    cs.refresh_metrics()  # the old sessions count in the hourly sums before they go
    with Clickstream(second_url) as remains:
        _load(remains, "kept", 10, now_ms() - 60 * DAY)
        _load(remains, "new", 10, now_ms() - 10 * 3_600_000)
        # The same created_at: _load of the fixture ran a moment earlier.
        for name in ("kept", "new"):
            for i in range(10):
                assert (
                    cs.get_session(f"{name}{i}").created_at_ms // 3_600_000
                    == remains.get_session(f"{name}{i}").created_at_ms // 3_600_000
                )
        span = (now_ms() - 100 * DAY, now_ms() + DAY)
        assert _all_metrics(cs, *span) != _all_metrics(remains, *span)
        cs.prune(retention_days=30)
        assert _all_metrics(cs, *span) == _all_metrics(remains, *span)


def test_two_pruners_at_once_remove_each_session_once(aged: Clickstream, database_url: str) -> None:
    results: list[PruneSummary] = []
    errors: list[BaseException] = []
    opened = [Clickstream(database_url) for _ in range(2)]

    def run(cs: Clickstream) -> None:
        cs.storage.privacy.prune_chunk = 3  # type: ignore[attr-defined]
        try:
            results.append(cs.prune(retention_days=30, path="background"))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(cs,)) for cs in opened]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for cs in opened:
            cs.close()
    assert errors == []
    assert sum(r.sessions for r in results) == 30
    assert sum(r["sessions"] for r in audit_rows(database_url)) == 30
    assert aged.storage.count("sessions") == 20


def test_the_server_prunes_in_the_background(database_url: str, aged: Clickstream) -> None:
    from searchtrail.http import create_app

    settings = Settings(database_url=database_url, retention_days=30, retention_interval_s=0.05)
    with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)):
        deadline = time.monotonic() + 20
        while cs.storage.count("sessions") > 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cs.storage.count("sessions") == 20
    assert {r["path"] for r in audit_rows(database_url)} == {"background"}


@sqlite_only  # one process each, seconds apiece: the prune runs on both dialects above
def test_the_prune_command(aged: Clickstream, database_url: str) -> None:
    refused = cli("prune", "--database-url", database_url)
    assert refused.returncode == 2 and "SEARCHTRAIL_RETENTION_DAYS" in refused.stderr
    dry = cli("prune", "--dry-run", "--database-url", database_url, SEARCHTRAIL_RETENTION_DAYS="30")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["sessions"] == 30 and json.loads(dry.stdout)["dry_run"]
    assert aged.storage.count("sessions") == 50
    done = cli("prune", "--days", "30", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sessions"] == 30
    assert aged.storage.count("sessions") == 20
    assert [r["path"] for r in audit_rows(database_url)] == ["cli"]
