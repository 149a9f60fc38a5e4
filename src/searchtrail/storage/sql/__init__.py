"""The SQL backend of the storage protocols: SQLite and PostgreSQL over SQLAlchemy Core."""
