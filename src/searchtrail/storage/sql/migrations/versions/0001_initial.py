"""The initial schema: batches, sessions, events, improvement queue, API keys.

A database made by searchtrail before migrations existed has exactly this schema;
``searchtrail db upgrade`` stamps it with this revision and goes on from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of schema.py's types as they were at this revision.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_id", Id, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("collecting", sa.Integer, nullable=True),
        sa.Column("release_id", sa.String(1024), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("released_at_ms", sa.BigInteger, nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_batches"),
        sa.UniqueConstraint("collecting", name="uq_batches_collecting"),
        sa.UniqueConstraint("release_id", name="uq_batches_release_id"),
    )
    op.create_table(
        "sessions",
        sa.Column("session_number", Id, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(1024), nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("search_query", Json, nullable=True),
        sa.Column("search_results", Json, nullable=False),
        sa.Column("search_meta", Json, nullable=True),
        sa.Column("payload_filter", Json, nullable=True),
        sa.Column("sort_by", Json, nullable=True),
        sa.Column("user_id", sa.String(1024), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("created_at_given", sa.Boolean, nullable=False),
        sa.Column("is_irrelevant", sa.Boolean, nullable=False),
        sa.Column("registered_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("session_number", name="pk_sessions"),
        sa.UniqueConstraint("session_id", name="uq_sessions_session_id"),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.batch_id"], name="fk_sessions_batch_id_batches"
        ),
    )
    op.create_index(
        "ix_sessions_batch_id_session_number", "sessions", ["batch_id", "session_number"]
    )
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_number", Id, nullable=False),
        sa.Column("event_id", sa.String(1024), nullable=False),
        sa.Column("object_id", sa.String(1024), nullable=True),
        sa.Column("event_type", sa.String(1024), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("meta", Json, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("session_number", "event_id", name="uq_events_session_number_event_id"),
        sa.ForeignKeyConstraint(
            ["session_number"],
            ["sessions.session_number"],
            name="fk_events_session_number_sessions",
        ),
    )
    op.create_table(
        "improvement_queue",
        sa.Column("entry_id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("enqueued_at_ms", sa.BigInteger, nullable=False),
        sa.Column("claimed_at_ms", sa.BigInteger, nullable=True),
        sa.Column("claimed_by", sa.String(256), nullable=True),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name="pk_improvement_queue"),
    )
    op.create_index(
        "ix_improvement_queue_state_entry_id", "improvement_queue", ["state", "entry_id"]
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )


def downgrade() -> None:
    for table in ("api_keys", "improvement_queue", "events", "sessions", "batches"):
        op.drop_table(table)
