"""``parse_json``'s derived schema against the models' own validation (``models._fast``).

The derived schema must accept only what the model accepts and build the same
instances; a body it refuses is validated again by the model, whose errors are the
answer. So for every body below, valid or not, ``parse_json`` must answer exactly what
``Model.model_validate_json`` answers. The NUL rule now starts from the raw bytes: a
``\\u0000`` escape anywhere sends the body the model's way, which names the field.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from searchtrail.errors import InvalidInput
from searchtrail.limits import Limits
from searchtrail.models import (
    NewSessionEvent,
    SearchResultItem,
    SessionAddEventsRequest,
    SessionCreateRequest,
    _validation,
    parse_json,
    sessions,
)
from searchtrail.models._fast import derived_validator

MS = 1_764_000_000_000
LIMITS = [
    Limits(),
    Limits(strict_fields=True),
    Limits(max_id_chars=4, max_event_type_chars=3, max_meta_bytes=40, max_query_chars=5,
           max_events_per_push=2, max_results_per_session=2),
]  # fmt: skip


def _outcome(model: type[BaseModel], raw: bytes, limits: Limits, *, ours: bool) -> Any:
    """What validation answers: the instances' full state, or the errors."""
    try:
        if ours:
            found = parse_json(model, raw, limits)
        else:
            found = model.model_validate_json(raw, context={"limits": limits})
    except InvalidInput as exc:
        return ("refused", [(e.loc, e.msg, e.type) for e in exc.errors])
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return (
            "refused",
            [(e["loc"], e["msg"].removeprefix("Value error, "), e["type"]) for e in errors],
        )
    return ("accepted", type(found), _state(found))


def _state(m: Any) -> Any:
    if isinstance(m, BaseModel):
        return (type(m), _state(m.__dict__), _state(m.__pydantic_extra__),
                m.__pydantic_fields_set__, m.__pydantic_private__)  # fmt: skip
    if isinstance(m, dict):
        return {k: _state(v) for k, v in m.items()}
    if isinstance(m, list):
        return [_state(v) for v in m]
    if isinstance(m, float) and m != m:
        return "NaN"  # equal to itself, unlike nan
    return (type(m), m)


def _same(model: type[BaseModel], body: Any, limits: Limits) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ours = _outcome(model, raw, limits, ours=True)
    assert ours == _outcome(model, raw, limits, ours=False), raw[:300]
    if raw.isascii():  # as str too
        assert _outcome(model, raw.decode(), limits, ours=True) == ours
    return str(ours[0])


@pytest.mark.parametrize("model", [NewSessionEvent, SearchResultItem])
def test_an_item_alone_keeps_metas_rules(model: type[BaseModel]) -> None:
    for meta in ({"k": "x" * 16_384}, {"k": "x" * 100}):
        _same(model, {"event_id": "e", "object_id": "o", "meta": meta}, Limits())


def _event(j: int, **more: Any) -> dict[str, Any]:
    return {"event_id": f"e-{j}", "object_id": f"o{j}", "event_type": "click", **more}


PUSHES: list[Any] = [
    {"session_id": "s1", "events": [_event(j) for j in range(3)]},
    {"session_id": "s1", "events": [_event(j, created_at=MS + j, meta={"p": j}) for j in range(3)]},
    {"session_id": "s1", "events": []},
    {"session_id": "s1", "events": [_event(0, created_at=1_700_000_000)]},  # seconds
    {"session_id": "s1", "events": [_event(0, created_at=1_700_000_000.5)]},
    {"session_id": "s1", "events": [_event(0, created_at="2024-05-01T12:00:00Z")]},
    {"session_id": "s1", "events": [_event(0, created_at=None, meta=None, object_id=None)]},
    {"session_id": "s1", "events": [_event(0, created_at=True)]},
    {"session_id": "s1", "events": [_event(0, created_at=-1)]},
    {"session_id": "s1", "events": [_event(0, created_at=10**20)]},
    {"session_id": "s1", "events": [{"event_id": "e", "name": "purchase"}]},
    {"session_id": "s1", "events": [{"event_id": "e", "name": 5, "event_type": "view"}]},
    {"session_id": "s1", "events": [{"event_id": "e", "name": 5}]},
    {"session_id": "s1", "events": [{"object_id": "o1"}]},  # event_id derived
    {"session_id": "s1", "events": [{"event_id": None, "object_id": "o1"}]},
    {"session_id": "s1", "events": [_event(0, item_info={"title": "S1"})], "trace": 1},
    {"session_id": "s1", "events": [_event(0, evnt_type="click")]},
    {"session_id": "sé", "events": [_event(0, object_id="ö-1", event_type="klick✓")]},
    {"session_id": "s\n", "events": [_event(0)]},
    {"session_id": "s\x7f", "events": [_event(0)]},
    {"session_id": "", "events": [_event(0)]},
    {"session_id": "x" * 129, "events": [_event(0)]},
    {"session_id": "x" * 128, "events": [_event(0, event_type="t" * 65)]},
    {"session_id": 5, "events": [_event(0)]},
    {"session_id": "s1", "events": [_event(j) for j in range(1001)]},
    {"session_id": "s1", "events": [_event(0, meta={"k": "x" * (16_384 - 8)})]},
    {"session_id": "s1", "events": [_event(0, meta={"k": "x" * (16_384 - 7)})]},
    {"session_id": "s1", "events": [_event(j, meta={"k": "x" * 9000}) for j in range(2)]},
    {"session_id": "s1", "events": [_event(0, meta={"f": 1e-5, "g": 1e300, "h": [1.5, -0.0]})]},
    {"session_id": "s1", "events": [_event(0, meta={"t": 'üñí\\"/'}, extra_k={"é": "\t"})]},
    {"session_id": "s1", "events": [_event(0, meta=[1, 2])]},
    {"session_id": "s1", "events": [_event(0, meta={"big": 10**30})]},
    {"session_id": "s1", "events": "none"},
    {"events": [_event(0)]},
    b'{"session_id": "s1", "session_id": "s2", "events": [{"event_id": "a", "event_id": "b"}]}',
    b'{"session_id": "s1", "events": [{"event_id": "e", "meta": {"x": NaN, "y": Infinity}}]}',
    b'{"session_id": "s1", "events": [{"event_id": "e", "meta": {"x": 1E2, "y": 1e-7}}]}',
    b'{"session_id": "s1", "events": [{"event_id": "e\\u00e9", "object_id": "\\u0041"}]}',
    b'{"session_id": "s1", "events": [{"event_id": "e", "meta": {"x": "\\\\u0000"}}]}',
    b'{"session_id": "s1", "events": [',
    b"[1, 2]",
    b"\xff\xfe",
]

CREATES: list[Any] = [
    {"session_id": "c1", "search_query": "red shoes", "user_id": "u1",
     "search_results": [{"object_id": f"o{j}", "rank": j + 1} for j in range(3)]},
    {"search_query": {"text": "q", "filters": {"size": 42}}, "search_meta": {"engine": "v1"},
     "payload_filter": {"a": 1}, "sort_by": {"price": "asc"}, "created_at": MS},
    {"search_query": None, "search_results": [{"object_id": "o", "meta": {"f": "x.jpg"},
                                               "item_info": {"price": 10.5}}]},
    {"search_query": 5}, {"search_query": ["a", 1]}, {"search_query": True},
    {"search_query": "q" * 5000}, {"search_query": "q" * 5001}, {"search_query": "ä" * 5000},
    {"search_query": {"text": "x" * 17_000}},
    {"search_results": [{"object_id": str(j)} for j in range(1001)]},
    {"search_results": [{"object_id": "a"}, {"rank": 1}]},
    {"search_results": [{"object_id": "a", "rank": "1.5"}]},
    {"sesion_id": "typo", "user_id": "u\u00e9"},
    {"session_id": None, "user_id": None, "created_at": "2024-05-01T12:00:00"},
    {"search_meta": {"k": "x" * 16_384}},
    {"search_meta": {"k": "x" * (16_384 - 8)}, "sort_by": {"k": "x" * (16_384 - 8)}},
]  # fmt: skip


@pytest.mark.parametrize("limits", LIMITS, ids=["default", "strict", "small"])
def test_a_push_is_answered_as_the_model_answers_it(limits: Limits) -> None:
    outcomes = {_same(SessionAddEventsRequest, body, limits) for body in PUSHES}
    assert outcomes == {"accepted", "refused"}


@pytest.mark.parametrize("limits", LIMITS, ids=["default", "strict", "small"])
def test_a_registration_is_answered_as_the_model_answers_it(limits: Limits) -> None:
    outcomes = {_same(SessionCreateRequest, body, limits) for body in CREATES}
    assert outcomes == {"accepted", "refused"}


_PIECES: list[Any] = [
    "a", "", "é", "a\tb", "x" * 130, 0, -1, 1.5, 1e-5, 10**19, None, True, [], {}, {"k": "v"},
    MS, 1_700_000_000, "2024-05-01T12:00:00Z", "soon", {"nested": [1, {"x": None}]},
]  # fmt: skip
_EVENT_KEYS = ["event_id", "object_id", "event_type", "name", "created_at", "meta", "item_info"]


def test_random_bodies_are_answered_as_the_model_answers_them() -> None:
    rng = random.Random(23)
    small = Limits(max_id_chars=8, max_meta_bytes=30, max_events_per_push=3)
    for _ in range(400):
        events = []
        for j in range(rng.randrange(5)):
            event: dict[str, Any] = {"event_id": f"e{j}"} if rng.random() < 0.8 else {}
            for key in rng.sample(_EVENT_KEYS, rng.randrange(len(_EVENT_KEYS))):
                event[key] = rng.choice(_PIECES)
            events.append(event)
        body = {"session_id": rng.choice(["s", "s" * 9, "sé", 5]), "events": events}
        for limits in (Limits(), small):
            _same(SessionAddEventsRequest, body, limits)


def test_a_clients_usual_body_runs_none_of_the_models_python_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The derived schema does their work, so pydantic-core must not reuse the classes'
    own validators ("prebuilt") for the nested models."""
    for model in (SessionAddEventsRequest, SessionCreateRequest):
        for plain in (True, False):
            derived = derived_validator(model, Limits(), plain)
            assert derived is not None and "Prebuilt" not in repr(derived)
    calls: list[str] = []
    for name in ("_check_id", "_check_json_size", "_collect_unknown", "to_epoch_ms"):
        module = sessions if hasattr(sessions, name) else _validation
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _r=real, _n=name, **k: (calls.append(_n), _r(*a, **k))[1]
        )
    push = json.dumps(PUSHES[1]).encode()
    create = json.dumps(CREATES[0]).encode()
    # Not plain (non-ASCII text, an escape): the ids are still ASCII, the pattern's.
    non_ascii = json.dumps(PUSHES[1], ensure_ascii=False).replace('"p"', '"größe\\n"').encode()
    for model, raw in ((SessionAddEventsRequest, push), (SessionCreateRequest, create),
                       (SessionAddEventsRequest, non_ascii)):  # fmt: skip
        parse_json(model, raw)
        assert calls == [], raw
        model.model_validate_json(raw)
        assert calls, raw  # the model's own way calls them
        calls.clear()


def _push(**event: Any) -> dict[str, Any]:
    return {"session_id": "s", "events": [{"event_id": "e", **event}]}


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (SessionAddEventsRequest, _push(meta={"k": "a\x00"}), "events[0].meta"),
        (SessionAddEventsRequest, _push(meta={"k\x00": 1}), "events[0].meta"),
        (SessionAddEventsRequest, _push(info=["\x00"]), "events[0].info"),
        (SessionAddEventsRequest, _push(event_id="e\x00"), "events[0].event_id"),
        (SessionAddEventsRequest, _push(name="c\x00"), "events[0].name"),
        (SessionCreateRequest, {"search_query": "red\x00shoes"}, "search_query"),
        (SessionCreateRequest, {"search_query": {"t": ["\x00"]}}, "search_query"),
        (SessionCreateRequest, {"search_results": [{"object_id": "o", "meta": {"a": "\x00"}}]},
         "search_results[0].meta"),
        # A backslash, then a NUL: the escape \u0000 follows an escaped backslash.
        (SessionCreateRequest, {"payload_filter": {"a": [1, "\\\x00"]}}, "payload_filter"),
    ],
)  # fmt: skip
def test_a_nul_escape_anywhere_is_refused_naming_its_field(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    text = json.dumps(body)
    assert "\\u0000" in text  # how JSON writes U+0000
    for raw in (text, text.encode()):
        with pytest.raises(InvalidInput) as info:
            parse_json(model, raw)
        assert [e.field for e in info.value.errors] == [field]
        assert any(w in info.value.errors[0].msg for w in ("NUL", "printable"))


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    # The JSON text \\u0000 is a backslash, then the letters u0000: no NUL in it.
    raw = b'{"session_id": "s", "events": [{"event_id": "e", "meta": {"path": "C:\\\\u0000"}}]}'
    push = parse_json(SessionAddEventsRequest, raw)
    assert push.events[0].meta == {"path": "C:\\u0000"}
    query = parse_json(SessionCreateRequest, b'{"search_query": "\\\\u0000 and more"}')
    assert query.search_query == "\\u0000 and more"
