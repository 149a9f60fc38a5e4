"""On SQLite, keep a bare number in ``sessions.search_query`` as it was written.

The column was declared ``JSON``, which SQLite gives numeric affinity: the JSON of a bare
number was stored as a number (``1.0`` came back as ``1``). Declared ``JSON TEXT`` it has
text affinity. SQLite cannot change a column's type in place, so the table is rebuilt:
copied whole into a new one, which takes a while on a large database. A number already
stored as a float is written back as its shortest JSON: the copy alone would turn it into
text of 15 digits, less than it holds. One stored as an integer stays that integer (``1.0``
stays ``1``). PostgreSQL's JSONB kept the numbers; nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from searchtrail.storage.sql.schema import JsonText

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


_FLOATS = sa.text(
    "SELECT session_number, search_query FROM sessions WHERE typeof(search_query) = 'real'"
)
_SET = sa.text("UPDATE sessions SET search_query = :q WHERE session_number = :n")


def _retype(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.alter_column("search_query", existing_type=old, type_=new, existing_nullable=True)


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    floats = op.get_bind().execute(_FLOATS).all()
    _retype(sa.JSON(none_as_null=True), JsonText(none_as_null=True))
    if floats:
        op.get_bind().execute(_SET, [{"q": json.dumps(q), "n": n} for n, q in floats])


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _retype(JsonText(none_as_null=True), sa.JSON(none_as_null=True))
