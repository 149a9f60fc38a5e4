"""The send plan on any mix of items: registrations first, every event once, in order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from searchtrail.client._calls import Endpoints
from searchtrail.client._tracking import EVENT, SESSION, Item, TrackerCore
from searchtrail.errors import BadRequest
from searchtrail.models import PushResult

items_strategy = st.lists(
    st.tuples(st.sampled_from([SESSION, EVENT, EVENT, EVENT]), st.sampled_from("abcde")),
    max_size=60,
)


def core(max_events_per_push: int) -> TrackerCore:
    return TrackerCore(
        Endpoints("", None),
        max_queue=1000,
        flush_at=1,
        max_events_per_push=max_events_per_push,
        max_batch=1000,
        backoff_base=0.1,
        backoff_max=1.0,
        max_retries=1,
    )


@settings(max_examples=200, deadline=None)
@given(
    raw=items_strategy,
    per_push=st.integers(1, 5),
    refused=st.sets(st.sampled_from("abcde")),
)
def test_lanes(raw: list[tuple[int, str]], per_push: int, refused: set[str]) -> None:
    c = core(per_push)
    items: list[Item] = []
    for n, (kind, sid) in enumerate(raw):
        body: dict[str, Any] = (
            {"session_id": sid} if kind == SESSION else {"event_id": f"e{n}", "created_at": None}
        )
        items.append((kind, sid, body))
        c.queue.append(items[-1])
    lanes = c.lanes(c.take())
    pushed: dict[str, list[str]] = {}
    for lane in lanes:
        lane_sid: str | None = None
        pushing = False
        outcome: object = None
        first = True
        while True:
            try:
                call = next(lane) if first else lane.send(outcome)
            except StopIteration:
                break
            first = False
            sid = call.json["session_id"]
            lane_sid = lane_sid or sid
            assert sid == lane_sid  # a lane is one session
            if call.path == "/session":
                assert not pushing  # registrations come before the session's pushes
                outcome = BadRequest("no") if sid in refused else object()
            else:
                pushing = True
                events = call.json["events"]
                assert 1 <= len(events) <= per_push
                pushed.setdefault(sid, []).extend(e["event_id"] for e in events)
                outcome = PushResult(session_id=sid, stored=len(events), duplicates=0)
    registered = {sid for kind, sid, _ in items if kind == SESSION}
    expected: dict[str, list[str]] = {}
    for kind, sid, body in items:
        if kind == EVENT and not (sid in registered and sid in refused):
            expected.setdefault(sid, []).append(body["event_id"])
    assert pushed == expected  # every event once, in the order tracked
    stats = c.stats()
    events_refused = sum(
        1 for kind, sid, _ in items if kind == EVENT and sid in registered and sid in refused
    )
    sessions_refused = sum(1 for kind, sid, _ in items if kind == SESSION and sid in refused)
    assert stats.rejected == events_refused + sessions_refused
    assert stats.events_sent == sum(len(v) for v in expected.values())
    assert stats.pending == 0
