"""The prune scenario (PostgreSQL): retention by dropping month partitions beside the same
rows removed with plain DELETEs, on two copies of one database, in the same run.

The database holds ``events`` events, 10 per session, in sessions spread evenly over
``months`` calendar months ending with the current one, each month's sessions numbered in
its partition (storage/sql/partitions.py), every session's stats computed and the hourly
sums filled. It is generated in the server (INSERT ... SELECT over generate_series, no
row crosses the network), vacuumed, then copied twice (CREATE DATABASE ... TEMPLATE).
One copy drops the oldest ``drop_months`` months with ``drop_expired_partitions``; the
other removes the same sessions' events, queue entries and sessions with DELETE
statements in one transaction (the stats rows and the hourly sums then follow by the
triggers, row by row). Both must end with the same rows and sums.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy import Connection, create_engine, text

from bench.procs import check_interrupt
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.migrate import create_session_stats_triggers
from searchtrail.storage.sql.partitions import (
    add_to_hourly,
    drop_expired_partitions,
    ensure_partitions,
    month_base,
    month_of,
    month_start_ms,
)
from searchtrail.storage.sql.schema import metadata
from searchtrail.timestamps import now_ms

if TYPE_CHECKING:
    from tests.pg import PgServer

__all__ = ["PruneRun", "run_prune"]

EVENTS_PER_SESSION = 10
_DATA, _DROP, _DELETE = "prune_data", "prune_drop", "prune_delete"


@dataclass
class PruneRun:
    events: int
    sessions: int
    months: int
    drop_months: int
    load_s: float
    dropped: tuple[int, int, int, int]  # partitions, sessions, events, queue entries
    drop_s: float
    deleted: tuple[int, int]  # sessions, events
    delete_s: float
    same_rows: bool

    @property
    def ratio(self) -> float:
        return self.delete_s / self.drop_s if self.drop_s else 0.0


def _build(server: PgServer, sessions: int, months: int) -> float:
    """The data database: answers the seconds its load took."""
    server.admin(f"DROP DATABASE IF EXISTS {_DATA}")
    server.admin(f"CREATE DATABASE {_DATA}")
    url = server.url(_DATA)
    started = time.monotonic()
    current = month_of(now_ms())
    first = current - months + 1
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            ensure_partitions(conn, month_start_ms(first))
            ensure_partitions(conn, now_ms())
            create_session_stats_triggers(conn)
            conn.exec_driver_sql(
                "INSERT INTO batches (batch_id, state, created_at_ms, updated_at_ms) "
                "VALUES (1, 'archived', 0, 0)"
            )
    finally:
        engine.dispose()
    per_month = -(-sessions // months)
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET maintenance_work_mem = '256MB'")
            conn.commit()
            for k in range(months):
                check_interrupt()
                with conn.begin():
                    _load_month(conn, first + k, min(per_month, sessions - k * per_month))
                print(f"  prune: month {k + 1}/{months} loaded", flush=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    return time.monotonic() - started


def _load_month(conn: Connection, month: int, n: int) -> None:
    """``n`` sessions of ``month`` (created over its first 28 days), their events, their
    computed stats and their part of the hourly sums (set-based, as the row triggers would
    have kept them); a queue entry every 100 sessions."""
    p = {
        "base": month_base(month), "top": month_base(month) + n, "month": month, "n": n,
        "start": month_start_ms(month), "span": 28 * 86_400_000 // max(n, 1),
        "per": EVENTS_PER_SESSION,
    }  # fmt: skip
    for sql in _LOAD:
        conn.execute(text(sql), p)
    in_month = "session_number >= {base} AND session_number < {top}".format(**p)
    add_to_hourly(conn, f"(SELECT * FROM session_stats WHERE {in_month})")


# The session_stats row comes with its session here: its trigger is off during the load.
_LOAD = (
    "ALTER TABLE sessions DISABLE TRIGGER session_stats_insert",
    "INSERT INTO sessions (session_number, session_id, batch_id, search_results, "
    "created_at_ms, created_at_given, is_irrelevant, registered_at_ms) "
    "SELECT :base + i, 'm' || :month || '-' || i, 1, '[]'::jsonb, :start + i * :span, false, "
    "i % 50 = 0, :start + i * :span FROM generate_series(CAST(0 AS BIGINT), :n - 1) i",
    "ALTER TABLE sessions ENABLE TRIGGER session_stats_insert",
    "INSERT INTO session_stats (session_number, created_at_ms, batch_id, is_irrelevant, "
    "version, computed, stale, results, interactions, first_position, purchased, clicks, "
    "click_positions, positions_mask, first_interaction_ms, unshown_events) "
    "SELECT session_number, created_at_ms, 1, is_irrelevant, 1, 1, false, 10, 10, "
    "1 + session_number % 5, session_number % 7 = 0, 10, 30, 31, 1500, 0 "
    "FROM sessions WHERE session_number >= :base AND session_number < :top",
    "INSERT INTO events (session_number, event_id, object_id, event_type, created_at_ms) "
    "SELECT :base + i / :per, 'e' || i % :per, 'o' || i % 7, 'click', "
    ":start + (i / :per) * :span + 1000 * (i % :per) "
    "FROM generate_series(CAST(0 AS BIGINT), CAST(:n AS BIGINT) * :per - 1) i",
    "INSERT INTO improvement_queue (session_id, state, attempts, enqueued_at_ms) "
    "SELECT session_id, 'pending', 0, created_at_ms FROM sessions "
    "WHERE session_number >= :base AND session_number < :top AND session_number % 100 = 0",
)


def _state(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM events), "
            "(SELECT count(*) FROM session_stats), (SELECT count(*) FROM improvement_queue), "
            "(SELECT sum(sessions) FROM session_stats_hourly), "
            "(SELECT sum(clicks) FROM session_stats_hourly)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def _drop(url: str, cutoff: int) -> tuple[tuple[int, int, int, int], float]:
    engine = create_engine(normalize_database_url(url))
    try:
        started = time.monotonic()
        with engine.begin() as conn:
            dropped = drop_expired_partitions(conn, cutoff, keep_unarchived=True, dry_run=False)
        return dropped, time.monotonic() - started
    finally:
        engine.dispose()


def _delete(url: str, cutoff: int) -> tuple[tuple[int, int], float]:
    with psycopg.connect(url) as conn:
        started = time.monotonic()
        with conn.transaction():
            events = conn.execute(
                "DELETE FROM events e USING sessions s WHERE e.session_number = "
                "s.session_number AND s.created_at_ms < %s",
                (cutoff,),
            ).rowcount
            conn.execute(
                "DELETE FROM improvement_queue WHERE session_id IN "
                "(SELECT session_id FROM sessions WHERE created_at_ms < %s)",
                (cutoff,),
            )
            sessions = conn.execute(
                "DELETE FROM sessions WHERE created_at_ms < %s", (cutoff,)
            ).rowcount
        return (sessions, events), time.monotonic() - started


def run_prune(server: PgServer, events: int, months: int, drop_months: int) -> PruneRun:
    sessions = max(months, events // EVENTS_PER_SESSION)
    print(
        f"prune: loading {sessions * EVENTS_PER_SESSION:,} events over {months} months", flush=True
    )
    load_s = _build(server, sessions, months)
    for name in (_DROP, _DELETE):
        server.admin(f"DROP DATABASE IF EXISTS {name}")
        server.admin(f"CREATE DATABASE {name} TEMPLATE {_DATA}")
    cutoff = month_start_ms(month_of(now_ms()) - months + 1 + drop_months)
    check_interrupt()
    print(f"prune: dropping the oldest {drop_months} months' partitions", flush=True)
    dropped, drop_s = _drop(server.url(_DROP), cutoff)
    check_interrupt()
    print("prune: the same rows with DELETE", flush=True)
    deleted, delete_s = _delete(server.url(_DELETE), cutoff)
    same = _state(server.url(_DROP)) == _state(server.url(_DELETE))
    for name in (_DROP, _DELETE, _DATA):
        server.admin(f"DROP DATABASE IF EXISTS {name}")
    return PruneRun(
        events=sessions * EVENTS_PER_SESSION,
        sessions=sessions,
        months=months,
        drop_months=drop_months,
        load_s=load_s,
        dropped=dropped,
        drop_s=drop_s,
        deleted=deleted,
        delete_s=delete_s,
        same_rows=same,
    )
