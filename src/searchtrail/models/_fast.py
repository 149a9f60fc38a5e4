"""``parse_json``: a body validated in pydantic-core, its rules checked as constraints.

The models' own checks read their limits from the validation context, so they run in
Python, once per value: for a push of 100 events, some 600 calls. For each model and
``Limits``, a schema is derived here, once, from the model's own core schema: every
check marked with ``fast`` (``_validation.fast``) becomes the constraint that does its
work (an id: 1 to N printable ASCII characters; a list: at most N items; an epoch-ms
timestamp: a strict integer in range), and what is left of a body's rules runs once per
body (``_body_check``): its unknown keys, and meta's size for all its objects in one
serialization. The instances are of the models' own classes.

Some rules are checked once on the raw bytes. A JSON text holds U+0000 only as the
escape ``\\u0000`` (the parser refuses a raw NUL): without it no value holds a NUL, so
the derived schema skips the walks that look for one, and a body with it goes the
model's way. A body of printable ASCII without a backslash holds only printable
strings: its ids need only their length (the ``plain`` schema); others get a pattern.

Invariant: the derived schema accepts only bodies the model accepts, and builds the
same instances from them. Where a constraint cannot decide (an id with non-ASCII
characters, a timestamp in seconds or ISO 8601), a left-to-right union falls through to
the check itself. Anything the derived schema refuses is validated again by the model,
which alone names the errors: a refused body costs two validations.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from operator import attrgetter
from types import SimpleNamespace
from typing import Any, TypeVar, cast, get_args

import pydantic_core
from pydantic import BaseModel, ValidationError, ValidationInfo
from pydantic_core import SchemaValidator, core_schema

from searchtrail.limits import DEFAULT_LIMITS, Limits
from searchtrail.models._validation import FAST_MARK, _collect_unknown, _invalid, _Open
from searchtrail.timestamps import MAX_EPOCH_MS, MS_THRESHOLD

__all__ = ["derived_validator", "parse_json"]

M = TypeVar("M", bound=BaseModel)

# Printable ASCII: what str.isprintable() says of every ASCII string it accepts.
_PRINTABLE_ASCII = r"^[ -~]*$"
# A JSON text can hold U+0000 only as this escape: the parser refuses a raw NUL byte.
_NUL_ESCAPE = "\\u0000"
_NUL_ESCAPE_BYTES = _NUL_ESCAPE.encode()
_BUILDING = threading.Lock()
_EXTRA = attrgetter("__pydantic_extra__")


def parse_json(model: type[M], raw: bytes | str, limits: Limits = DEFAULT_LIMITS) -> M:
    """Validate a JSON document in one pass; malformed JSON is an ``InvalidInput`` too."""
    context = {"limits": limits}
    derived = None
    if isinstance(raw, bytes):
        if _NUL_ESCAPE_BYTES not in raw:
            plain = raw.isascii() and b"\\" not in raw and b"\x7f" not in raw
            derived = _derived(model, limits, plain)
    elif _NUL_ESCAPE not in raw:
        plain = raw.isascii() and "\\" not in raw and "\x7f" not in raw
        derived = _derived(model, limits, plain)
    if derived is not None:
        try:
            found: M = derived.validate_json(raw, context=context)
            return found
        except ValidationError:
            pass  # the model's own validation decides, and names the errors
    try:
        return model.model_validate_json(raw, context=context)
    except ValidationError as exc:
        raise _invalid(exc) from None


# (model, id(limits), plain) -> (limits, its validator): hashing a Limits costs more than
# a small body's checks. Holding the Limits keeps its id from naming another one.
_BY_ID: dict[tuple[type, int, bool], tuple[Limits, SchemaValidator | None]] = {}


def _derived(model: type[BaseModel], limits: Limits, plain: bool) -> SchemaValidator | None:
    key = (model, id(limits), plain)
    hit = _BY_ID.get(key)
    if hit is not None and hit[0] is limits:
        return hit[1]
    if len(_BY_ID) > 256:
        _BY_ID.clear()
    found = derived_validator(model, limits, plain)
    _BY_ID[key] = (limits, found)
    return found


@lru_cache(maxsize=64)
def derived_validator(
    model: type[BaseModel], limits: Limits, plain: bool = False
) -> SchemaValidator | None:
    """``model``'s derived validator under ``limits``; None if none of its checks is marked.

    ``plain``: for a body of printable ASCII without escapes (no byte over 0x7e, no
    backslash), whose every string is printable, so that an id needs only its length.
    """
    derive = _Derive(limits, plain)
    schema = derive.schema(model.__pydantic_core_schema__)
    if not derive.changed:
        return None
    covered: set[type] = set()
    for body in derive.bodies:  # its own fields and its items' are what _body_check sees
        items = body.model_fields[getattr(body, "_items")].annotation  # noqa: B009
        covered |= {body, *get_args(items)}
    assert set(derive.sized) <= covered, f"meta's rules unchecked on {set(derive.sized)}"
    # pydantic-core builds a nested model from its class's own validator when the class
    # is complete ("prebuilt"), which would bring every check back; a class reads as
    # incomplete while the derived schema is built, and only then.
    with _BUILDING:
        saved = [(cls, cls.__dict__.get("__pydantic_complete__")) for cls in derive.classes]
        try:
            for cls, _ in saved:
                type.__setattr__(cls, "__pydantic_complete__", False)
            return SchemaValidator(schema)
        finally:
            for cls, complete in saved:
                type.__setattr__(cls, "__pydantic_complete__", complete)


class _Derive:
    """One walk over a core schema: a copy with every marked check replaced."""

    def __init__(self, limits: Limits, plain: bool) -> None:
        self.limits = limits
        self.plain = plain
        self.changed = False
        # The fields each model class holds under meta's rules (marked ``sized``).
        self.sized: dict[type, list[str]] = {}
        self.classes: set[type] = set()
        # Inside a body, whose check (``_body_check``) applies meta's rules to its own
        # fields and its items': outside one, a ``sized`` check stays as it is.
        self.depth = 0
        self.bodies: list[type[BaseModel]] = []
        # What _collect_unknown reads of a ValidationInfo: the limits, in its context.
        self.info = cast(ValidationInfo, SimpleNamespace(context={"limits": limits}))

    def schema(self, node: Any, cls: type | None = None, field: str | None = None) -> Any:
        if isinstance(node, list):
            return [self.schema(n, cls, field) for n in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind == "model":
            cls = node["cls"]
            self.classes.add(cls)
        mark = None
        if isinstance(kind, str) and kind.startswith("function-"):
            fn = node["function"]["function"]
            mark = getattr(getattr(fn, "__func__", fn), FAST_MARK, None)
        if mark is None:
            out = {}
            for key, value in node.items():
                if kind == "model-fields" and key == "fields":
                    out[key] = {name: self.schema(f, cls, name) for name, f in value.items()}
                else:
                    out[key] = self.schema(value, cls, field)
            return out
        self.changed = True
        self.depth += mark[0] == "body"
        inner = self.schema(node["schema"], cls, field)
        self.depth -= mark[0] == "body"
        return self._replace(mark, node, inner, cls, field)

    def _replace(
        self,
        mark: tuple[str, str | None],
        node: dict[str, Any],
        inner: Any,
        cls: type | None,
        field: str | None,
    ) -> Any:
        what, limit_name = mark
        limit = getattr(self.limits, limit_name) if limit_name else 0
        exact = {**node, "schema": inner}  # the check itself, for what the constraint cannot say
        if what == "id":
            if self.plain:
                return _id(inner, limit, None)
            fast = _id(inner, limit, _PRINTABLE_ASCII)
            return core_schema.union_schema([fast, exact], mode="left_to_right")
        if what == "query":
            # A text query within its length: no Python; anything else is the check's.
            text = core_schema.nullable_schema(core_schema.str_schema(max_length=limit))
            return core_schema.union_schema([text, exact], mode="left_to_right")
        if what == "list":
            return {**inner, "max_length": limit}
        if what == "timestamp":
            epoch_ms = core_schema.int_schema(strict=True, ge=MS_THRESHOLD, le=MAX_EPOCH_MS)
            nullable = core_schema.nullable_schema(epoch_ms)
            return core_schema.union_schema([nullable, exact], mode="left_to_right")
        if what == "sized":
            if not self.depth:
                return exact
            assert cls is not None and field is not None
            self.sized.setdefault(cls, []).append(field)
            return inner
        if what == "derived":
            return inner  # event_id is required here: one without goes to the model's way
        if what == "body":
            assert inner["type"] == "model", inner["type"]  # a model validator wraps it
            body = inner["cls"]
            self.bodies.append(body)
            # pydantic's post-init would only fill _unknown in, which _body_check does.
            assert body.model_post_init.__name__ == "init_private_attributes"
            assert set(body.__private_attributes__) == {"_unknown"}
            inner = {k: v for k, v in inner.items() if k != "post_init"}
            fn = core_schema.no_info_plain_validator_function(self._body_check)["function"]
            return {**node, "schema": inner, "function": fn}
        raise AssertionError(f"unknown mark {what!r}")

    def _body_check(self, body: _Open) -> _Open:
        """What is left of a body's rules (``sessions._Body``), once per body: its unknown
        keys, and meta's size rule for all its objects at once (under the NUL pre-check)."""
        name: str = getattr(body, "_items")  # noqa: B009 (sessions._Body has it)
        items: list[_Open] = getattr(body, name)
        unknown: list[str] = []
        if body.__pydantic_extra__ or any(map(_EXTRA, items)):
            located = [((name, n), item) for n, item in enumerate(items)]
            unknown = _collect_unknown([((), body), *located], self.info)
        object.__setattr__(body, "__pydantic_private__", {"_unknown": unknown})
        values = [getattr(body, f) for f in self.sized.get(type(body), ())]
        if items:
            for f in self.sized.get(type(items[0]), ()):
                values += map(attrgetter(f), items)
        # Together within the limit, each is: one serialization instead of one per object.
        limit = self.limits.max_meta_bytes
        if len(pydantic_core.to_json(values)) > limit and any(
            v is not None and len(pydantic_core.to_json(v)) > limit for v in values
        ):
            raise ValueError("an object over max_meta_bytes")
        return body


def _id(schema: dict[str, Any], max_chars: int, pattern: str | None) -> dict[str, Any]:
    """``schema`` (a string, or a nullable one) as an id of 1 to ``max_chars`` characters
    that match ``pattern``."""
    if schema["type"] == "nullable":
        return {**schema, "schema": _id(schema["schema"], max_chars, pattern)}
    assert schema["type"] == "str", schema
    out: dict[str, Any] = {**schema, "min_length": 1, "max_length": max_chars}
    return out if pattern is None else {**out, "pattern": pattern}
