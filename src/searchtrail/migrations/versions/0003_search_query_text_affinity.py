"""On SQLite, keep a bare number in ``sessions.search_query`` as it was written.

The column was declared ``JSON``, which SQLite gives numeric affinity: the JSON of a bare
number was stored as a number (``1.0`` came back as ``1``). Declared ``JSON TEXT`` it has
text affinity. SQLite cannot change a column's type in place, so the table is rebuilt:
copied whole into a new one, which takes a while on a large database. Values already
converted stay as they were stored. PostgreSQL's JSONB kept them; nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from searchtrail.schema import JsonText

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _retype(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.alter_column("search_query", existing_type=old, type_=new, existing_nullable=True)


def upgrade() -> None:
    _retype(sa.JSON(none_as_null=True), JsonText(none_as_null=True))


def downgrade() -> None:
    _retype(JsonText(none_as_null=True), sa.JSON(none_as_null=True))
