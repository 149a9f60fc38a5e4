"""PostgreSQL: events and session_stats partitioned by month of registration.

Retention then drops a month's partitions instead of deleting its rows one by one
(storage/sql/partitions.py, docs/postgresql.md). Each table is rebuilt partitioned by
RANGE(session_number): the old one is renamed, the new one takes its columns and
defaults (events.id's sequence moves over to it), every row goes into one initial
partition below the current month's base, then the keys, indexes and triggers are
built again (but for events' foreign key to sessions: see schema.events) and the old
table dropped. The sessions' number sequence moves to the
current month's base, so new sessions land in this month's partition. SQLite: nothing.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import time

from alembic import op
from sqlalchemy import Connection

from searchtrail.storage.sql._rollup import postgres_drop, postgres_triggers
from searchtrail.storage.sql.partitions import ensure_partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_EVENT_KEYS = (
    "ADD CONSTRAINT pk_events PRIMARY KEY ({pk})",
    "ADD CONSTRAINT uq_events_session_number_event_id UNIQUE (session_number, event_id)",
)
# Not on the partitioned table: its check, once per deleted session, cost more than the
# whole rest of dropping a month (schema.events).
_EVENT_FK = (
    "ADD CONSTRAINT fk_events_session_number_sessions FOREIGN KEY (session_number) "
    "REFERENCES sessions (session_number)"
)
_STATS_INDEXES = (
    "CREATE INDEX ix_session_stats_created_at_ms ON session_stats (created_at_ms)",
    "CREATE INDEX ix_session_stats_stale ON session_stats (session_number) WHERE stale",
    "CREATE INDEX ix_session_stats_first_interaction ON session_stats "
    "(created_at_ms, is_irrelevant, first_interaction_ms) "
    "WHERE first_interaction_ms IS NOT NULL",
)


def _set_aside(conn: Connection, table: str) -> str:
    """Rename ``table`` out of the way, its keys and indexes dropped (their names are
    the new table's), and answer the new name."""
    old = f"{table}_unpartitioned"
    conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {old}")
    if table == "events":
        conn.exec_driver_sql(
            f"ALTER TABLE {old} DROP CONSTRAINT IF EXISTS fk_events_session_number_sessions, "
            "DROP CONSTRAINT uq_events_session_number_event_id, DROP CONSTRAINT pk_events"
        )
    else:
        conn.exec_driver_sql(
            "DROP INDEX ix_session_stats_created_at_ms, ix_session_stats_stale, "
            "ix_session_stats_first_interaction"
        )
        conn.exec_driver_sql(f"ALTER TABLE {old} DROP CONSTRAINT pk_session_stats")
    return old


def _fill_and_key(conn: Connection, table: str, old: str, *, partitioned: bool) -> None:
    conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {old}")
    if table == "events":
        pk = "id, session_number" if partitioned else "id"
        keys = [k.format(pk=pk) for k in _EVENT_KEYS] + ([] if partitioned else [_EVENT_FK])
        conn.exec_driver_sql("ALTER SEQUENCE events_id_seq OWNED BY events.id")
        conn.exec_driver_sql(f"ALTER TABLE events {', '.join(keys)}")
    else:
        conn.exec_driver_sql(
            "ALTER TABLE session_stats ADD CONSTRAINT pk_session_stats PRIMARY KEY (session_number)"
        )
        for ddl in _STATS_INDEXES:
            conn.exec_driver_sql(ddl)
    conn.exec_driver_sql(f"DROP TABLE {old}")


def _rebuild(*, partitioned: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for ddl in postgres_drop():
        conn.exec_driver_sql(ddl)
    old = {table: _set_aside(conn, table) for table in ("events", "session_stats")}
    by = " PARTITION BY RANGE (session_number)" if partitioned else ""
    for table, was in old.items():
        conn.exec_driver_sql(f"CREATE TABLE {table} (LIKE {was} INCLUDING DEFAULTS){by}")
    if partitioned:
        ensure_partitions(conn, int(time.time() * 1000))
    else:
        conn.exec_driver_sql("ALTER TABLE session_stats SET (fillfactor = 80)")
    for table, was in old.items():
        _fill_and_key(conn, table, was, partitioned=partitioned)
    for ddl in postgres_triggers():
        conn.exec_driver_sql(ddl)


def upgrade() -> None:
    _rebuild(partitioned=True)


def downgrade() -> None:
    _rebuild(partitioned=False)
