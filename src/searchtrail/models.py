"""The request and response models of the contract, shared by the service, HTTP layer and client.

Size limits are configurable, so they are read from the validation context
(``{"limits": Limits(...)}``) rather than fixed in the field types; without a
context the defaults apply. A request is validated in one place, here.

Keys the contract does not name, on a session, a result or an event, are accepted as
the original's models accept them, and kept: ``extra`` holds them (under the size and
NUL rules of ``meta``), and ``unknown_fields`` lists their paths so that a typo shows in
the answer. ``Limits.strict_fields`` refuses them instead (422 ``extra_forbidden``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, TypeVar

import pydantic_core
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from searchtrail.errors import FieldError, InvalidInput, format_loc
from searchtrail.limits import (
    DEFAULT_LIMITS,
    DEFAULT_SESSION_EVENTS_LIMIT,
    MAX_SESSION_EVENTS_LIMIT,
    Limits,
)
from searchtrail.timestamps import to_epoch_ms

__all__ = [
    "AckRequest",
    "BatchIdRequest",
    "BatchInfo",
    "BatchList",
    "BatchSessionsPage",
    "BatchSessionsQuery",
    "BatchStateName",
    "BatchStateRequest",
    "ClaimRequest",
    "ClaimResult",
    "NewSessionEvent",
    "NonNegativeInt64",
    "PositiveInt64",
    "PushResult",
    "QueueCounts",
    "QueueEntry",
    "QueueStateName",
    "ReleaseRequest",
    "ReleaseResult",
    "SearchResultItem",
    "Session",
    "SessionAddEventsRequest",
    "SessionCreateRequest",
    "SessionGetQuery",
    "SessionIdRequest",
    "ShownResult",
    "StoredEvent",
    "decode_events_cursor",
    "encode_events_cursor",
    "parse",
    "parse_json",
]


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context
    if isinstance(ctx, dict):
        limits = ctx.get("limits")
        if isinstance(limits, Limits):
            return limits
    return DEFAULT_LIMITS


def _check_id(value: str, max_chars: int, what: str = "an id") -> str:
    if not 1 <= len(value) <= max_chars:
        raise ValueError(f"{what} must be 1 to {max_chars} characters, got {len(value)}")
    if not value.isprintable():
        raise ValueError(f"{what} must contain only printable characters")
    return value


def _check_no_nul(value: str, what: str) -> None:
    # PostgreSQL stores no U+0000 in text or JSONB; refusing it everywhere keeps both
    # dialects answering the same (a 422 naming the field, not a 500 on one of them).
    if "\x00" in value:
        raise ValueError(f"{what} must not contain the NUL character (U+0000)")


def _check_json_size(value: Any, max_bytes: int, what: str) -> None:
    raw = pydantic_core.to_json(value)
    if len(raw) > max_bytes:
        raise ValueError(f"{what} must be at most {max_bytes} bytes of JSON, got {len(raw)}")
    if _has_nul(value):
        raise ValueError(f"{what} must not contain the NUL character (U+0000)")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _epoch_ms_or_none(value: object) -> object:
    return None if value is None else to_epoch_ms(value)


# Epoch milliseconds after validation; the input may be seconds, milliseconds or ISO 8601.
Timestamp = Annotated[
    int | None,
    BeforeValidator(_epoch_ms_or_none),
    Field(
        default=None,
        description="Epoch seconds, epoch milliseconds (>= 1e11) or ISO 8601 (no offset = UTC). "
        "Missing means the time of receipt.",
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
    ),
]
JsonObject = dict[str, JsonValue]

# Both databases keep ids and numbers in 64 bits. A larger value cannot name a row, and
# must not reach a driver: SQLite's raises OverflowError on it.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
PositiveInt64 = Annotated[int, Field(ge=1, le=INT64_MAX)]
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]


class _Strict(BaseModel):
    # Unknown fields are refused: a typo such as "evnt_type" must not silently become a click.
    model_config = ConfigDict(extra="forbid", revalidate_instances="always")


class _Open(BaseModel):
    """A body of the original's client API: keys it does not name are kept, not refused.

    The original's models ignore unknown keys, so its clients send them (``item_info`` on
    results and events); refusing them lost whole sessions. They are validated as JSON
    here and checked, with their paths collected, by the body that holds them
    (``_collect_unknown``), which runs once per body rather than once per item.
    """

    model_config = ConfigDict(extra="allow", revalidate_instances="always")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    @property
    def extra(self) -> JsonObject | None:
        """The keys the contract does not name, as sent; None when there were none."""
        return self.__pydantic_extra__ or None


_FORBIDDEN = "Extra inputs are not permitted"  # pydantic's own message for extra="forbid"


def _collect_unknown(
    items: list[tuple[tuple[str | int, ...], _Open]], info: ValidationInfo
) -> list[str]:
    """The paths of the unknown keys of ``items`` (each at its location in the body).

    Raises the errors of the body at once: in strict mode every unknown key is an
    ``extra_forbidden`` error, as a model that forbids extras raises it; otherwise an
    item's unknown keys together must pass ``meta``'s size and NUL rules.
    """
    limits = _limits(info)
    paths: list[str] = []
    errors: list[InitErrorDetails] = []
    for loc, item in items:
        extra = item.__pydantic_extra__
        if not extra:
            continue
        for key, value in extra.items():
            where = (*loc, key)
            if limits.strict_fields:
                errors.append(_error(where, value, "extra_forbidden", _FORBIDDEN))
            elif _has_nul(key) or _has_nul(value):
                msg = "an unknown key (kept as extra) must not contain the NUL character (U+0000)"
                errors.append(_error(where, value, "value_error", msg))
            paths.append(format_loc(where))
        size = len(pydantic_core.to_json(extra))
        if not limits.strict_fields and size > limits.max_meta_bytes:
            key = next(iter(extra))
            msg = (
                f"unknown keys (kept as extra) must be at most {limits.max_meta_bytes} bytes "
                f"of JSON together, got {size}"
            )
            errors.append(_error((*loc, key), extra[key], "value_error", msg))
    if errors:
        raise ValidationError.from_exception_data("unknown keys", errors)
    return paths


def _error(loc: tuple[str | int, ...], value: Any, kind: str, msg: str) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, msg), "loc": loc, "input": value}


class SearchResultItem(_Open):
    object_id: str
    rank: float | None = None
    meta: JsonObject | None = None

    def as_stored(self) -> dict[str, Any]:
        """The result as stored and answered: unknown keys under ``extra``."""
        out: dict[str, Any] = {"object_id": self.object_id, "rank": self.rank, "meta": self.meta}
        if self.__pydantic_extra__:
            out["extra"] = self.__pydantic_extra__
        return out

    @field_validator("object_id")
    @classmethod
    def _object_id(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)

    @field_validator("meta")
    @classmethod
    def _meta(cls, v: JsonObject | None, info: ValidationInfo) -> JsonObject | None:
        if v is not None:
            _check_json_size(v, _limits(info).max_meta_bytes, "meta")
        return v


class SessionCreateRequest(_Open):
    """A registration; keys the contract does not name are kept in ``extra``."""

    _unknown: list[str] = PrivateAttr(default_factory=list)

    session_id: str | None = Field(
        default=None, description="Chosen by the client; omitted, the server generates one."
    )
    search_query: JsonValue = Field(
        default=None, description="Usually the text typed; may be an object for structured queries."
    )
    search_results: list[SearchResultItem] = Field(
        default_factory=list, description="Ranked as shown, first = top."
    )
    search_meta: JsonObject | None = None
    payload_filter: JsonObject | None = None
    sort_by: JsonObject | None = None
    user_id: str | None = None
    created_at: Timestamp

    @field_validator("session_id", "user_id")
    @classmethod
    def _ids(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars)

    @field_validator("search_query")
    @classmethod
    def _query(cls, v: JsonValue, info: ValidationInfo) -> JsonValue:
        limits = _limits(info)
        if isinstance(v, str):
            _check_no_nul(v, "a text query")
            if len(v) > limits.max_query_chars:
                limit = limits.max_query_chars
                raise ValueError(f"a text query must be at most {limit} characters, got {len(v)}")
        elif v is not None:
            _check_json_size(v, limits.max_meta_bytes, "a structured query")
        return v

    @field_validator("search_results")
    @classmethod
    def _results(cls, v: list[SearchResultItem], info: ValidationInfo) -> list[SearchResultItem]:
        limit = _limits(info).max_results_per_session
        if len(v) > limit:
            raise ValueError(f"at most {limit} results per session, got {len(v)}")
        return v

    @field_validator("search_meta", "payload_filter", "sort_by")
    @classmethod
    def _objects(cls, v: JsonObject | None, info: ValidationInfo) -> JsonObject | None:
        if v is not None:
            _check_json_size(v, _limits(info).max_meta_bytes, str(info.field_name))
        return v

    @model_validator(mode="after")
    def _unknown_keys(self, info: ValidationInfo) -> SessionCreateRequest:
        items: list[tuple[tuple[str | int, ...], _Open]] = [((), self)]
        items += [(("search_results", i), r) for i, r in enumerate(self.search_results)]
        self._unknown = _collect_unknown(items, info)
        return self

    @property
    def unknown_fields(self) -> list[str]:
        """Paths of the keys the contract does not name (``search_results[0].item_info``)."""
        return self._unknown

    def results_as_stored(self) -> list[dict[str, Any]]:
        return [r.as_stored() for r in self.search_results]


def _event_schema(schema: dict[str, Any]) -> None:
    """What a client may send: ``_derive_event_id`` fills a missing or null event_id in
    before validation, and ``name`` is another spelling of event_type (given both,
    event_type counts and name is kept as an unknown key)."""
    schema["required"] = [name for name in schema.get("required", []) if name != "event_id"]
    if not schema["required"]:
        del schema["required"]
    props = schema["properties"]
    props["event_id"] = {**props["event_id"], "anyOf": [{"type": "string"}, {"type": "null"}]}
    props["event_id"].pop("type", None)
    # Without event_type, name is the type (a string); beside it, name is an unknown key
    # like any other and may hold any JSON value.
    props["name"] = {
        "title": "Name",
        "description": "Another spelling of event_type (a string). Sent beside event_type it "
        "is not read as the type but kept under extra, whatever its value.",
    }
    schema["if"] = {"not": {"required": ["event_type"]}}
    schema["then"] = {"properties": {"name": {"type": "string"}}}


class NewSessionEvent(_Open):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra=_event_schema)

    event_id: str = Field(
        description="Unique within its session; a repeat is a no-op. Omitted, it is derived "
        "from the event's content, so an identical retry is still a no-op."
    )
    object_id: str | None = None
    event_type: str = Field(
        default="click",
        validation_alias=AliasChoices("event_type", "name"),
        description='Also accepted as "name".',
    )
    created_at: Timestamp
    meta: JsonObject | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_event_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None:
            content = {k: v for k, v in data.items() if k != "event_id"}
            canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.sha256(canonical.encode()).hexdigest()
            data = {**data, "event_id": f"auto-{digest[:32]}"}
        return data

    @field_validator("event_id", "object_id")
    @classmethod
    def _ids(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars)

    @field_validator("event_type")
    @classmethod
    def _type(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_event_type_chars, "an event type")

    @field_validator("meta")
    @classmethod
    def _meta(cls, v: JsonObject | None, info: ValidationInfo) -> JsonObject | None:
        if v is not None:
            _check_json_size(v, _limits(info).max_meta_bytes, "meta")
        return v


class SessionAddEventsRequest(_Open):
    """A push; unknown keys of an event are kept in its ``extra``.

    Unknown keys beside ``session_id`` and ``events`` belong to no event or session: they
    are listed in ``unknown_fields`` and not stored.
    """

    _unknown: list[str] = PrivateAttr(default_factory=list)

    session_id: str
    events: list[NewSessionEvent]

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)

    @field_validator("events")
    @classmethod
    def _count(cls, v: list[NewSessionEvent], info: ValidationInfo) -> list[NewSessionEvent]:
        limit = _limits(info).max_events_per_push
        if len(v) > limit:
            raise ValueError(f"at most {limit} events per request, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _unknown_keys(self, info: ValidationInfo) -> SessionAddEventsRequest:
        items: list[tuple[tuple[str | int, ...], _Open]] = [((), self)]
        items += [(("events", i), e) for i, e in enumerate(self.events)]
        self._unknown = _collect_unknown(items, info)
        return self

    @property
    def unknown_fields(self) -> list[str]:
        """Paths of the keys the contract does not name (``events[2].evnt_type``)."""
        return self._unknown


class SessionIdRequest(_Strict):
    session_id: str

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


_EXTRA_DOC = "The keys the client sent that the contract does not name, kept as sent."
_UNKNOWN_DOC = (
    "Paths of the keys in the request that the contract does not name (kept under extra), "
    "so that a typo shows; left out when there were none."
)
_ONLY_CREATE = "Only in the answer to a registration."


def _nothing(value: list[str]) -> bool:
    return not value


# An events cursor: the (created_at_ms, id) of the last event answered, keyset order.
_CURSOR = re.compile(r"(-?[0-9]{1,19})\.([0-9]{1,19})")


def encode_events_cursor(created_at_ms: int, event_row_id: int) -> str:
    """The ``events_cursor`` that reads the events after ``(created_at_ms, id)``."""
    return f"{created_at_ms}.{event_row_id}"


def decode_events_cursor(cursor: str) -> tuple[int, int]:
    """``(created_at_ms, id)`` of a cursor; ``ValueError`` if it is not one."""
    m = _CURSOR.fullmatch(cursor)
    if m is not None:
        created_at_ms, event_row_id = int(m.group(1)), int(m.group(2))
        # Both go to the database as 64-bit values; a larger one must not reach a driver.
        if INT64_MIN <= created_at_ms <= INT64_MAX and event_row_id <= INT64_MAX:
            return created_at_ms, event_row_id
    raise ValueError(
        "events_after must be an events_cursor of an earlier answer (CREATED_AT_MS.ID), "
        f"got {cursor[:64]!r}"
    )


class SessionGetQuery(SessionIdRequest):
    """GET /session: one page of a session's events, keyset on (created_at_ms, id)."""

    events_limit: int | None = Field(
        None,
        ge=0,
        description=f"Events in the answer, oldest first; default {DEFAULT_SESSION_EVENTS_LIMIT}, "
        f"at most {MAX_SESSION_EVENTS_LIMIT}.",
    )
    events_after: str | None = Field(
        None,
        description="An events_cursor of an earlier answer: read the events after it. "
        "Omitted: from the first event.",
    )

    @field_validator("events_limit")
    @classmethod
    def _events_limit(cls, v: int | None) -> int:
        if v is None:
            return DEFAULT_SESSION_EVENTS_LIMIT
        if v > MAX_SESSION_EVENTS_LIMIT:
            raise ValueError(f"events_limit must be at most {MAX_SESSION_EVENTS_LIMIT}, got {v}")
        return v

    @field_validator("events_after")
    @classmethod
    def _events_after(cls, v: str | None) -> str | None:
        if v is not None:
            decode_events_cursor(v)
        return v

    @property
    def after(self) -> tuple[int, int] | None:
        """The keyset position to read after; ``None``: from the first event."""
        return None if self.events_after is None else decode_events_cursor(self.events_after)


class ShownResult(BaseModel):
    """A result as stored: no input limits are re-applied on the way out."""

    object_id: str
    rank: float | None = None
    meta: JsonObject | None = None
    extra: JsonObject | None = Field(None, description=_EXTRA_DOC)


class StoredEvent(BaseModel):
    event_id: str
    object_id: str | None
    event_type: str
    created_at: int = Field(description="Epoch seconds, as the original service answers.")
    created_at_ms: int
    meta: JsonObject | None = None
    extra: JsonObject | None = Field(None, description=_EXTRA_DOC)


class Session(BaseModel):
    """A session as stored: SessionGetResponse of the contract."""

    session_id: str
    search_query: JsonValue = None
    search_results: list[ShownResult] = Field(default_factory=list)
    search_meta: JsonObject | None = None
    payload_filter: JsonObject | None = None
    sort_by: JsonObject | None = None
    user_id: str | None = None
    created_at: int = Field(description="Epoch seconds, as the original service answers.")
    created_at_ms: int
    is_irrelevant: bool = False
    batch_id: int | None = None
    session_number: int | None = None
    extra: JsonObject | None = Field(None, description=_EXTRA_DOC)
    events: list[StoredEvent] = Field(default_factory=list)
    has_more_events: bool = Field(
        False,
        description="More events follow those answered (beyond the original service, which "
        "answers at most 100): read them with events_cursor.",
    )
    events_cursor: str | None = Field(
        None,
        description="Pass as events_after to read the next events; null when there are no more.",
    )
    unknown_fields: list[str] = Field(
        default_factory=list, exclude_if=_nothing, description=_UNKNOWN_DOC + " " + _ONLY_CREATE
    )


class PushResult(BaseModel):
    session_id: str
    stored: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events whose event_id the session already had.")
    unknown_fields: list[str] = Field(
        default_factory=list, exclude_if=_nothing, description=_UNKNOWN_DOC
    )


class ReleaseRequest(_Strict):
    release_id: str

    @field_validator("release_id")
    @classmethod
    def _rid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


class ReleaseResult(BaseModel):
    release_id: str
    batch_id: int
    released_at: int
    released_at_ms: int


BatchStateName = Literal["collecting", "released", "fine_tuning", "archiving", "archived"]


class BatchInfo(BaseModel):
    batch_id: int
    state: BatchStateName
    release_id: str | None = None
    created_at_ms: int
    released_at_ms: int | None = None
    updated_at_ms: int
    sessions: int = Field(0, description="Sessions registered in the batch.")
    events: int = Field(0, description="Events stored in those sessions.")


class BatchList(BaseModel):
    batches: list[BatchInfo]


class BatchIdRequest(_Strict):
    batch_id: PositiveInt64


class BatchStateRequest(BatchIdRequest):
    state: BatchStateName


class BatchSessionsQuery(BatchIdRequest):
    """One page of a batch: keyset on ``session_number``, so any depth costs the same."""

    after_number: NonNegativeInt64 = Field(0, description="Answer sessions with a larger number.")
    limit: int | None = Field(
        None, ge=1, description="Sessions in the page; default 10 (at most max_page_size)."
    )
    events_limit: int | None = Field(
        None,
        ge=0,
        description="Events per session, oldest first; default 100 (at most max_events_limit).",
    )

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int | None, info: ValidationInfo) -> int:
        limit = _limits(info).max_page_size
        if v is None:
            return min(10, limit)
        if v > limit:
            raise ValueError(f"limit must be at most {limit} (max_page_size), got {v}")
        return v

    @field_validator("events_limit")
    @classmethod
    def _events_limit(cls, v: int | None, info: ValidationInfo) -> int:
        limit = _limits(info).max_events_limit
        if v is None:
            return min(100, limit)
        if v > limit:
            raise ValueError(f"events_limit must be at most {limit} (max_events_limit), got {v}")
        return v


class BatchSessionsPage(BaseModel):
    batch_id: int
    last_number: int | None = Field(description="Pass as after_number for the next page.")
    sessions: list[Session]


QueueStateName = Literal["pending", "claimed", "done", "failed"]


class QueueEntry(BaseModel):
    """A session queued for the improvement worker."""

    entry_id: int
    session_id: str
    state: QueueStateName
    attempts: int = Field(description="Claims so far; pass it back as `attempt` to acknowledge.")
    enqueued_at_ms: int
    claimed_at_ms: int | None = None
    claimed_by: str | None = None
    lease_expires_at_ms: int | None = Field(
        None, description="While claimed: after this the entry is handed out again."
    )
    finished_at_ms: int | None = None
    error: str | None = None


class ClaimRequest(_Strict):
    worker: str | None = Field(None, description="Who claims, recorded as claimed_by.")
    limit: int = Field(10, ge=1, description="Most entries to hand out.")

    @field_validator("worker")
    @classmethod
    def _worker(cls, v: str | None, info: ValidationInfo) -> str | None:
        # claimed_by is 256 characters wide, enforced on PostgreSQL whatever max_id_chars says.
        limit = min(_limits(info).max_id_chars, 256)
        return None if v is None else _check_id(v, limit, "a worker name")

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int, info: ValidationInfo) -> int:
        limit = _limits(info).max_page_size
        if v > limit:
            raise ValueError(f"limit must be at most {limit} (max_page_size), got {v}")
        return v


class ClaimResult(BaseModel):
    entries: list[QueueEntry]


class AckRequest(_Strict):
    entry_id: PositiveInt64
    attempt: PositiveInt64 = Field(description="The entry's `attempts` as the claim answered it.")
    status: Literal["done", "failed"]
    error: str | None = Field(None, description="Why it failed, kept for the operator.")

    @field_validator("error")
    @classmethod
    def _error(cls, v: str | None, info: ValidationInfo) -> str | None:
        limit = _limits(info).max_meta_bytes
        if v is not None and len(v) > limit:
            raise ValueError(f"error must be at most {limit} characters, got {len(v)}")
        if v is not None:
            _check_no_nul(v, "error")
        return v


class QueueCounts(BaseModel):
    pending: int = 0
    claimed: int = 0
    done: int = 0
    failed: int = 0


M = TypeVar("M", bound=BaseModel)


def _invalid(exc: ValidationError) -> InvalidInput:
    return InvalidInput(
        [
            FieldError(
                loc=tuple(e["loc"]),
                msg=e["msg"].removeprefix("Value error, "),
                type=e["type"],
            )
            for e in exc.errors(include_url=False)
        ]
    )


def parse(model: type[M], data: Any, limits: Limits = DEFAULT_LIMITS) -> M:
    """Validate a Python value (a dict or a model) against ``model`` under ``limits``."""
    try:
        return model.model_validate(data, context={"limits": limits})
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_json(model: type[M], raw: bytes | str, limits: Limits = DEFAULT_LIMITS) -> M:
    """Validate a JSON document in one pass; malformed JSON is an ``InvalidInput`` too."""
    try:
        return model.model_validate_json(raw, context={"limits": limits})
    except ValidationError as exc:
        raise _invalid(exc) from None
