"""What every model shares: the limits context, the field checks, the base classes, parsing.

Size limits are configurable, so they are read from the validation context
(``{"limits": Limits(...)}``) rather than fixed in the field types; without a
context the defaults apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import pydantic_core
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from searchtrail.errors import FieldError, InvalidInput, format_loc
from searchtrail.limits import DEFAULT_LIMITS, Limits
from searchtrail.timestamps import to_epoch_ms

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "JsonObject",
    "NonNegativeInt64",
    "PositiveInt64",
    "Timestamp",
    "fast",
    "parse",
]


F = TypeVar("F", bound=Callable[..., Any])
FAST_MARK = "__searchtrail_fast__"


def fast(kind: str, limit: str | None = None) -> Callable[[F], F]:
    """Marks a check with the pydantic-core constraint that can do its work on the HTTP
    path (``models._fast``): ``id`` (1 to ``limit`` printable characters), ``list`` (at
    most ``limit`` items), ``query`` (a text of at most ``limit`` characters, or an object
    under meta's rules), ``sized`` (meta's size and NUL rules), ``timestamp``, ``derived``
    (an event id derived when missing) or ``body`` (a body's unknown keys)."""

    def mark(fn: F) -> F:
        setattr(fn, FAST_MARK, (kind, limit))
        return fn

    return mark


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


@fast("timestamp")
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


_EXTRA_DOC = "The keys the client sent that the contract does not name, kept as sent."
_UNKNOWN_DOC = (
    "Paths of the keys in the request that the contract does not name (kept under extra), "
    "so that a typo shows; left out when there were none."
)
_ONLY_CREATE = "Only in the answer to a registration."


def _nothing(value: list[str]) -> bool:
    return not value


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
