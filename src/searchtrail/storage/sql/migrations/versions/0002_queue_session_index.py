"""Index the improvement queue by session id.

Every enqueue looks for an open entry of its session; without this index that look-up
scans the whole queue, which grows with every session ever queued.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_improvement_queue_session_id_state", "improvement_queue", ["session_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_improvement_queue_session_id_state", table_name="improvement_queue")
