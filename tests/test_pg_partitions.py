"""PostgreSQL's monthly partitions (storage/sql/partitions.py): where sessions land, and
retention by dropping whole months, which must leave the metrics exact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from searchtrail import Clickstream, Settings
from searchtrail.errors import SessionFull
from searchtrail.http.app import maintain_partitions_forever
from searchtrail.storage.sql.partitions import (
    month_base,
    month_of,
    partitions,
)
from searchtrail.timestamps import now_ms
from tests.metrics_data import settings as history_settings
from tests.pg import PgServer
from tests.support import postgres_only

pytestmark = postgres_only

DAY = 86_400_000
OLD = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # the month to drop
NEWER = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)  # kept: past the cutoff
CUTOFF_MS = int(datetime(2026, 1, 10, tzinfo=UTC).timestamp() * 1000)
RANGE = {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}


@pytest.fixture
def url(dialect: str, pg_server: PgServer) -> str:
    """A database of its own: dropping partitions must not reach other tests'."""
    return pg_server.new_database()


@pytest.fixture
def cs(url: str) -> Iterator[Clickstream]:
    with Clickstream(settings=history_settings(url)) as clickstream:
        yield clickstream


def _sql(cs: Clickstream, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with cs.storage.engine.begin() as conn:  # type: ignore[attr-defined]
        found = conn.execute(text(sql), params)
        return [tuple(r) for r in found] if found.returns_rows else []


def _names(cs: Clickstream, table: str) -> list[str]:
    with cs.storage.engine.connect() as conn:  # type: ignore[attr-defined]
        return [p.name for p in partitions(conn, table)]


def _where(cs: Clickstream, sid: str) -> tuple[int, str, str]:
    """The session's number and the partitions its events and stats rows are in."""
    ((number,),) = _sql(cs, "SELECT session_number FROM sessions WHERE session_id = :s", s=sid)
    ((events,),) = _sql(
        cs,
        "SELECT DISTINCT tableoid::regclass::text FROM events WHERE session_number = :n",
        n=number,
    )
    ((stats,),) = _sql(
        cs, "SELECT tableoid::regclass::text FROM session_stats WHERE session_number = :n", n=number
    )
    return int(number), str(events), str(stats)


def _session(cs: Clickstream, sid: str, at: datetime, clicks: int, *, shown: int = 3) -> None:
    cs.create_session(
        session_id=sid,
        search_query="shoes",
        search_results=[{"object_id": f"o{k}"} for k in range(shown)],
        created_at=at.isoformat(),
    )
    events = [
        {"event_id": f"c{k}", "object_id": f"o{k % shown}",
         "created_at": (at + timedelta(seconds=k + 1)).isoformat()}
        for k in range(clicks)
    ]  # fmt: skip
    if events:
        cs.push_events(sid, events)


def _month_name(table: str, month: int) -> str:
    year, index = divmod(month, 12)
    return f"{table}_y{1970 + year}m{index + 1:02d}"


def test_partitions_exist_for_this_month_and_the_next_and_sessions_land_in_this_one(
    cs: Clickstream,
) -> None:
    month = month_of(now_ms())
    for table in ("events", "session_stats"):
        names = _names(cs, table)
        assert names == [
            f"{table}_initial",
            _month_name(table, month),
            _month_name(table, month + 1),
        ]
    _session(cs, "s1", datetime.now(UTC), clicks=1)
    number, events, stats = _where(cs, "s1")
    assert month_base(month) <= number < month_base(month + 1) < 2**53
    assert (events, stats) == (_month_name("events", month), _month_name("session_stats", month))


def test_a_session_after_the_month_rolls_over_lands_in_the_new_partition(cs: Clickstream) -> None:
    month = month_of(now_ms())
    _session(cs, "before", datetime.now(UTC), clicks=1)
    later = month_base(month + 2) >> 40  # the month after next, as months since 1970
    created = cs.storage.ensure_partitions(now_ms() + 40 * DAY)
    assert _month_name("events", later) in created  # created ahead again
    assert cs.storage.ensure_partitions(now_ms() + 40 * DAY) == []  # idempotent
    _session(cs, "after", datetime.now(UTC), clicks=2)
    number, events, stats = _where(cs, "after")
    assert month_base(month + 1) <= number < month_base(month + 2)
    assert (events, stats) == (
        _month_name("events", month + 1),
        _month_name("session_stats", month + 1),
    )
    assert _where(cs, "before")[1] == _month_name("events", month)
    # The sequence never moves back: an older "now" changes nothing.
    cs.storage.ensure_partitions(now_ms())
    _session(cs, "again", datetime.now(UTC), clicks=0)
    ((again,),) = _sql(cs, "SELECT session_number FROM sessions WHERE session_id = 'again'")
    assert again > number


def test_pushes_gets_dedupe_and_the_cap_work_across_partitions(url: str) -> None:
    with Clickstream(settings=Settings(database_url=url, max_events_per_session=3)) as cs:
        cs.create_session(session_id="old", search_results=[])
        cs.storage.ensure_partitions(now_ms() + 40 * DAY)
        cs.create_session(session_id="new", search_results=[])
        for sid in ("old", "new"):
            cs.push_events(sid, [{"event_id": "a"}, {"event_id": "b"}])
            cs.push_events(sid, [{"event_id": "a"}])  # a replay: deduplicated
            assert [e.event_id for e in cs.get_session(sid).events] == ["a", "b"]
            with pytest.raises(SessionFull):
                cs.push_events(sid, [{"event_id": "c"}, {"event_id": "d"}])
            cs.push_events(sid, [{"event_id": "c"}])
            assert len(cs.get_session(sid).events) == 3
        old, new = (_where(cs, s)[1] for s in ("old", "new"))
        assert old != new


def _load_two_months(cs: Clickstream) -> None:
    """Ten sessions registered this month, dated in early January, then (the month
    rolled over) ten dated late January and an irrelevant one: metrics computed first,
    so the hourly sums hold the old month's part."""
    for i in range(10):
        _session(cs, f"old{i}", OLD + timedelta(minutes=7 * i), clicks=i % 3, shown=1 + i % 3)
    cs.storage.queue.enqueue("old1", now_ms(), 60_000)
    cs.storage.ensure_partitions(now_ms() + 40 * DAY)
    for i in range(10):
        _session(cs, f"new{i}", NEWER + timedelta(minutes=11 * i), clicks=i % 4)
    _session(cs, "junk", NEWER, clicks=1)
    cs.mark_irrelevant("junk")
    cs.storage.queue.enqueue("new1", now_ms(), 60_000)
    cs.refresh_metrics()


def test_dropping_an_expired_month_removes_exactly_its_rows_and_keeps_metrics_exact(
    cs: Clickstream, pg_server: PgServer
) -> None:
    _load_two_months(cs)
    month = month_of(now_ms())
    counts = {t: cs.storage.count(t) for t in ("sessions", "events", "session_stats")}
    old_events = sum(i % 3 for i in range(10))
    dropped = cs.storage.drop_expired_partitions(CUTOFF_MS, keep_unarchived=False, dry_run=False)
    assert dropped == (1, 10, old_events, 1)  # old1 was queued
    assert _month_name("events", month) not in _names(cs, "events")
    assert _month_name("session_stats", month) not in _names(cs, "session_stats")
    assert cs.storage.count("sessions") == counts["sessions"] - 10
    assert cs.storage.count("events") == counts["events"] - old_events
    assert cs.storage.count("session_stats") == counts["session_stats"] - 10
    assert _sql(cs, "SELECT session_id FROM improvement_queue") == [("new1",)]
    assert _sql(cs, "SELECT count(*) FROM sessions WHERE session_id LIKE 'old%'") == [(0,)]
    # The same as a database that only ever held what remains.
    with Clickstream(settings=history_settings(pg_server.new_database())) as fresh:
        for i in range(10):
            _session(fresh, f"new{i}", NEWER + timedelta(minutes=11 * i), clicks=i % 4)
        _session(fresh, "junk", NEWER, clicks=1)
        fresh.mark_irrelevant("junk")
        fresh.refresh_metrics()
        for irrelevant in (False, True):
            assert cs.metrics(**RANGE, include_irrelevant=irrelevant) == fresh.metrics(
                **RANGE, include_irrelevant=irrelevant
            )
    # A number below every month (an import's) still finds a partition.
    assert _names(cs, "events")[0] == "events_initial"
    # Nothing more expires: the next month holds sessions past the cutoff.
    again = cs.storage.drop_expired_partitions(CUTOFF_MS, keep_unarchived=False, dry_run=False)
    assert again == (0, 0, 0, 0)


def test_a_dry_run_counts_and_changes_nothing(cs: Clickstream) -> None:
    _load_two_months(cs)
    before = {t: cs.storage.count(t) for t in ("sessions", "events", "session_stats_hourly")}
    names = _names(cs, "events")
    hourly = _sql(cs, "SELECT * FROM session_stats_hourly ORDER BY 1, 2")
    found = cs.storage.drop_expired_partitions(CUTOFF_MS, keep_unarchived=False, dry_run=True)
    assert found == (1, 10, sum(i % 3 for i in range(10)), 0)
    assert {t: cs.storage.count(t) for t in before} == before
    assert _names(cs, "events") == names
    assert _sql(cs, "SELECT * FROM session_stats_hourly ORDER BY 1, 2") == hourly


def test_keep_unarchived_keeps_a_month_with_a_batch_not_archived(cs: Clickstream) -> None:
    _load_two_months(cs)
    keep = {"keep_unarchived": True, "dry_run": False}
    assert cs.storage.drop_expired_partitions(CUTOFF_MS, **keep) == (0, 0, 0, 0)  # collecting
    released = cs.release_batch("r1")
    cs.set_batch_state(released.batch_id, "fine_tuning")
    assert cs.storage.drop_expired_partitions(CUTOFF_MS, **keep) == (0, 0, 0, 0)
    cs.set_batch_state(released.batch_id, "archived")
    assert cs.storage.drop_expired_partitions(CUTOFF_MS, **keep)[:2] == (1, 10)


def test_serve_upkeep_creates_the_next_month_in_the_background(cs: Clickstream) -> None:
    """``serve``'s hourly job (here every few milliseconds) puts back a missing month."""
    month = month_of(now_ms())
    for table in ("events", "session_stats"):
        _sql(cs, f"DROP TABLE {_month_name(table, month + 1)}")

    async def run() -> None:
        stop = asyncio.Event()
        upkeep = asyncio.create_task(maintain_partitions_forever(cs, 0.01, stop))
        for _ in range(500):
            if _month_name("events", month + 1) in _names(cs, "events"):
                break
            await asyncio.sleep(0.01)
        stop.set()
        await upkeep

    asyncio.run(run())
    for table in ("events", "session_stats"):
        assert _month_name(table, month + 1) in _names(cs, table)


def test_prune_drops_the_expired_month_then_deletes_rows(cs: Clickstream) -> None:
    """Retention's one entry (storage/sql/privacy.py) takes the fast path on PostgreSQL:
    the expired month goes as a partition, counted and audited like a row prune."""
    _load_two_months(cs)
    month = month_of(now_ms())
    result = cs.storage.privacy.prune(CUTOFF_MS, False, False, "library", now_ms())
    assert (result.removed.sessions, result.removed.queue_entries) == (10, 1)
    assert result.removed.events == sum(i % 3 for i in range(10))
    assert _month_name("events", month) not in _names(cs, "events")
    assert _sql(cs, "SELECT action, sessions FROM privacy_audit") == [("prune", 10)]
    again = cs.storage.privacy.prune(CUTOFF_MS, False, False, "library", now_ms())
    assert again.removed == type(again.removed)()
