"""Erasing a user and pruning old sessions: an index to find a user's sessions, an audit.

``ix_sessions_user_id``: an erase finds a user's sessions by ``user_id`` (stored raw, or
as a keyed pseudonym); without it every erase reads the whole table. ``privacy_audit``:
one row per erase, and per prune chunk that removed something: when, through which path, how many
sessions, events and queue entries. Never the user id: the audit must not keep what the
erase removed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "privacy_audit",
        sa.Column("audit_id", Id, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("path", sa.String(16), nullable=False),
        sa.Column("sessions", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("queue_entries", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_audit")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
