"""A table of its own for ``/health/ready``'s write.

Readiness means the database accepted a write just now: each serving process upserts
its row (the time of its latest check) through the write path a push takes. Nothing
else reads or writes it; a dump leaves it out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_checks",
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("checked_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("process", name="pk_health_checks"),
    )


def downgrade() -> None:
    op.drop_table("health_checks")
