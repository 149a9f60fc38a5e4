"""Sessions, their results and events: the requests that register and push, and the answers."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from searchtrail.limits import DEFAULT_SESSION_EVENTS_LIMIT, MAX_SESSION_EVENTS_LIMIT
from searchtrail.models._validation import (
    _EXTRA_DOC,
    _ONLY_CREATE,
    _UNKNOWN_DOC,
    INT64_MAX,
    INT64_MIN,
    JsonObject,
    Timestamp,
    _check_id,
    _check_json_size,
    _check_no_nul,
    _collect_unknown,
    _limits,
    _nothing,
    _Open,
    _Strict,
    fast,
)

__all__ = [
    "NewSessionEvent",
    "PushResult",
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
]


@fast("sized")
def _sized(value: JsonObject | None, info: ValidationInfo) -> JsonObject | None:
    if value is not None:
        _check_json_size(value, _limits(info).max_meta_bytes, str(info.field_name))
    return value


# An object a client sends (meta, search_meta, ...): at most max_meta_bytes of JSON, no NUL.
SizedObject = Annotated[JsonObject | None, AfterValidator(_sized)]


class _Body(_Open):
    """A request body whose unknown keys, and those of the items of its list ``_items``,
    are collected once per body (``unknown_fields``)."""

    _items: ClassVar[str]
    _unknown: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    @fast("body")
    def _unknown_keys(self, info: ValidationInfo) -> Self:
        items: list[tuple[tuple[str | int, ...], _Open]] = [((), self)]
        items += [((self._items, i), item) for i, item in enumerate(getattr(self, self._items))]
        self._unknown = _collect_unknown(items, info)
        return self

    @property
    def unknown_fields(self) -> list[str]:
        """Paths of the keys the contract does not name (``events[2].evnt_type``)."""
        return self._unknown


class SearchResultItem(_Open):
    object_id: str
    rank: float | None = None
    meta: SizedObject = None

    def as_stored(self) -> dict[str, Any]:
        """The result as stored and answered: unknown keys under ``extra``."""
        out: dict[str, Any] = {"object_id": self.object_id, "rank": self.rank, "meta": self.meta}
        if self.__pydantic_extra__:
            out["extra"] = self.__pydantic_extra__
        return out

    @field_validator("object_id")
    @classmethod
    @fast("id", "max_id_chars")
    def _object_id(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


class SessionCreateRequest(_Body):
    """A registration. Keys the contract does not name (here or on a result) are kept in
    ``extra`` and listed in the answer's ``unknown_fields``; refused (422) under the
    ``strict_fields`` setting."""

    _items: ClassVar[str] = "search_results"

    session_id: str | None = Field(
        default=None, description="Chosen by the client; omitted, the server generates one."
    )
    search_query: JsonValue = Field(
        default=None, description="Usually the text typed; may be an object for structured queries."
    )
    search_results: list[SearchResultItem] = Field(
        default_factory=list, description="Ranked as shown, first = top."
    )
    search_meta: SizedObject = None
    payload_filter: SizedObject = None
    sort_by: SizedObject = None
    user_id: str | None = None
    created_at: Timestamp

    @field_validator("session_id", "user_id")
    @classmethod
    @fast("id", "max_id_chars")
    def _ids(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars)

    @field_validator("search_query")
    @classmethod
    @fast("query", "max_query_chars")
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
    @fast("list", "max_results_per_session")
    def _results(cls, v: list[SearchResultItem], info: ValidationInfo) -> list[SearchResultItem]:
        limit = _limits(info).max_results_per_session
        if len(v) > limit:
            raise ValueError(f"at most {limit} results per session, got {len(v)}")
        return v

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
    meta: SizedObject = None

    @model_validator(mode="before")
    @classmethod
    @fast("derived")
    def _derive_event_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None:
            content = {k: v for k, v in data.items() if k != "event_id"}
            canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.sha256(canonical.encode()).hexdigest()
            data = {**data, "event_id": f"auto-{digest[:32]}"}
        return data

    @field_validator("event_id", "object_id")
    @classmethod
    @fast("id", "max_id_chars")
    def _ids(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars)

    @field_validator("event_type")
    @classmethod
    @fast("id", "max_event_type_chars")
    def _type(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_event_type_chars, "an event type")


class SessionAddEventsRequest(_Body):
    """A push. An event's keys the contract does not name are kept in its ``extra`` and
    listed in the answer's ``unknown_fields``; refused (422) under ``strict_fields``.

    Unknown keys beside ``session_id`` and ``events`` belong to no event or session: they
    are listed in ``unknown_fields`` and not stored.
    """

    _items: ClassVar[str] = "events"

    session_id: str
    events: list[NewSessionEvent]

    @field_validator("session_id")
    @classmethod
    @fast("id", "max_id_chars")
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)

    @field_validator("events")
    @classmethod
    @fast("list", "max_events_per_push")
    def _count(cls, v: list[NewSessionEvent], info: ValidationInfo) -> list[NewSessionEvent]:
        limit = _limits(info).max_events_per_push
        if len(v) > limit:
            raise ValueError(f"at most {limit} events per request, got {len(v)}")
        return v


class SessionIdRequest(_Strict):
    session_id: str

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


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
