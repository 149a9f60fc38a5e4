"""Keep the keys a client sends that the contract does not name.

Sessions and events get a nullable ``extra`` JSON column; a search result keeps its own
unknown keys inside ``search_results``. Adding a nullable column rewrites no rows on
either dialect, so this is instant on a large database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.add_column("sessions", sa.Column("extra", _JSON, nullable=True))
    op.add_column("events", sa.Column("extra", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("extra")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("extra")
