"""Search-quality metrics: ``session_stats``, one derived row per session.

The table, its sums per hour (empty), their triggers (the dialect's), and a row for
every existing session, stale (``version`` 1, ``computed`` 0): the metrics' first
refresh computes them all. The insert is one statement; on a large database it takes
a while (about a second per million sessions on SQLite) but rewrites no existing row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from searchtrail.storage.sql._rollup import ROLLUP_COLUMNS
from searchtrail.storage.sql.dialects import dialect_class

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "session_stats",
        sa.Column("session_number", _Id, primary_key=True, autoincrement=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("batch_id", _Id, nullable=False),
        sa.Column("is_irrelevant", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("computed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("results", sa.Integer, nullable=True),
        sa.Column("interactions", sa.Integer, nullable=True),
        sa.Column("first_position", sa.Integer, nullable=True),
        sa.Column("purchased", sa.Boolean, nullable=True),
        sa.Column("clicks", sa.Integer, nullable=True),
        sa.Column("click_positions", sa.BigInteger, nullable=True),
        sa.Column("positions_mask", sa.Integer, nullable=True),
        sa.Column("first_interaction_ms", sa.BigInteger, nullable=True),
        sa.Column("unshown_events", sa.Integer, nullable=True),
        sa.Column("query_key", sa.Text, nullable=True),
        sa.Column("ranker", sa.Text, nullable=True),
        sa.Column("teams", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("session_number", name="pk_session_stats"),
    )
    op.create_index("ix_session_stats_created_at_ms", "session_stats", ["created_at_ms"])
    op.create_index(
        "ix_session_stats_stale",
        "session_stats",
        ["session_number"],
        sqlite_where=sa.text("version <> computed"),
        postgresql_where=sa.text("version <> computed"),
    )
    op.create_index(
        "ix_session_stats_first_interaction",
        "session_stats",
        ["created_at_ms", "is_irrelevant", "first_interaction_ms"],
        sqlite_where=sa.text("first_interaction_ms IS NOT NULL"),
        postgresql_where=sa.text("first_interaction_ms IS NOT NULL"),
    )
    # Empty: every row below starts uncomputed, and counts in its hour once computed.
    op.create_table(
        "session_stats_hourly",
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("is_irrelevant", sa.Boolean, nullable=False),
        *(
            sa.Column(c, sa.Float if c == "reciprocal_ranks" else sa.BigInteger, nullable=False)
            for c in ROLLUP_COLUMNS
        ),
        sa.PrimaryKeyConstraint("hour", "is_irrelevant", name="pk_session_stats_hourly"),
    )
    op.create_table(
        "metrics_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_metrics_state"),
    )
    op.execute(
        "INSERT INTO session_stats (session_number, created_at_ms, batch_id, is_irrelevant) "
        "SELECT session_number, created_at_ms, batch_id, is_irrelevant FROM sessions"
    )
    conn = op.get_bind()
    for ddl in dialect_class(conn.dialect.name).session_stats_triggers:
        conn.exec_driver_sql(ddl)


def downgrade() -> None:
    conn = op.get_bind()
    for ddl in dialect_class(conn.dialect.name).session_stats_drop:
        conn.exec_driver_sql(ddl)
    op.drop_table("metrics_state")
    op.drop_table("session_stats_hourly")
    op.drop_table("session_stats")
