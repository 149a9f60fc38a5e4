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

from searchtrail.errors import Unavailable

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


def unavailable(exc: BaseException) -> Unavailable:
    """The ``Unavailable`` answered for one of ``DB_OUTAGES``."""
    cause = getattr(exc, "orig", None) or exc
    return Unavailable(f"the database is unavailable ({type(cause).__name__})")


@contextmanager
def unavailable_on_db_outage() -> Iterator[None]:
    """A locked or unreachable database is a 503 the client may retry, never a 500."""
    try:
        yield
    except DB_OUTAGES as exc:
        raise unavailable(exc) from exc
