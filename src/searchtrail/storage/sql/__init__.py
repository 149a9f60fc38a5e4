"""The SQL backend of the storage protocols: SQLite and PostgreSQL over SQLAlchemy Core.

``SqlStorage`` implements ``searchtrail.storage.api.Storage``. The dialect differences
live in ``sqlite.py`` and ``postgres.py`` behind ``dialect.Dialect``; the read and write
paths in ``_database.py``; the group commit, the writer process and the loop reads in
private modules no caller above the protocols sees.
"""

from searchtrail.storage.sql.backend import SqlStorage
from searchtrail.storage.sql.engine import (
    DB_OUTAGES,
    normalize_database_url,
    unavailable,
    unavailable_on_db_outage,
)

__all__ = [
    "DB_OUTAGES",
    "SqlStorage",
    "normalize_database_url",
    "unavailable",
    "unavailable_on_db_outage",
]
