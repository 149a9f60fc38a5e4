"""``session_stats.stale``: the refresh finds stale rows by a flag no push changes twice.

The partial index of stale rows read ``version <> computed``, so every push's version
bump wrote index entries. It reads ``stale`` now, and on PostgreSQL the table keeps a
fifth of each page free, so that a push to a session already stale updates its row in
place (HOT) and writes no index entry. Rows are stale where they were before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_session_stats_stale", table_name="session_stats")
    op.add_column(
        "session_stats",
        sa.Column("stale", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.execute(
        sa.text("UPDATE session_stats SET stale = :fresh WHERE version = computed").bindparams(
            fresh=False
        )
    )
    op.create_index(
        "ix_session_stats_stale",
        "session_stats",
        ["session_number"],
        sqlite_where=sa.text("stale"),
        postgresql_where=sa.text("stale"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE session_stats SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE session_stats RESET (fillfactor)")
    op.drop_index("ix_session_stats_stale", table_name="session_stats")
    op.drop_column("session_stats", "stale")
    op.create_index(
        "ix_session_stats_stale",
        "session_stats",
        ["session_number"],
        sqlite_where=sa.text("version <> computed"),
        postgresql_where=sa.text("version <> computed"),
    )
