"""The importer's validation: the API's models, with the columns an import also carries.

Two ways to the same rows:

- ``validate``: records of any source, as dicts, through the API's own models
  (``searchtrail.models``), one call per chunk; a bad row's reason names its field.
- ``fast_adapters``: the own dump's JSONL lines, a whole chunk validated in one
  pydantic-core call straight from the bytes. Invariant: a chunk these models accept
  gives exactly the rows ``validate`` gives for the same lines (the same id, size, NUL,
  JSON-type and timestamp rules; the checks Rust can make are made there, the others by
  the API's own functions); a row they refuse, or anything unusual (a missing column, a
  result's ``extra`` that is empty), refuses the chunk, which then goes the way of
  ``validate`` line by line, so that path alone names reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Annotated, Any, NotRequired

import pydantic_core
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.types import Strict
from typing_extensions import TypedDict

from searchtrail.limits import Limits
from searchtrail.models import (
    BatchStateName,
    JsonObject,
    NewSessionEvent,
    NonNegativeInt64,
    PositiveInt64,
    SessionCreateRequest,
    Timestamp,
    _check_id,
    _check_no_nul,
    _epoch_ms_or_none,
    _has_nul,
    _limits,
    _Strict,
)
from searchtrail.models import (
    QueueStateName as QueueState,  # the Literal of storage.api.QueueState
)
from searchtrail.timestamps import MAX_EPOCH_MS, MS_THRESHOLD

__all__ = [
    "BATCHES",
    "EVENTS",
    "KEYS",
    "QUEUE",
    "SESSIONS",
    "FastAdapters",
    "fast_adapters",
    "fast_validate",
    "flat_results",
    "validate",
]


class _SessionIn(SessionCreateRequest):
    # A record is structured: its unknown keys are in "extra" already, and its results'
    # unknown keys sit flat in each result, as a client sends them.
    model_config = ConfigDict(extra="forbid")

    session_id: str
    created_at_given: StrictBool = True
    is_irrelevant: StrictBool = False
    registered_at: Timestamp
    kept_extra: JsonObject | None = Field(None, validation_alias="extra")
    session_number: PositiveInt64 | None = None


class _EventIn(NewSessionEvent):
    model_config = ConfigDict(extra="forbid")  # unknown keys are in "extra" already

    session_id: str
    id: PositiveInt64 | None = None
    kept_extra: JsonObject | None = Field(None, validation_alias="extra")

    @model_validator(mode="before")
    @classmethod
    def _derive_event_id(cls, data: Any) -> Any:
        # The API's derivation, over what a push would have held: an event imported without
        # an event_id gets the id the API gives the same event pushed.
        if isinstance(data, dict) and data.get("event_id") is None:
            pushed = {k: v for k, v in data.items() if k not in ("session_id", "id", "extra")}
            derive: Callable[[Any], dict[str, Any]] = NewSessionEvent._derive_event_id  # type: ignore[assignment]
            data = {**data, "event_id": derive(pushed)["event_id"]}
        return data

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars, "a session id")


class _BatchIn(_Strict):
    batch_id: PositiveInt64 | None = None
    state: BatchStateName
    release_id: str | None = None
    created_at: Timestamp
    released_at: Timestamp
    updated_at: Timestamp

    @field_validator("release_id")
    @classmethod
    def _rid(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _check_id(v, _limits(info).max_id_chars, "a release id")


class _QueueIn(_Strict):
    entry_id: PositiveInt64 | None = None
    session_id: str
    state: QueueState
    attempts: NonNegativeInt64 = 0
    enqueued_at: Timestamp
    claimed_at: Timestamp
    claimed_by: str | None = None
    finished_at: Timestamp
    error: str | None = None

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars, "a session id")

    @field_validator("claimed_by")
    @classmethod
    def _worker(cls, v: str | None, info: ValidationInfo) -> str | None:
        # claimed_by is 256 characters wide, as ClaimRequest's worker.
        return None if v is None else _check_id(v, min(_limits(info).max_id_chars, 256))

    @field_validator("error")
    @classmethod
    def _error(cls, v: str | None) -> str | None:
        if v is not None:
            _check_no_nul(v, "error")
        return v


class _KeyIn(_Strict):
    key_id: PositiveInt64 | None = None
    name: str
    prefix: str
    key_hash: str
    scopes: str
    created_at: Timestamp
    revoked_at: Timestamp

    @field_validator("name", "prefix", "key_hash")
    @classmethod
    def _text(cls, v: str, info: ValidationInfo) -> str:
        width = {"name": 256, "prefix": 32, "key_hash": 128}[str(info.field_name)]
        return _check_id(v, width, str(info.field_name))

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: str) -> str:
        from searchtrail.keys import Scope

        for scope in v.split():
            Scope(scope)  # ValueError names the unknown scope
        if not v.split():
            raise ValueError("a key needs at least one scope")
        return v


# The record's names of the fields a model calls otherwise (timestamps in milliseconds).
_FIELD_NAMES = {
    "created_at": "created_at_ms",
    "registered_at": "registered_at_ms",
    "released_at": "released_at_ms",
    "updated_at": "updated_at_ms",
    "enqueued_at": "enqueued_at_ms",
    "claimed_at": "claimed_at_ms",
    "finished_at": "finished_at_ms",
    "revoked_at": "revoked_at_ms",
    "batch_id": "batch_id",
}


def flat_results(results: Any) -> Any:
    """Results as a client sends them: a stored result's ``extra`` keys back at its top."""
    if not isinstance(results, list):
        return results
    return [
        {**r["extra"], **{k: v for k, v in r.items() if k != "extra"}}
        if isinstance(r, dict) and isinstance(r.get("extra"), dict)
        else r
        for r in results
    ]


def _reason(errors: Sequence[Any]) -> str:
    parts = []
    for e in errors:
        loc = [str(x) for x in e["loc"]]
        if loc:
            loc[0] = _FIELD_NAMES.get(loc[0], loc[0])
        where = ".".join(loc) or "row"
        parts.append(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def validate(
    adapter: TypeAdapter[list[Any]], data: list[dict[str, Any]], limits: Limits
) -> tuple[list[Any], dict[int, str]]:
    """Validate a chunk in one call: the valid items (in order) and each bad one's reason.

    One call for the whole chunk: pydantic's per-call overhead was paid once per chunk
    instead of once per row. A chunk with bad rows is validated again without them.
    """
    context = {"limits": limits}
    try:
        return adapter.validate_python(data, context=context), {}
    except ValidationError as exc:
        by_row: dict[int, list[Any]] = {}
        for e in exc.errors(include_url=False):
            index = e["loc"][0]
            assert isinstance(index, int)
            by_row.setdefault(index, []).append({**e, "loc": e["loc"][1:]})
    bad = {i: _reason(errs) for i, errs in by_row.items()}
    good = [d for i, d in enumerate(data) if i not in bad]
    return adapter.validate_python(good, context=context), bad


SESSIONS = TypeAdapter(list[_SessionIn])
EVENTS = TypeAdapter(list[_EventIn])
BATCHES = TypeAdapter(list[_BatchIn])
QUEUE = TypeAdapter(list[_QueueIn])
KEYS = TypeAdapter(list[_KeyIn])


# -- the own dump's fast path ------------------------------------------------------------

# Printable ASCII: what str.isprintable() says of every ASCII string it accepts. An id
# with other characters goes to _check_id itself (the union's second member).
_PRINTABLE_ASCII = r"^[ -~]*$"


def _left_to_right(*members: Any) -> Any:
    """A union tried in order: the first member that accepts the value wins."""
    union: Any = members[0]
    for member in members[1:]:
        union = union | member
    return Annotated[union, Field(union_mode="left_to_right")]


def _id(max_chars: int) -> Any:
    def check(v: str) -> str:
        return _check_id(v, max_chars)

    fast = Annotated[
        str, StringConstraints(min_length=1, max_length=max_chars, pattern=_PRINTABLE_ASCII)
    ]
    return _left_to_right(fast, Annotated[str, AfterValidator(check)])


def _json_size(max_bytes: int) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        raw = pydantic_core.to_json(v)
        if len(raw) > max_bytes:
            raise ValueError("too large")
        # A string holding U+0000 is written as \u0000: without it, there is none.
        if b"\\u0000" in raw and _has_nul(v):
            raise ValueError("NUL")
        return v

    return check


# Epoch milliseconds as the dump holds them come through as they are (to_epoch_ms
# answers them unchanged); anything else goes to to_epoch_ms.
_TIMESTAMP: Any = _left_to_right(
    Annotated[int, Strict(), Field(ge=MS_THRESHOLD, le=MAX_EPOCH_MS)],
    Annotated[int | None, BeforeValidator(_epoch_ms_or_none)],
)
_RESULT_KEYS = frozenset({"object_id", "rank", "meta"})


class FastAdapters:
    """The own dump's sessions and events validated from their JSONL lines (see above)."""

    def __init__(self, limits: Limits) -> None:
        id_ = _id(limits.max_id_chars)
        obj = Annotated[JsonObject, AfterValidator(_json_size(limits.max_meta_bytes))] | None
        size = _json_size(limits.max_meta_bytes)

        def query(v: JsonValue) -> JsonValue:
            # SessionCreateRequest._query's rule.
            if isinstance(v, str):
                if "\x00" in v or len(v) > limits.max_query_chars:
                    raise ValueError("query")
            elif v is not None:
                size(v)
            return v

        def results(v: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # SessionCreateRequest._results and _collect_unknown's rules on what a result
            # keeps under extra; an extra the API could not have stored refuses the chunk.
            if len(v) > limits.max_results_per_session:
                raise ValueError("results")
            for r in v:
                if "extra" in r:
                    extra = r["extra"]
                    if limits.strict_fields or not extra or not _RESULT_KEYS.isdisjoint(extra):
                        raise ValueError("extra")
                    size(extra)
            return v

        class Result(TypedDict):
            __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
            object_id: id_  # type: ignore[valid-type]
            rank: float | None
            meta: obj
            extra: NotRequired[JsonObject]

        session = create_model(
            "FastSession",
            __config__=ConfigDict(extra="forbid"),
            session_number=(PositiveInt64 | None, None),
            session_id=(id_, ...),
            batch_id=(Any, None),
            search_query=(Annotated[JsonValue, AfterValidator(query)], None),
            search_results=(Annotated[list[Result], AfterValidator(results)], ...),
            search_meta=(obj, None),
            payload_filter=(obj, None),
            sort_by=(obj, None),
            user_id=(id_ | None, None),
            created_at_ms=(_TIMESTAMP, None),
            created_at_given=(StrictBool, True),
            is_irrelevant=(StrictBool, False),
            registered_at_ms=(_TIMESTAMP, None),
            extra=(JsonObject | None, None),
        )

        class Event(TypedDict):
            __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
            id: PositiveInt64 | None
            session_number: Any
            event_id: id_  # type: ignore[valid-type]
            object_id: id_ | None  # type: ignore[valid-type]
            event_type: _id(limits.max_event_type_chars)  # type: ignore[valid-type]
            created_at_ms: _TIMESTAMP
            meta: obj
            extra: JsonObject | None
            session_id: id_  # type: ignore[valid-type]

        self.sessions: TypeAdapter[list[Any]] = TypeAdapter(list[session])
        self.events: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[Event])  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def fast_adapters(limits: Limits) -> FastAdapters:
    return FastAdapters(limits)


def fast_validate(adapter: TypeAdapter[list[Any]], lines: Sequence[bytes]) -> list[Any] | None:
    """A chunk of JSONL lines validated in one call; None if any line fails."""
    try:
        return adapter.validate_json(b"[" + b",".join(lines) + b"]")
    except ValidationError:
        return None
