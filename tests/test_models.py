"""Validation under the size limits: every limit at its edge, by default and configured."""

from __future__ import annotations

from typing import Any

import pytest

from searchtrail.errors import InvalidInput
from searchtrail.limits import Limits
from searchtrail.models import (
    NewSessionEvent,
    SessionAddEventsRequest,
    SessionCreateRequest,
    parse,
    parse_json,
)


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [e.field for e in exc.value.errors]


def refused(model: type[Any], data: Any, limits: Limits = Limits()) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse(model, data, limits)
    return fields_of(info)


def test_id_length_edges() -> None:
    parse(SessionCreateRequest, {"session_id": "x" * 128})
    assert refused(SessionCreateRequest, {"session_id": "x" * 129}) == ["session_id"]
    assert refused(SessionCreateRequest, {"session_id": ""}) == ["session_id"]
    assert refused(SessionCreateRequest, {"session_id": "a\nb"}) == ["session_id"]
    assert refused(SessionCreateRequest, {"user_id": "\x00"}) == ["user_id"]


def test_id_must_be_text() -> None:
    assert refused(SessionCreateRequest, {"session_id": 12}) == ["session_id"]


def test_result_limits() -> None:
    ok = {"search_results": [{"object_id": str(i)} for i in range(1000)]}
    parse(SessionCreateRequest, ok)
    too_many = {"search_results": [{"object_id": str(i)} for i in range(1001)]}
    assert refused(SessionCreateRequest, too_many) == ["search_results"]
    bad_item = {"search_results": [{"object_id": "a"}, {"rank": 1}]}
    assert refused(SessionCreateRequest, bad_item) == ["search_results[1].object_id"]


def test_query_limits() -> None:
    parse(SessionCreateRequest, {"search_query": "q" * 5000})
    assert refused(SessionCreateRequest, {"search_query": "q" * 5001}) == ["search_query"]
    big = {"search_query": {"text": "x" * 17_000}}
    assert refused(SessionCreateRequest, big) == ["search_query"]


def test_meta_limits() -> None:
    meta = {"k": "x" * (16_384 - 8)}  # {"k":"..."} is 8 bytes of JSON around the value
    parse(SessionCreateRequest, {"search_meta": meta})
    assert refused(SessionCreateRequest, {"search_meta": {"k": "x" * 16_384}}) == ["search_meta"]
    event = {"event_id": "e", "meta": {"k": "x" * 16_384}}
    assert refused(SessionAddEventsRequest, {"session_id": "s", "events": [event]}) == [
        "events[0].meta"
    ]


def test_event_limits() -> None:
    events = [{"event_id": str(i)} for i in range(1000)]
    parse(SessionAddEventsRequest, {"session_id": "s", "events": events})
    events.append({"event_id": "one more"})
    assert refused(SessionAddEventsRequest, {"session_id": "s", "events": events}) == ["events"]
    long_type = {"event_id": "e", "event_type": "t" * 65}
    assert refused(SessionAddEventsRequest, {"session_id": "s", "events": [long_type]}) == [
        "events[0].event_type"
    ]


def test_limits_are_configurable() -> None:
    small = Limits(max_events_per_push=2, max_id_chars=4, max_query_chars=3)
    two = {"session_id": "s", "events": [{"event_id": "a"}, {"event_id": "b"}]}
    parse(SessionAddEventsRequest, two, small)
    three = {"session_id": "s", "events": [{"event_id": c} for c in "abc"]}
    assert refused(SessionAddEventsRequest, three, small) == ["events"]
    assert refused(SessionCreateRequest, {"session_id": "abcde"}, small) == ["session_id"]
    assert refused(SessionCreateRequest, {"search_query": "four"}, small) == ["search_query"]
    roomy = Limits(max_id_chars=300)
    parse(SessionCreateRequest, {"session_id": "x" * 300}, roomy)


def test_unknown_fields_are_refused_in_strict_mode() -> None:
    strict = Limits(strict_fields=True)
    assert refused(SessionCreateRequest, {"sesion_id": "s"}, strict) == ["sesion_id"]
    event = {"event_id": "e", "evnt_type": "click"}
    assert refused(SessionAddEventsRequest, {"session_id": "s", "events": [event]}, strict) == [
        "events[0].evnt_type"
    ]


def test_unknown_fields_are_kept_and_named_by_default() -> None:
    req = parse(SessionCreateRequest, {"sesion_id": "s"})
    assert req.session_id is None
    assert req.extra == {"sesion_id": "s"}
    assert req.unknown_fields == ["sesion_id"]
    event = {"event_id": "e", "evnt_type": "click"}
    push = parse(SessionAddEventsRequest, {"session_id": "s", "events": [event]})
    assert push.unknown_fields == ["events[0].evnt_type"]
    assert push.events[0].event_type == "click"
    assert push.events[0].extra == {"evnt_type": "click"}


def test_name_is_event_type() -> None:
    ev = parse(NewSessionEvent, {"event_id": "e", "name": "purchase"})
    assert ev.event_type == "purchase"
    assert parse(NewSessionEvent, {"event_id": "e"}).event_type == "click"


def test_derived_event_id_is_stable_and_content_bound() -> None:
    a = parse(NewSessionEvent, {"object_id": "x", "created_at": 1_700_000_000})
    b = parse(NewSessionEvent, {"created_at": 1_700_000_000, "object_id": "x"})
    c = parse(NewSessionEvent, {"object_id": "y", "created_at": 1_700_000_000})
    assert a.event_id == b.event_id != c.event_id


def test_timestamps_in_models() -> None:
    ev = parse(NewSessionEvent, {"event_id": "e", "created_at": "2023-01-01T00:00:00Z"})
    assert ev.created_at == 1_672_531_200_000
    for bad in (True, -5, "soon", [1]):
        with pytest.raises(InvalidInput) as info:
            parse(NewSessionEvent, {"event_id": "e", "created_at": bad})
        assert fields_of(info) == ["created_at"]


def test_malformed_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(SessionCreateRequest, b'{"session_id": ')
    assert info.value.errors[0].type == "json_invalid"
    with pytest.raises(InvalidInput):
        parse_json(SessionCreateRequest, b"\xff\xfe")
    with pytest.raises(InvalidInput):
        parse_json(SessionCreateRequest, b"[1, 2]")
