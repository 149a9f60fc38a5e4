"""``session_stats.stale`` (revision 0006): which rows the metrics' refresh recomputes,
and a push that leaves every index alone on PostgreSQL once its session is stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from searchtrail import Clickstream, Settings
from searchtrail.errors import SessionFull, SessionNotFound
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.migrate import upgrade
from searchtrail.storage.sql.schema import batches, session_stats, sessions
from searchtrail.timestamps import now_ms
from tests.pg import PgServer


def _register(cs: Clickstream, sid: str) -> None:
    cs.create_session(session_id=sid, search_results=[{"object_id": "a"}])


def _push(cs: Clickstream, sid: str, event_id: str) -> None:
    cs.push_events(sid, [{"event_id": event_id, "object_id": "a", "event_type": "click"}])


def test_a_push_marks_its_session_stale_and_a_refresh_clears_it(cs: Clickstream) -> None:
    for sid in ("s1", "s2", "s3"):
        _register(cs, sid)
    assert cs.storage.metrics.stale() == 3  # a new session is stale from its trigger
    assert cs.refresh_metrics() == 3
    assert cs.storage.metrics.stale() == 0
    _push(cs, "s2", "e1")
    _push(cs, "s2", "e2")
    assert cs.storage.metrics.stale() == 1
    assert cs.refresh_metrics() == 1
    assert cs.storage.metrics.stale() == 0


def test_an_upgrade_from_0005_keeps_which_rows_are_stale(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.new_database("template0")
    upgrade(url, "0005")
    t = now_ms()
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(
                batches.insert(),
                [{"batch_id": 1, "state": "collecting", "collecting": 1, "created_at_ms": t,
                  "updated_at_ms": t}],
            )  # fmt: skip
            conn.execute(
                sessions.insert(),
                [{"session_number": n, "session_id": f"s{n}", "batch_id": 1,
                  "search_results": [{"object_id": "a"}], "created_at_ms": t,
                  "created_at_given": False, "is_irrelevant": False, "registered_at_ms": t}
                 for n in (1, 2, 3)],
            )  # fmt: skip
            # At 0005 a row is stale where version and computed differ: only s2 is fresh.
            conn.execute(text("UPDATE session_stats SET computed = 1 WHERE session_number = 2"))
            conn.execute(
                text("UPDATE session_stats SET version = 3, computed = 2 WHERE session_number = 3")
            )
        upgrade(url)
        with engine.connect() as conn:
            flags = conn.execute(
                select(session_stats.c.session_number, session_stats.c.stale).order_by(
                    session_stats.c.session_number
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in flags] == [(1, True), (2, False), (3, True)]


# Summed over session_stats' partitions (storage/sql/partitions.py): the parent holds no row.
_HOT_UPDATES = text(
    "SELECT sum(pg_stat_get_xact_tuples_hot_updated(inhrelid)) FROM pg_inherits "
    "WHERE inhparent = 'session_stats'::regclass"
)


def test_a_second_push_updates_the_stats_row_in_place_on_postgresql(
    pg_server: PgServer,
) -> None:
    """The push's version bump changes no indexed column once the row is stale, so
    PostgreSQL makes it a HOT update: no entry in any of the table's four indexes. The
    row lives in a partition, which keeps the fill factor that leaves it room."""
    with Clickstream(pg_server.new_database()) as cs:
        _register(cs, "s1")
        cs.refresh_metrics()
        _push(cs, "s1", "e1")  # fresh -> stale: the partial index gains the row
        engine = cs.storage.db.engine
        with engine.begin() as conn:
            before = conn.execute(_HOT_UPDATES).scalar_one()
            # The push's own first statement, as store_events_write runs it.
            conn.execute(cs.storage.sessions._push_target, {"session_id": "s1"})
            after = conn.execute(_HOT_UPDATES).scalar_one()
        assert after - before == 1


def test_a_refused_push_leaves_its_session_fresh(database_url: str) -> None:
    """A push past the cap writes nothing, its stats bump included. On PostgreSQL the
    push is one statement that bumps first: the group commit must see that it wrote."""
    with Clickstream(settings=Settings(database_url=database_url, max_events_per_session=2)) as cs:
        _register(cs, "s1")
        _push(cs, "s1", "e1")
        _push(cs, "s1", "e2")
        cs.refresh_metrics()
        with pytest.raises(SessionFull):
            _push(cs, "s1", "e3")
        with pytest.raises(SessionNotFound):
            _push(cs, "nobody", "e4")
        assert cs.storage.metrics.stale() == 0
        assert cs.push_events("s1", [{"event_id": "e2"}]).duplicates == 1  # fits: known
        assert cs.storage.metrics.stale() == 1
