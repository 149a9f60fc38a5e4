"""The one schema, written once for every dialect.

Design choices that matter for speed and correctness:

- ``sessions.session_number`` is the primary key and comes from the database's own
  auto-increment (SQLite rowid, PostgreSQL identity). It is unique and increasing in
  registration order, which is all the contract asks of a number *within* a batch, and
  no shared counter row is updated by every registration.
- ``batches.collecting`` is 1 for the collecting batch and NULL otherwise; a unique
  constraint on it makes "exactly one batch collects" a database fact on both dialects.
- Events point at the integer ``session_number``, not the text id, which keeps the
  unique index that deduplicates events small.
- ``sessions.search_query`` may be any JSON value, a bare number too, so on SQLite its
  column is declared ``JSON TEXT`` (``JsonText``): text affinity keeps a number's JSON as
  written, where a ``JSON`` column's numeric affinity made ``1.0`` into ``1``.

- ``session_stats`` is derived: one row per session, what the search-quality metrics
  need of it (storage/sql/metrics.py). A trigger inserts the row with its session and
  follows ``is_irrelevant``; a push bumps ``version`` and sets ``stale``; the metrics'
  refresh recomputes the stale rows. A dump leaves it out; an import rebuilds it.

A change here needs a new revision in ``migrations/versions``: tests/test_migrations.py
compares what the revisions build with these tables, on both dialects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Constraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler, TypeCompiler

from searchtrail.storage.sql._rollup import ROLLUP_COLUMNS

__all__ = [
    "PARTITION_BY",
    "STALE_BUMP",
    "JsonText",
    "api_keys",
    "batches",
    "created_on",
    "events",
    "health_checks",
    "improvement_queue",
    "metadata",
    "metrics_state",
    "privacy_audit",
    "session_stats",
    "session_stats_hourly",
    "sessions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the fast rowid alias.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


class JsonText(JSON):
    """JSON in a SQLite column of text affinity.

    SQLite gives a column declared ``JSON`` numeric affinity, and converts text that reads
    as a number: a bare number's JSON was stored as a number, so ``1.0`` came back ``1``,
    ``-0.0`` as ``0`` and ``2**70`` rounded to 15 digits. Objects, arrays and strings never
    read as numbers, so only a column that may hold a bare number needs this.
    """


@compiles(JsonText, "sqlite")
def _json_text_on_sqlite(_type: JsonText, _compiler: TypeCompiler, **_kw: object) -> str:
    return "JSON TEXT"  # "TEXT" in the declared type: text affinity


JsonAny = JsonText(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)

# On PostgreSQL, events and session_stats are partitioned by month of registration
# (storage/sql/partitions.py); sessions is not, so that session_id stays unique.
PARTITION_BY = "RANGE (session_number)"


def created_on(item: Constraint, dialect: str) -> bool:
    """Whether ``item`` exists on ``dialect`` (its ``ddl_if``), for comparing schemas."""
    only = item._ddl_if.dialect if item._ddl_if is not None else None
    return only is None or dialect in ((only,) if isinstance(only, str) else only)


@compiles(PrimaryKeyConstraint, "postgresql")
def _primary_key_with_partition_key(
    constraint: PrimaryKeyConstraint, compiler: DDLCompiler, **kw: Any
) -> str:
    """A partitioned table's primary key must hold its partition key: events' is (id,
    session_number) on PostgreSQL, (id) on SQLite, where only "INTEGER PRIMARY KEY" is
    the rowid. ``id`` alone stays unique: it comes from a sequence."""
    ddl = compiler.visit_primary_key_constraint(constraint, **kw)
    table = constraint.table
    partitioned = table.dialect_options["postgresql"]["partition_by"]
    if partitioned and "session_number" not in constraint.columns:
        ddl = ddl.replace(")", ", session_number)", 1) if ddl.endswith(")") else ddl
    return str(ddl)


batches = Table(
    "batches",
    metadata,
    Column("batch_id", Id, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("collecting", Integer, nullable=True, unique=True),
    Column("release_id", String(1024), nullable=True, unique=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("released_at_ms", BigInteger, nullable=True),
    Column("updated_at_ms", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_number", Id, primary_key=True, autoincrement=True),
    Column("session_id", String(1024), nullable=False, unique=True),
    Column("batch_id", Id, ForeignKey("batches.batch_id"), nullable=False),
    Column("search_query", JsonAny, nullable=True),
    Column("search_results", Json, nullable=False),
    Column("search_meta", Json, nullable=True),
    Column("payload_filter", Json, nullable=True),
    Column("sort_by", Json, nullable=True),
    Column("user_id", String(1024), nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("created_at_given", Boolean, nullable=False),
    Column("is_irrelevant", Boolean, nullable=False, default=False),
    Column("registered_at_ms", BigInteger, nullable=False),
    # Keys of the registration that the contract does not name, kept as sent.
    Column("extra", Json, nullable=True),
    Index("ix_sessions_batch_id_session_number", "batch_id", "session_number"),
    # An erase finds a user's sessions here (storage/sql/privacy.py).
    Index("ix_sessions_user_id", "user_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_number", Id, nullable=False),
    Column("event_id", String(1024), nullable=False),
    Column("object_id", String(1024), nullable=True),
    Column("event_type", String(1024), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("meta", Json, nullable=True),
    Column("extra", Json, nullable=True),  # the event's keys the contract does not name
    UniqueConstraint("session_number", "event_id"),
    # On SQLite only. On PostgreSQL its check ran once per deleted session, against the
    # partitioned events (58 us each): dropping a month of a million sessions took a
    # minute, not seconds (docs/postgresql.md). Events reach a session only through a
    # push or an import, which find it in the same transaction, and every delete of
    # sessions removes their events first.
    ForeignKeyConstraint(["session_number"], ["sessions.session_number"]).ddl_if(dialect="sqlite"),
    postgresql_partition_by=PARTITION_BY,
)

improvement_queue = Table(
    "improvement_queue",
    metadata,
    Column("entry_id", Id, primary_key=True, autoincrement=True),
    Column("session_id", String(1024), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("enqueued_at_ms", BigInteger, nullable=False),
    Column("claimed_at_ms", BigInteger, nullable=True),
    Column("claimed_by", String(256), nullable=True),
    Column("finished_at_ms", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_improvement_queue_state_entry_id", "state", "entry_id"),
    Index("ix_improvement_queue_session_id_state", "session_id", "state"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Id, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("key_hash", String(128), nullable=False),
    Column("scopes", String(256), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=True),
)

# Derived from sessions and events, never sent by a client (storage/sql/metrics.py).
# Invariant: a row exists for every session (the dialect's trigger inserts it in the
# session's own statement) and ``version`` moves in every transaction that adds events
# to its session, setting ``stale``; a row whose ``computed`` equals ``version`` is exact.
# Without the bump, a late event would leave its session's metrics stale for ever.
# No index reads ``version``, and ``stale`` is already true after a session's first push
# since the last refresh: PostgreSQL then updates the row in place in its page (a HOT
# update, which the fill factor leaves room for) and writes no index entry per push.
session_stats = Table(
    "session_stats",
    metadata,
    Column("session_number", Id, primary_key=True, autoincrement=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("batch_id", Id, nullable=False),
    Column("is_irrelevant", Boolean, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("computed", Integer, nullable=False, server_default="0"),
    Column("stale", Boolean, nullable=False, server_default=true()),
    # What the refresh computes (NULL until it has):
    Column("results", Integer, nullable=True),  # results shown
    Column("interactions", Integer, nullable=True),  # events on shown results
    Column("first_position", Integer, nullable=True),  # smallest position interacted with
    Column("purchased", Boolean, nullable=True),  # an interaction of type purchase
    Column("clicks", Integer, nullable=True),  # interactions of type click
    Column("click_positions", BigInteger, nullable=True),  # the sum of their positions
    Column("positions_mask", Integer, nullable=True),  # bit k-1: interaction at k <= 20
    Column("first_interaction_ms", BigInteger, nullable=True),  # after created_at
    Column("unshown_events", Integer, nullable=True),  # events on objects never shown
    Column("query_key", Text, nullable=True),
    Column("ranker", Text, nullable=True),
    Column("teams", Text, nullable=True),  # interleaving: {"team": interactions}, as JSON
    Index("ix_session_stats_created_at_ms", "created_at_ms"),
    Index(
        "ix_session_stats_stale",
        "session_number",
        sqlite_where=text("stale"),
        postgresql_where=text("stale"),
    ),
    # The time-to-first-interaction percentiles read their values from this index alone.
    Index(
        "ix_session_stats_first_interaction",
        "created_at_ms",
        "is_irrelevant",
        "first_interaction_ms",
        sqlite_where=text("first_interaction_ms IS NOT NULL"),
        postgresql_where=text("first_interaction_ms IS NOT NULL"),
    ),
    # The fill factor (80) is each partition's: a partitioned table takes no storage
    # parameters (storage/sql/partitions.py).
    postgresql_partition_by=PARTITION_BY,
)
# The SET of every write that makes a session's stats stale (a push, an import's events, a
# key change): moving ``version`` fails a refresh in flight, ``stale`` queues the row for
# the next one. A write that moved one without the other would be lost to the metrics.
STALE_BUMP = {"version": session_stats.c.version + 1, "stale": True}

# The sums of the computed session_stats rows per hour (storage/sql/_rollup.py): the
# metrics read whole hours here. Kept by triggers on session_stats (the dialect's).
session_stats_hourly = Table(
    "session_stats_hourly",
    metadata,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("is_irrelevant", Boolean, primary_key=True),
    *(
        Column(name, Float if name == "reciprocal_ranks" else BigInteger, nullable=False)
        for name in ROLLUP_COLUMNS
    ),
)

# The keys session_stats was computed under (ranker_key, team_key): under other keys,
# every row is computed again.
metrics_state = Table(
    "metrics_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# /health/ready's write: each serving process upserts its own row through the write path
# a push takes, so "ready" means a write was committed just now. A row per process keeps
# two processes' checks off each other's row lock; rows of processes gone a day are pruned.
health_checks = Table(
    "health_checks",
    metadata,
    Column("process", String(200), primary_key=True),
    Column("checked_at_ms", BigInteger, nullable=False),
)

# One row per erase, and per prune chunk that removed something (storage/sql/privacy.py):
# when, by which path (http, cli, library, background), how many rows. Never the user id: an
# audit that kept it would keep what the erase removed.
privacy_audit = Table(
    "privacy_audit",
    metadata,
    Column("audit_id", Id, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("action", String(16), nullable=False),  # erase, prune
    Column("path", String(16), nullable=False),
    Column("sessions", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("queue_entries", BigInteger, nullable=False),
)
