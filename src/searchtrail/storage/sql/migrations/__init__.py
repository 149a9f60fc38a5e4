"""Alembic's script directory for searchtrail; driven from ``searchtrail.storage.sql.migrate``."""
