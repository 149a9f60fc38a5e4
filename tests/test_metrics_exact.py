"""The metrics equal a brute-force reference (tests/metrics_reference.py), on both dialects.

First on a fixed history that holds every case the definitions name, then on clickstreams
hypothesis generates: creates, pushes (late ones to sessions already counted, repeated
event ids), refreshes, releases and sessions marked irrelevant after the fact, checked
against the reference over random ranges after each step sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue
from sqlalchemy import Connection

from searchtrail import Clickstream, Settings
from searchtrail.storage.sql import SqlStorage
from searchtrail.storage.sql.schema import metadata
from searchtrail.timestamps import now_ms
from tests.metrics_reference import (
    BY,
    DAY_MS,
    HOUR_MS,
    Seen,
    check,
    check_query_lists,
    day_start,
    in_scope,
    metrics_over,
    ranker_of,
    read_all,
    record_history,
)

WINDOW_S = 8 * 86_400  # sessions over a few past days: a wider window than the default


@pytest.fixture
def cs(database_url: str) -> Iterator[Clickstream]:
    wide = Settings(
        database_url=database_url, time_max_delta_minus_sec=WINDOW_S, sqlite_synchronous="NORMAL"
    )
    with Clickstream(settings=wide) as clickstream:
        yield clickstream


# -- a fixed history ------------------------------------------------------------------------


def test_every_metric_and_grouping_equals_the_reference(cs: Clickstream) -> None:
    base = day_start(now_ms()) - 3 * DAY_MS
    record_history(cs, base)
    seen = read_all(cs)
    assert len(seen) == 10 and {s.batch_id for s in seen} == {1, 2}
    assert read_all(cs, events_per_page=2) == seen  # the reference reads on, page by page
    whole = check(cs, seen)
    check_query_lists(cs, seen)
    assert whole.summaries[0].sessions == 9
    everything = check(cs, seen, include_irrelevant=True, by=["query", "ranker"])
    check_query_lists(cs, seen, include_irrelevant=True, limit=1)
    assert everything.summaries[0].sessions == 10
    # The range is [since, until): a session created at since is in, one at until is out.
    midnight = base + 2 * DAY_MS
    for since, until in [
        (base + HOUR_MS, midnight),
        (midnight - 1, midnight + 1),
        (midnight, None),
        (None, base + HOUR_MS + 20),
        (base + 10 * DAY_MS, None),  # no session at all
    ]:
        check(cs, seen, since=since, until=until, by=["day", "hour"])
    check_query_lists(cs, seen, since=base + HOUR_MS + 10, until=midnight, limit=2)
    # The cases the history was built for, spelled out once.
    summary = whole.summaries[0]
    assert summary.unshown_events == 2  # z on "plain", a on "nothing" (that shows nothing)
    # Showing 3 results or more: plain, twice, long, edge; "twice"'s x, shown at 1 and 3,
    # counts at 1, "edge"'s c at 3.
    assert summary.ctr_at_position[2] == pytest.approx(1 / 4)
    assert summary.ctr_at_position[3] == pytest.approx(1 / 2)  # "long"'s o3 (o22 is at 23)
    assert {g.key: g.sessions for g in whole.groups["query"].groups} == {
        "red shoes": 4, '{"size":42,"text":"boots"}': 2, "boots": 1, "null": 1, "socks": 1,
    }  # fmt: skip


def test_the_ranker_comparison_reads_the_same_sessions(cs: Clickstream) -> None:
    base = day_start(now_ms()) - 3 * DAY_MS
    record_history(cs, base)
    seen = in_scope(read_all(cs), None, None, False)
    compared = cs.compare_rankers("A", "B", resamples=200)
    for side, ranker in (("a", "A"), ("b", "B")):
        members = [s for s in seen if ranker_of(s.meta, "ranker") == ranker]
        want = metrics_over(members)
        assert getattr(compared, f"sessions_{side}") == len(members)
        for row in compared.metrics:
            value = getattr(row, side)
            assert value == pytest.approx(want[row.metric], rel=1e-9), (ranker, row.metric)
    assert compared.interleaving is None  # no result carries a team


# -- generated clickstreams -----------------------------------------------------------------

OBJECTS = st.sampled_from([f"o{i}" for i in range(8)])  # shown ones, others and repeats
QUERIES: st.SearchStrategy[JsonValue] = st.one_of(
    st.sampled_from(["red shoes", "Red  Shoes", " red\tshoes\n", "RED SHOES", "boots", "", "  "]),
    st.sampled_from(
        [{"text": "boots", "size": 42}, {"size": 42, "text": "boots"}, ["a", 1], None, 1.5]
    ),
)
METAS: st.SearchStrategy[dict[str, JsonValue] | None] = st.sampled_from(
    [None, {}, {"ranker": "A"}, {"ranker": "B"}, {"ranker": "a"}, {"ranker": None},
     {"ranker": 2}, {"ranker": {"v": [1, "x"]}}, {"model": "m1"}]
)  # fmt: skip
EVENT_TYPES = st.sampled_from(["click", "add_to_cart", "purchase", "view"])
# Session times within four days, some on an hour's edge; event times near their session.
SESSION_AT = st.one_of(
    st.integers(0, 4 * DAY_MS - 1), st.integers(0, 4 * 24 - 1).map(lambda h: h * HOUR_MS)
)
EVENT_AFTER = st.one_of(st.none(), st.integers(-60_000, 3 * HOUR_MS))


@dataclass(frozen=True)
class Create:
    at: int
    query: JsonValue
    shown: list[str]
    meta: dict[str, JsonValue] | None


@dataclass(frozen=True)
class Event:
    event_id: int
    target: int | str | None  # an index into what its session shows, another object, none
    event_type: str
    after: int | None  # ms after the session's time; None: the time of receipt


@dataclass(frozen=True)
class Push:
    session: int  # which of the sessions created so far (modulo their count)
    events: list[Event]


@dataclass(frozen=True)
class Repeat:
    push: int  # an earlier push again: every event a duplicate


@dataclass(frozen=True)
class Irrelevant:
    session: int


@dataclass(frozen=True)
class Step:
    name: str  # "refresh" or "release"


@dataclass(frozen=True)
class Check:
    since: int | None  # a cut point: an index into the sessions' times, or an hour
    until: int | None
    include_irrelevant: bool
    by: str | None  # the summary, and this grouping


CUT = st.one_of(st.none(), st.integers(0, 200))
CREATE = st.builds(Create, SESSION_AT, QUERIES, st.lists(OBJECTS, max_size=25), METAS)
TARGETS = st.one_of(st.integers(0, 24), st.integers(0, 24), OBJECTS, st.none())
EVENTS = st.builds(Event, st.integers(0, 9), TARGETS, EVENT_TYPES, EVENT_AFTER)
PUSH = st.builds(Push, st.integers(0, 99), st.lists(EVENTS, min_size=1, max_size=6))
# one_of draws each branch alike: creates and pushes twice as often as the rest.
OPERATIONS = st.one_of(
    CREATE,
    CREATE,
    PUSH,
    PUSH,
    st.builds(Repeat, st.integers(0, 99)),
    st.builds(Irrelevant, st.integers(0, 99)),
    st.builds(Step, st.sampled_from(["refresh", "release"])),
    st.builds(Check, CUT, CUT, st.booleans(), st.one_of(st.none(), st.sampled_from(BY))),
)
Operation = Create | Push | Repeat | Irrelevant | Step | Check


def _empty(cs: Clickstream) -> None:
    """Every row gone, through the store's own write path: each example starts from an
    empty database while the Clickstream (and its compiled statements) stays."""
    storage = cs.storage
    assert isinstance(storage, SqlStorage)

    def work(conn: Connection) -> None:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())

    storage.db.write(work)


def _cut(point: int | None, base: int, times: list[int]) -> int | None:
    """A cut at a session's own time (so the edges are tried), or on an hour."""
    if point is None:
        return None
    if times and point < 100:
        return times[point % len(times)]
    return base + (point - 100) * HOUR_MS


def _object(target: int | str | None, shown: list[str]) -> str | None:
    if isinstance(target, int):
        return shown[target % len(shown)] if shown else f"o{target % 8}"
    return target


def _run(cs: Clickstream, operations: list[Operation]) -> None:
    base = day_start(now_ms()) - 5 * DAY_MS
    created: list[tuple[str, int, list[str]]] = []
    pushes: list[tuple[str, list[dict[str, Any]]]] = []
    collecting = False  # a batch collects from the first session after a release on
    for op in operations:
        if isinstance(op, Create):
            sid = f"s{len(created)}"
            cs.create_session(
                session_id=sid,
                search_query=op.query,
                search_results=[{"object_id": o} for o in op.shown],
                search_meta=op.meta,
                created_at=base + op.at,
            )
            created.append((sid, base + op.at, op.shown))
            collecting = True
        elif isinstance(op, Push) and created:
            sid, at, shown = created[op.session % len(created)]
            events = [
                {
                    "event_id": f"e{e.event_id}",
                    "object_id": _object(e.target, shown),
                    "event_type": e.event_type,
                    "created_at": None if e.after is None else at + e.after,
                }
                for e in op.events
            ]
            cs.push_events(sid, events)
            pushes.append((sid, events))
        elif isinstance(op, Repeat) and pushes:
            sid, events = pushes[op.push % len(pushes)]
            assert cs.push_events(sid, events).stored == 0
        elif isinstance(op, Irrelevant) and created:
            cs.mark_irrelevant(created[op.session % len(created)][0])
        elif isinstance(op, Step):
            if op.name == "refresh":
                cs.refresh_metrics()
            elif collecting:
                cs.release_batch(f"release-{len(created)}")
                collecting = False
        elif isinstance(op, Check):
            times = [at for _, at, _ in created]
            check(
                cs,
                since=_cut(op.since, base, times),
                until=_cut(op.until, base, times),
                include_irrelevant=op.include_irrelevant,
                by=() if op.by is None else (op.by,),
            )
    seen: list[Seen] = read_all(cs)
    assert len(seen) == len(created)
    check(cs, seen)
    check(cs, seen, include_irrelevant=True, by=["ranker"])
    check_query_lists(cs, seen, limit=2)


GENERATED = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(GENERATED, max_examples=15)
@given(
    sessions=st.lists(CREATE, min_size=1, max_size=8),
    pushes=st.lists(PUSH, min_size=1, max_size=10),
    operations=st.lists(OPERATIONS, min_size=1, max_size=16),
)
def test_generated_clickstreams_equal_the_reference(
    cs: Clickstream, sessions: list[Create], pushes: list[Push], operations: list[Operation]
) -> None:
    """Sessions, pushes to them, then any operation in any order (more of both too)."""
    _empty(cs)
    _run(cs, [*sessions, *pushes, *operations])


@pytest.mark.slow
@settings(GENERATED, max_examples=300)
@given(
    sessions=st.lists(CREATE, min_size=1, max_size=20),
    pushes=st.lists(PUSH, min_size=1, max_size=40),
    operations=st.lists(OPERATIONS, min_size=1, max_size=80),
)
def test_longer_generated_clickstreams_equal_the_reference(
    cs: Clickstream, sessions: list[Create], pushes: list[Push], operations: list[Operation]
) -> None:
    _empty(cs)
    _run(cs, [*sessions, *pushes, *operations])
