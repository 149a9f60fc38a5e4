"""What each endpoint sends and answers, and how an error answer becomes a domain error.

Shared by ``Client`` and ``AsyncClient`` so the two differ only in how they wait for I/O.
Requests go out as given (a model is dumped, a mapping sent as is): the server is the
one judge of limits, which are configurable there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel

from searchtrail.errors import (
    BadRequest,
    BatchNotFound,
    Conflict,
    DatabaseLocked,
    DatabaseUnreachable,
    DiskFull,
    FieldError,
    Forbidden,
    InvalidInput,
    NoCollectingBatch,
    NotFound,
    NotReady,
    PayloadTooLarge,
    QueueEntryNotFound,
    RateLimited,
    SchemaOutdated,
    SearchtrailError,
    SessionConflict,
    SessionFull,
    SessionNotFound,
    TimestampOutOfWindow,
    Unauthorized,
    Unavailable,
)
from searchtrail.models import (
    BatchInfo,
    BatchList,
    BatchSessionsPage,
    ClaimResult,
    PushResult,
    QueueCounts,
    QueueEntry,
    ReleaseResult,
    Session,
)
from searchtrail.paths import CLIENT_PREFIX, internal_prefix_under

__all__ = [
    "CLIENT_PREFIX",
    "Call",
    "ConnectionFailed",
    "ServerError",
    "error_from_response",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ConnectionFailed(Unavailable):
    """No answer (refused, reset, timed out). Every write is idempotent, so a retry is safe."""

    code = "connection_failed"
    retry_after = 0


class ServerError(SearchtrailError):
    """An answer the contract does not define (a 500, a proxy's HTML page)."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status_code = status


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: where it goes, what it carries, how its 200 body is read."""

    method: str
    path: str
    parse: Callable[[bytes], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    # What a 404 means for this call, when the server's message says exactly that.
    not_found: Callable[[], NotFound] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def body(value: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> Any:
    """A request body from a model, a mapping, or keyword arguments, left unvalidated."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return pydantic_core.to_jsonable_python(dict(value) if value is not None else dict(fields))


def check_page_size(page_size: int | None) -> None:
    """A page of no events would never move the cursor on: refused before any request."""
    if page_size == 0:
        raise InvalidInput([FieldError(("page_size",), "page_size must be at least 1")])


def model(cls: type[M]) -> Callable[[bytes], M]:
    return cls.model_validate_json


def nothing(_raw: bytes) -> None:
    return None


class Endpoints:
    """The contract's paths under a prefix; each method returns the ``Call`` to send."""

    def __init__(self, prefix: str, internal_prefix: str | None) -> None:
        self.prefix = prefix.rstrip("/")
        self.internal = (internal_prefix or internal_prefix_under(self.prefix)).rstrip("/")

    # -- client endpoints ---------------------------------------------------------

    def create_session(self, data: Any) -> Call[Session]:
        sid = data.get("session_id") if isinstance(data, dict) else None
        return Call(
            "POST",
            f"{self.prefix}/session",
            model(Session),
            json=data,
            context={"session_id": sid},
        )

    def get_session(
        self, session_id: str, events_limit: int | None, events_after: str | None
    ) -> Call[Session]:
        # Only what was given: a call without them is the original service's request.
        params: dict[str, Any] = {"session_id": session_id}
        if events_limit is not None:
            params["events_limit"] = events_limit
        if events_after is not None:
            params["events_after"] = events_after
        return Call(
            "GET",
            f"{self.prefix}/session",
            model(Session),
            params=params,
            not_found=lambda: SessionNotFound(session_id),
        )

    def push_events(self, data: Any) -> Call[PushResult]:
        sid = data.get("session_id") if isinstance(data, dict) else None
        return Call(
            "POST",
            f"{self.prefix}/session/events",
            model(PushResult),
            json=data,
            not_found=(lambda: SessionNotFound(sid)) if isinstance(sid, str) else None,
            context={"pushed_to": sid},
        )

    def mark_irrelevant(self, session_id: str) -> Call[None]:
        return Call(
            "POST",
            f"{self.prefix}/session/irrelevant",
            nothing,
            json={"session_id": session_id},
            not_found=lambda: SessionNotFound(session_id),
        )

    # -- internal endpoints -------------------------------------------------------

    def use_for_improvement(self, session_id: str) -> Call[QueueEntry]:
        return Call(
            "POST",
            f"{self.internal}/session/use-for-improvement",
            model(QueueEntry),
            json={"session_id": session_id},
            not_found=lambda: SessionNotFound(session_id),
        )

    def release_batch(self, release_id: str) -> Call[ReleaseResult]:
        return Call(
            "POST",
            f"{self.internal}/batch/release",
            model(ReleaseResult),
            json={"release_id": release_id},
            not_found=NoCollectingBatch,
        )

    def batch_sessions(
        self, batch_id: int, after_number: int, limit: int | None, events_limit: int | None
    ) -> Call[BatchSessionsPage]:
        params: dict[str, Any] = {"batch_id": batch_id, "after_number": after_number}
        if limit is not None:
            params["limit"] = limit
        if events_limit is not None:
            params["events_limit"] = events_limit
        return Call(
            "GET",
            f"{self.internal}/batch/sessions",
            model(BatchSessionsPage),
            params=params,
            not_found=lambda: BatchNotFound(batch_id),
        )

    def list_batches(self, state: str | None) -> Call[list[BatchInfo]]:
        def parse(raw: bytes) -> list[BatchInfo]:
            return BatchList.model_validate_json(raw).batches

        params = {"state": state} if state is not None else None
        return Call("GET", f"{self.internal}/batches", parse, params=params)

    def get_batch(self, batch_id: int) -> Call[BatchInfo]:
        return Call(
            "GET",
            f"{self.internal}/batch",
            model(BatchInfo),
            params={"batch_id": batch_id},
            not_found=lambda: BatchNotFound(batch_id),
        )

    def set_batch_state(self, batch_id: int, state: str) -> Call[BatchInfo]:
        return Call(
            "POST",
            f"{self.internal}/batch/state",
            model(BatchInfo),
            json={"batch_id": batch_id, "state": state},
            not_found=lambda: BatchNotFound(batch_id),
        )

    def claim_improvements(self, data: Any) -> Call[list[QueueEntry]]:
        def parse(raw: bytes) -> list[QueueEntry]:
            return ClaimResult.model_validate_json(raw).entries

        return Call("POST", f"{self.internal}/improvement/claim", parse, json=data)

    def ack_improvement(self, data: Any) -> Call[QueueEntry]:
        entry_id = data.get("entry_id") if isinstance(data, dict) else None
        return Call(
            "POST",
            f"{self.internal}/improvement/ack",
            model(QueueEntry),
            json=data,
            not_found=(lambda: QueueEntryNotFound(entry_id)) if isinstance(entry_id, int) else None,
        )

    def improvement_counts(self) -> Call[QueueCounts]:
        return Call("GET", f"{self.internal}/improvement/counts", model(QueueCounts))


# -- error answers -> domain errors ----------------------------------------------

_E = TypeVar("_E", bound=SearchtrailError)
_CONFLICT = re.compile(r"already exists with different (.+?); ")
_TIMESTAMP = re.compile(r"^Invalid utc timestamp: (.*) \((\S+) must be (.*)\)$", re.DOTALL)
_FULL = re.compile(r"holds ([\d,]+) events; this push would add ([\d,]+) new .*=(\d+)$")
_BY_CODE: dict[str, type[SearchtrailError]] = {
    "bad_request": BadRequest,
    "not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "schema_outdated": SchemaOutdated,
    "unavailable": Unavailable,
    "disk_full": DiskFull,
    "database_locked": DatabaseLocked,
    "database_unavailable": DatabaseUnreachable,
    "not_ready": NotReady,
}
_BY_STATUS: dict[int, type[SearchtrailError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
    507: DiskFull,
}


def _bare(cls: type[_E], detail: str, **attrs: Any) -> _E:
    """An instance with the server's message, for classes whose constructor builds its own."""
    exc = cls.__new__(cls)
    SearchtrailError.__init__(exc, detail)
    for name, value in attrs.items():
        setattr(exc, name, value)
    return exc


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(0, int(float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1


def _field_errors(detail: Any) -> list[FieldError]:
    if not isinstance(detail, list):
        return [FieldError(loc=(), msg=str(detail))]
    errors = []
    for item in detail:
        if isinstance(item, dict):
            loc = tuple(p for p in item.get("loc", ()) if isinstance(p, str | int))
            errors.append(
                FieldError(loc=loc, msg=str(item.get("msg", "")), type=str(item.get("type", "")))
            )
    return errors


def error_from_response(response: httpx.Response, call: Call[Any]) -> SearchtrailError:
    """The domain error a non-2xx answer stands for, with the server's own message."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or "detail" not in payload:
        return ServerError(f"HTTP {status}: {response.text[:500]}", status)
    detail, code = payload["detail"], str(payload.get("code", ""))
    message = detail if isinstance(detail, str) else str(detail)

    if code == "invalid_input" or status == 422:
        return InvalidInput(_field_errors(detail))
    if code == "invalid_timestamp":
        m = _TIMESTAMP.match(message)
        field, value = (m.group(2), m.group(1)) if m else (None, None)
        return _bare(TimestampOutOfWindow, message, field=field, value=value)
    if code == "rate_limited" or status == 429:
        return RateLimited(message, _retry_after(response))
    if code == "session_full":
        m = _FULL.search(message)
        held, new, cap = (int(g.replace(",", "")) for g in m.groups()) if m else (0, 0, 0)
        sid = call.context.get("pushed_to")
        return _bare(SessionFull, message, session_id=sid, held=held, new=new, cap=cap)
    if status == 404 and call.not_found is not None:
        expected = call.not_found()
        if expected.detail == message:
            return expected
    if status == 409 and call.context.get("session_id"):
        m = _CONFLICT.search(message)
        fields = m.group(1).split(", ") if m else []
        sid = call.context["session_id"]
        return _bare(SessionConflict, message, session_id=sid, fields=fields)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        return ServerError(message, status)
    exc = cls(message)
    if isinstance(exc, Unavailable):
        exc.retry_after = _retry_after(response)
    return exc
