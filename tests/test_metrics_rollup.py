"""The hourly sums (storage/sql/_rollup.py) answer exactly what the per-session sums do,
whatever happened to the sessions since: refreshes, pushes not yet refreshed, sessions
never computed, irrelevance, deletes, a new ranker key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select, update

from searchtrail import Clickstream
from searchtrail.metrics.definitions import Counts
from searchtrail.storage import MetricsScope
from searchtrail.storage.sql import metrics as sql_metrics
from searchtrail.storage.sql.schema import events, sessions
from searchtrail.timestamps import now_ms
from tests.bulk import session_rows

HOUR = 3_600_000


def _load(cs: Clickstream, n: int, prefix: str, at: int) -> None:
    rows, evs = [], []
    for i in range(n):
        row, session_events = session_rows(i, prefix, at)
        row["created_at_ms"] = at + i * 997_000  # about 16 minutes apart
        for e in session_events:
            e["created_at_ms"] = row["created_at_ms"] + 5_000
        rows.append(row)
        evs.extend(session_events)
    cs.storage.sessions.bulk_register(rows, evs, now_ms())


def _direct(cs: Clickstream, scope: MetricsScope, by: str | None) -> list[tuple[Any, Counts]]:
    """The sums over session_stats alone, as before the hourly sums."""
    groups: dict[Any, Counts] = {}
    db = cs.storage.metrics._db
    with db.read() as conn:
        sql_metrics._add_rows(
            groups, conn.execute(sql_metrics._sums(sql_metrics._group_key(by), scope))
        )
    return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0]))


def _same(cs: Clickstream, at: int) -> None:
    scopes = [
        MetricsScope(),
        MetricsScope(at + 1_234, at + 50 * HOUR - 5, False),
        MetricsScope(at + 2 * HOUR, None, True),
        MetricsScope(None, at + 20 * HOUR + 17, True),
        MetricsScope(at + 10, at + 20, False),
    ]
    for scope in scopes:
        for by in (None, "day", "hour"):
            got = cs.storage.metrics.counts(scope, by)
            want = _direct(cs, scope, by)
            assert [g for g, _ in got] == [g for g, _ in want], (scope, by)
            for (_, a), (_, b) in zip(got, want, strict=True):
                assert a.reciprocal_ranks == pytest.approx(b.reciprocal_ranks, rel=1e-12)
                a.reciprocal_ranks = b.reciprocal_ranks
                a.first_interaction_ms = b.first_interaction_ms = []
                assert a == b, (scope, by)


def test_the_hourly_sums_answer_what_the_sessions_do(cs: Clickstream) -> None:
    at = (now_ms() // HOUR - 80) * HOUR + 123
    _load(cs, 250, "a", at)
    cs.refresh_metrics()
    _same(cs, at)
    # Pushes not yet refreshed, and sessions never computed.
    for i in range(0, 60, 7):
        cs.push_events(
            f"a{i}", [{"event_id": "late", "object_id": f"o{i % 1000}", "event_type": "click"}]
        )
    _load(cs, 40, "b", at + 3 * HOUR)
    _same(cs, at)
    cs.refresh_metrics()
    _same(cs, at)
    # Irrelevance moves a session's part; a delete takes it out.
    db = cs.storage.metrics._db

    def change(conn: Any) -> None:
        conn.execute(
            update(sessions)
            .where(sessions.c.session_id.in_(["a3", "a5", "a26"]))
            .values(is_irrelevant=True)
        )
        conn.execute(
            update(sessions).where(sessions.c.session_id == "a13").values(is_irrelevant=False)
        )
        gone = select(sessions.c.session_number).where(sessions.c.session_id.in_(["a8", "a9"]))
        conn.execute(delete(events).where(events.c.session_number.in_(gone)))
        conn.execute(delete(sessions).where(sessions.c.session_id.in_(["a8", "a9"])))

    db.write(change)
    _same(cs, at)
    # Another ranker key makes every row stale, then computes it again.
    cs.storage.metrics.refresh("other", "team", limit=100)
    _same(cs, at)
    cs.storage.metrics.refresh("other", "team")
    _same(cs, at)


def test_a_push_counts_its_own_session_events_not_the_database(cs: Clickstream) -> None:
    """The push's cap once counted every event of the database (a SQLite RETURNING lost its
    table names): past max_events_per_session events in all, every push was refused."""
    cap = cs.storage.sessions.max_events_per_session
    at = now_ms() - HOUR
    rows, evs = [], []
    for i in range(3):
        row, _ = session_rows(i, "big", at)
        rows.append(row)
        evs += [
            {"session_id": row["session_id"], "event_id": f"e{j}", "object_id": None,
             "event_type": "view", "created_at_ms": at, "meta": None}
            for j in range(cap // 2 + 1)
        ]  # fmt: skip
    cs.storage.sessions.bulk_register(rows, evs, now_ms())
    row, _ = session_rows(0, "small", at)
    cs.storage.sessions.bulk_register([row], [], now_ms())
    cs.push_events("small0", [{"event_id": "x", "object_id": "o1", "event_type": "click"}])
