"""The domain errors searchtrail raises, and the only place their HTTP status is decided.

The store and the service raise these; they never know about HTTP. The HTTP layer
turns each into one JSON shape (``{"detail": ..., "code": ...}``) in
``searchtrail.http.errors``, using the ``status`` and ``code`` declared here::

    SearchtrailError                    500 internal (never raised on purpose)
    ├── InvalidInput                    422 invalid_input      a field is malformed
    │   └── TimestampOutOfWindow        400 invalid_timestamp  a valid time outside the window
    ├── BadRequest                      400 bad_request        well-formed, but cannot be done
    ├── NotFound                        404 not_found
    │   ├── SessionNotFound
    │   ├── BatchNotFound
    │   ├── NoCollectingBatch
    │   └── QueueEntryNotFound
    ├── Conflict                        409 conflict
    │   ├── SessionConflict             a replayed session that contradicts the stored one
    │   └── SessionFull                 session_full: a push past max_events_per_session
    ├── PayloadTooLarge                 413 payload_too_large
    ├── Unauthorized                    401 unauthorized
    ├── Forbidden                       403 forbidden
    ├── RateLimited                     429 rate_limited
    ├── SchemaOutdated                  503 schema_outdated    run `searchtrail db upgrade`
    └── Unavailable                     503 unavailable        the store closed, its writer failed
        ├── DiskFull                    507 disk_full          the database's disk is full
        ├── DatabaseLocked              503 database_locked    a lock held past the busy timeout
        ├── DatabaseUnreachable         503 database_unavailable
        │                                   cannot connect, the connection broke, out of resources
        └── NotReady                    503 not_ready          /health/ready; why: in ``detail``

Each ``Unavailable`` carries ``retry_after`` (the ``Retry-After`` header); nothing was
committed, so a retry is safe. The storage failures have a code each so that an operator
(and a metric counting answers by code) tells them apart; docs/operating-health.md says
what to do about each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "BatchNotFound",
    "Conflict",
    "DatabaseLocked",
    "DatabaseUnreachable",
    "DiskFull",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "NoCollectingBatch",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "QueueEntryNotFound",
    "RateLimited",
    "SchemaOutdated",
    "SearchtrailError",
    "SessionConflict",
    "SessionFull",
    "SessionNotFound",
    "TimestampOutOfWindow",
    "Unauthorized",
    "Unavailable",
]


@dataclass(frozen=True)
class FieldError:
    """One field at fault: where it is (``("events", 3, "created_at")``) and what was wrong."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    @property
    def field(self) -> str:
        return format_loc(self.loc)

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "field": self.field, "msg": self.msg, "type": self.type}


def format_loc(loc: tuple[str | int, ...] | list[str | int]) -> str:
    """``("events", 3, "created_at")`` -> ``events[3].created_at``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class SearchtrailError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as raised, whatever its ``__init__`` takes: the writer process sends these."""
        return (_rebuilt, (type(self), self.args, self.__dict__))

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code}


def _rebuilt(cls: type[SearchtrailError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class InvalidInput(SearchtrailError):
    status = 422
    code = "invalid_input"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.msg}" for e in errors))

    def body(self) -> dict[str, Any]:
        return {"detail": [e.as_dict() for e in self.errors], "code": self.code}


class TimestampOutOfWindow(SearchtrailError):
    status = 400
    code = "invalid_timestamp"

    def __init__(self, field: str, value: Any, window: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"Invalid utc timestamp: {value} ({field} must be {window})")


class BadRequest(SearchtrailError):
    status = 400
    code = "bad_request"


class NotFound(SearchtrailError):
    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"Session with id={session_id} not found")


class BatchNotFound(NotFound):
    def __init__(self, batch_id: int) -> None:
        self.batch_id = batch_id
        super().__init__(f"Batch with id={batch_id} not found")


class NoCollectingBatch(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no collecting batch")


class QueueEntryNotFound(NotFound):
    def __init__(self, entry_id: int) -> None:
        self.entry_id = entry_id
        super().__init__(f"Improvement queue entry with id={entry_id} not found")


class Conflict(SearchtrailError):
    status = 409
    code = "conflict"


class SessionConflict(Conflict):
    def __init__(self, session_id: str, fields: list[str]) -> None:
        self.session_id = session_id
        self.fields = fields
        super().__init__(
            f"Session with id={session_id} already exists with different "
            f"{', '.join(fields)}; a session is registered once and never overwritten"
        )


class SessionFull(Conflict):
    """A push whose new events would take its session past ``max_events_per_session``;
    nothing of it is stored. Events the session already holds do not count as new."""

    code = "session_full"

    def __init__(self, session_id: str, held: int, new: int, cap: int) -> None:
        self.session_id = session_id
        self.held = held
        self.new = new
        self.cap = cap
        ones = "new one" if new == 1 else "new ones"
        super().__init__(
            f"session {session_id} holds {held:,} events; this push would add {new:,} {ones}, "
            f"past max_events_per_session={cap}"
        )


class PayloadTooLarge(SearchtrailError):
    status = 413
    code = "payload_too_large"


class Unauthorized(SearchtrailError):
    status = 401
    code = "unauthorized"


class Forbidden(SearchtrailError):
    status = 403
    code = "forbidden"


class RateLimited(SearchtrailError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SchemaOutdated(SearchtrailError):
    status = 503
    code = "schema_outdated"


class Unavailable(SearchtrailError):
    """The store cannot take the request now (closed, its writer process failed; the
    subclasses below for the database's own failures); nothing was committed, so a retry
    is safe."""

    status = 503
    code = "unavailable"
    retry_after = 1


class DiskFull(Unavailable):
    """The database's disk (SQLite's file system, PostgreSQL's data or WAL) has no room;
    the write was rolled back whole. Retry once space is freed."""

    status = 507
    code = "disk_full"
    retry_after = 30

    def __init__(self, detail: str = "the database's disk is full") -> None:
        super().__init__(detail)


class DatabaseLocked(Unavailable):
    """Another writer held the database's lock past the busy timeout (SQLite's
    ``busy_timeout``, PostgreSQL's ``lock_timeout``); the write was rolled back."""

    code = "database_locked"


class DatabaseUnreachable(Unavailable):
    """The database could not be reached, its connection broke, or it is out of resources."""

    code = "database_unavailable"


class NotReady(Unavailable):
    """``/health/ready``: this process should get no traffic now; ``detail`` says why."""

    code = "not_ready"
