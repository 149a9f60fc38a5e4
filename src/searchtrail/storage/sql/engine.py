"""What every part of the SQL backend shares: URLs, JSON as the engines write it, and the
rule that a database outage is a 503 (``Unavailable``), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic_core
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from searchtrail.errors import DatabaseLocked, DatabaseUnreachable, DiskFull, Unavailable

__all__ = [
    "DB_OUTAGES",
    "backend_name",
    "json_dumps",
    "json_or_none",
    "normalize_database_url",
    "redacted_url",
    "unavailable",
    "unavailable_on_db_outage",
]


def normalize_database_url(url: str) -> str:
    """Let operators write ``postgresql://`` and still get psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def backend_name(url: str) -> str:
    """``sqlite`` or ``postgresql``: which dialect serves ``url``."""
    return make_url(normalize_database_url(url)).get_backend_name()


def redacted_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def json_dumps(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def json_or_none(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


# A locked or unreachable database: a 503 the client may retry, never a 500.
DB_OUTAGES = (OperationalError, InterfaceError, PoolTimeout)


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
# PostgreSQL: lock_not_available (lock_timeout), and class 53, insufficient resources.
_PG_LOCKED, _PG_DISK_FULL, _PG_RESOURCES = "55P03", "53100", "53"


def unavailable(exc: BaseException) -> Unavailable:
    """The ``Unavailable`` answered for one of ``DB_OUTAGES``: which kind, and why.

    The driver's own message stays in the server's log: it may name hosts and users.
    """
    cause = getattr(exc, "orig", None) or exc
    name = type(cause).__name__
    if isinstance(exc, PoolTimeout):
        return DatabaseUnreachable(
            f"the database is unavailable: no connection was free in time ({name})"
        )
    sqlite_code = getattr(cause, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary == _SQLITE_FULL:
            return DiskFull()
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return DatabaseLocked(
                "the database is locked: another writer held it longer than sqlite_busy_timeout_ms"
            )
        errname = getattr(cause, "sqlite_errorname", name)
        return DatabaseUnreachable(f"the database is unavailable ({errname})")
    state = getattr(cause, "sqlstate", None)
    if isinstance(state, str):
        if state == _PG_DISK_FULL:
            return DiskFull()
        if state == _PG_LOCKED:
            return DatabaseLocked(
                "the database is locked: a lock was held longer than lock_timeout "
                "(sqlite_busy_timeout_ms)"
            )
        if state.startswith(_PG_RESOURCES):
            return DatabaseUnreachable(
                f"the database is unavailable: the server is out of resources (SQLSTATE {state})"
            )
        return DatabaseUnreachable(f"the database is unavailable (SQLSTATE {state})")
    return DatabaseUnreachable(f"the database is unavailable: it cannot be reached ({name})")


@contextmanager
def unavailable_on_db_outage() -> Iterator[None]:
    """A locked or unreachable database is a 503 the client may retry, never a 500."""
    try:
        yield
    except DB_OUTAGES as exc:
        raise unavailable(exc) from exc
