"""Drop the foreign key from sessions.batch_id to batches.

On PostgreSQL a foreign key check locks the referenced row (``FOR KEY SHARE``), so
every registration locked the one collecting batch row: a hot row whose lock records
(MultiXacts) made concurrent registrations slower than one alone. The store takes
``batch_id`` from the collecting batch in the same transaction and never deletes a
batch, so the key guarded nothing the code does not already ensure.

On SQLite the table is rebuilt (SQLite cannot drop a constraint), keeping its rows;
``searchtrail.migrate`` turns foreign key enforcement off around it and checks
``PRAGMA foreign_key_check`` before committing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FK = "fk_sessions_batch_id_batches"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.create_foreign_key(FK, "batches", ["batch_id"], ["batch_id"])
