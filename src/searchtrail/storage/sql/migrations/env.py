"""Alembic environment: runs on the connection ``searchtrail.storage.sql.migrate`` hands over.

``searchtrail.storage.sql.migrate`` opens the transaction and takes the migration lock first, so
this file never builds an engine from a URL or reads a config file.
"""

from __future__ import annotations

from alembic import context

from searchtrail.storage.sql.dialects import dialect_class
from searchtrail.storage.sql.migrate import compare_type
from searchtrail.storage.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `searchtrail db upgrade`, not the alembic command")
context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=compare_type,
    render_as_batch=dialect_class(connection.dialect.name).rebuilds_tables,
)
with context.begin_transaction():
    context.run_migrations()
