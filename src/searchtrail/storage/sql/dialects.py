"""The registry of dialects: which ``Dialect`` serves a URL or a connection."""

from __future__ import annotations

from searchtrail.storage.sql.dialect import Dialect
from searchtrail.storage.sql.engine import backend_name
from searchtrail.storage.sql.postgres import PostgresDialect
from searchtrail.storage.sql.sqlite import SqliteDialect

__all__ = ["dialect_class", "dialect_for"]

_DIALECTS: dict[str, type[Dialect]] = {"sqlite": SqliteDialect, "postgresql": PostgresDialect}


def dialect_class(name: str) -> type[Dialect]:
    """The dialect of SQLAlchemy's dialect ``name`` (``conn.dialect.name``)."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ValueError(f"searchtrail stores in SQLite or PostgreSQL, not {name}") from None


def dialect_for(url: str, *, busy_timeout_ms: int, synchronous: str, pool_size: int) -> Dialect:
    return dialect_class(backend_name(url))(
        url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, pool_size=pool_size
    )
