"""A brute-force reference for the search-quality metrics, and the checks that use it.

Every session and every event is read back through the public library (the batches'
pages, then each session's events page by page) and each metric is computed in plain
Python from the issue's definitions. Nothing here imports ``searchtrail.metrics``: the
reference is written apart from ``metrics/definitions.py`` so the two can disagree.

The definitions, over the sessions created in [since, until), irrelevant ones left out
unless asked: a position is the 1-based index of a result in the shown order (an object
shown twice counts at its first position); an interaction is an event on a shown object;
an event on another object is an unshown event; an event without an object is neither;
a ratio whose denominator is zero is None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pydantic import JsonValue

from searchtrail import Clickstream
from searchtrail.models import MetricsGroups, MetricsSummary, MetricValues

BY = ("day", "hour", "query", "ranker", "batch")
POSITIONS = 20
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Seen:
    """One session as the library answers it, with all its events."""

    session_id: str
    created_at_ms: int
    query: JsonValue
    shown: tuple[str, ...]
    meta: dict[str, JsonValue] | None
    batch_id: int
    irrelevant: bool
    events: tuple[tuple[str | None, str, int], ...]  # (object_id, event_type, created_at_ms)

    def positions(self) -> dict[str, int]:
        first: dict[str, int] = {}
        for i, object_id in enumerate(self.shown, 1):
            first.setdefault(object_id, i)
        return first

    def interactions(self) -> list[tuple[int, str, int]]:
        """(position, event_type, created_at_ms) of each event on a shown object."""
        at = self.positions()
        return [(at[o], t, ms) for o, t, ms in self.events if o is not None and o in at]

    def unshown(self) -> int:
        at = self.positions()
        return sum(1 for o, _, _ in self.events if o is not None and o not in at)


def read_all(cs: Clickstream, events_per_page: int = 1000) -> list[Seen]:
    """Every stored session, through the batches' pages; a session with more events than
    a page holds is read on through its own event pages."""
    out = []
    for batch in cs.list_batches():
        pages = cs.iter_batch_sessions(batch.batch_id, page_size=200, events_limit=events_per_page)
        for s in pages:
            assert s.batch_id == batch.batch_id
            page = s
            found = list(page.events)
            while page.events_cursor is not None:
                page = cs.get_session(
                    s.session_id, events_limit=events_per_page, events_after=page.events_cursor
                )
                found += page.events
            out.append(
                Seen(
                    session_id=s.session_id,
                    created_at_ms=s.created_at_ms,
                    query=s.search_query,
                    shown=tuple(r.object_id for r in s.search_results),
                    meta=s.search_meta,
                    batch_id=batch.batch_id,
                    irrelevant=s.is_irrelevant,
                    events=tuple((e.object_id, e.event_type, e.created_at_ms) for e in found),
                )
            )
    return out


# -- what each metric is -------------------------------------------------------------------


def _canonical(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def query_key(query: JsonValue) -> str:
    if isinstance(query, str):
        return re.sub(r"\s+", " ", query.lower()).strip()
    return _canonical(query)


def ranker_of(meta: dict[str, JsonValue] | None, key: str) -> str | None:
    if meta is None or meta.get(key) is None:
        return None
    value = meta[key]
    return value if isinstance(value, str) else _canonical(value)


def _utc(ms: int, fmt: str) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime(fmt)


def group_of(s: Seen, by: str, ranker_key: str) -> str | int | None:
    if by == "day":
        return _utc(s.created_at_ms, "%Y-%m-%d")
    if by == "hour":
        return _utc(s.created_at_ms, "%Y-%m-%dT%H:00Z")
    if by == "query":
        return query_key(s.query)
    if by == "ranker":
        return ranker_of(s.meta, ranker_key)
    assert by == "batch"
    return s.batch_id


def _ratio(num: float, den: int) -> float | None:
    return None if den == 0 else num / den


def metrics_over(sessions: Sequence[Seen]) -> dict[str, Any]:
    """Every metric of a set of sessions, as the library names them."""
    with_results = [s for s in sessions if s.shown]
    interacted = [s for s in sessions if s.interactions()]
    purchased = [s for s in sessions if any(t == "purchase" for _, t, _ in s.interactions())]
    reciprocal = sum(1 / min(p for p, _, _ in s.interactions()) for s in interacted)
    clicks = [p for s in sessions for p, t, _ in s.interactions() if t == "click"]
    firsts = [min(ms for _, _, ms in s.interactions()) - s.created_at_ms for s in interacted]
    at_position = []
    for k in range(1, POSITIONS + 1):
        showing = sum(1 for s in sessions if len(s.shown) >= k)
        hit = sum(1 for s in sessions if any(p == k for p, _, _ in s.interactions()))
        at_position.append(_ratio(hit, showing))
    return {
        "sessions": len(sessions),
        "sessions_with_results": len(with_results),
        "sessions_with_interaction": len(interacted),
        "sessions_with_purchase": len(purchased),
        "zero_result_rate": _ratio(len(sessions) - len(with_results), len(sessions)),
        "ctr": _ratio(len(interacted), len(with_results)),
        "conversion_rate": _ratio(len(purchased), len(with_results)),
        "mrr": _ratio(reciprocal, len(with_results)),
        "mean_click_position": _ratio(sum(clicks), len(clicks)),
        "clicks": len(clicks),
        "interactions": sum(len(s.interactions()) for s in sessions),
        "unshown_events": sum(s.unshown() for s in sessions),
        "ctr_at_position": at_position,
        "time_to_first_interaction_ms": {
            "median": float(np.percentile(firsts, 50)) if firsts else None,
            "p90": float(np.percentile(firsts, 90)) if firsts else None,
        },
    }


def in_scope(
    seen: Iterable[Seen], since: int | None, until: int | None, include_irrelevant: bool
) -> list[Seen]:
    return [
        s
        for s in seen
        if (since is None or s.created_at_ms >= since)
        and (until is None or s.created_at_ms < until)
        and (include_irrelevant or not s.irrelevant)
    ]


def grouped(
    sessions: Sequence[Seen], by: str, ranker_key: str = "ranker"
) -> dict[str | int | None, dict[str, Any]]:
    groups: dict[str | int | None, list[Seen]] = {}
    for s in sessions:
        groups.setdefault(group_of(s, by, ranker_key), []).append(s)
    return {key: metrics_over(members) for key, members in groups.items()}


# -- comparing the library with the reference ----------------------------------------------


def _same(got: Any, want: Any, where: str) -> None:
    if want is None:
        assert got is None, where
    elif isinstance(want, float):
        assert isinstance(got, float), where
        assert got == pytest.approx(want, rel=1e-9), where
    else:
        assert type(got) is type(want), where
        assert got == want, where


def assert_same_metrics(got: MetricValues, want: dict[str, Any], where: str = "") -> None:
    answered = got.model_dump()
    assert set(MetricValues.model_fields) == set(want), "the reference names every metric"
    for name, value in want.items():
        if name == "ctr_at_position":
            assert len(answered[name]) == POSITIONS, where
            for k, (g, w) in enumerate(zip(answered[name], value, strict=True), 1):
                _same(g, w, f"{where} {name}[{k}]")
        elif name == "time_to_first_interaction_ms":
            for q in ("median", "p90"):
                _same(answered[name][q], value[q], f"{where} {name}.{q}")
        else:
            _same(answered[name], value, f"{where} {name}")


@dataclass
class Check:
    """What one call of ``check`` compared (for tests that want to look closer)."""

    summaries: list[MetricsSummary] = field(default_factory=list)
    groups: dict[str, MetricsGroups] = field(default_factory=dict)


def check(
    cs: Clickstream,
    seen: Sequence[Seen] | None = None,
    *,
    since: int | None = None,
    until: int | None = None,
    include_irrelevant: bool = False,
    ranker_key: str = "ranker",
    by: Sequence[str] = BY,
) -> Check:
    """``cs.metrics`` over the range, whole and by every grouping, equals the reference."""
    seen = read_all(cs) if seen is None else seen
    scoped = in_scope(seen, since, until, include_irrelevant)
    where = f"[{since}, {until}) include_irrelevant={include_irrelevant}"
    done = Check()
    summary = cs.metrics(since, until, include_irrelevant=include_irrelevant)
    assert isinstance(summary, MetricsSummary)
    assert summary.include_irrelevant is include_irrelevant
    assert_same_metrics(summary, metrics_over(scoped), where)
    done.summaries.append(summary)
    for name in by:
        answer = cs.metrics(since, until, by=name, include_irrelevant=include_irrelevant)  # type: ignore[arg-type]
        assert isinstance(answer, MetricsGroups)
        assert answer.by == name
        want = grouped(scoped, name, ranker_key)
        keys = [g.key for g in answer.groups]
        assert len(keys) == len(set(keys)), f"{where} by {name}: a key twice: {keys}"
        assert set(keys) == set(want), f"{where} by {name}"
        if name in ("day", "hour", "batch"):
            assert keys == sorted(want), f"{where} by {name}: in order"  # type: ignore[type-var]
        for g in answer.groups:
            assert_same_metrics(g, want[g.key], f"{where} by {name} {g.key!r}")
        done.groups[name] = answer
    return done


_ORDERS: dict[str, Callable[[Seen], bool]] = {
    "top": lambda s: True,
    "zero_results": lambda s: not s.shown,
    "no_interaction": lambda s: bool(s.shown) and not s.interactions(),
}


def check_query_lists(
    cs: Clickstream,
    seen: Sequence[Seen] | None = None,
    *,
    since: int | None = None,
    until: int | None = None,
    include_irrelevant: bool = False,
    limit: int = 10,
) -> None:
    """``metrics_queries``: each list holds the queries with the most sessions of its kind.

    Queries with as many such sessions as the last one listed may be left out for each
    other (their order is not part of the definition); every query with more must be
    there, in order of the count, each with its metrics equal to the reference.
    """
    seen = read_all(cs) if seen is None else seen
    scoped = in_scope(seen, since, until, include_irrelevant)
    by_query: dict[str, list[Seen]] = {}
    for s in scoped:
        by_query.setdefault(query_key(s.query), []).append(s)
    lists = cs.metrics_queries(since, until, include_irrelevant=include_irrelevant, limit=limit)
    for name, counts in _ORDERS.items():
        measure = {q: sum(map(counts, ss)) for q, ss in by_query.items()}
        measure = {q: m for q, m in measure.items() if m > 0}
        listed = getattr(lists, name)
        names = [m.query for m in listed]
        assert len(names) == len(set(names)) == min(limit, len(measure)), name
        assert all(q in measure for q in names), (name, names, measure)
        got = [measure[q] for q in names]
        assert got == sorted(got, reverse=True), (name, names, measure)
        if names:
            assert {q for q, m in measure.items() if m > got[-1]} <= set(names), name
        for m in listed:
            assert_same_metrics(m, metrics_over(by_query[m.query]), f"{name} {m.query!r}")


# -- a history with every case the definitions name ----------------------------------------


def day_start(ms: int) -> int:
    return ms - ms % DAY_MS


def record_history(cs: Clickstream, base: int) -> None:
    """Sessions over three days from ``base`` (a UTC midnight) in two batches: shown twice,
    events on unshown objects and on none, more than 20 results, no results, structured
    queries and rankers, an irrelevant session, events before their session's time, and
    sessions on a day's and an hour's edges."""

    def session(sid: str, at: int, query: JsonValue, shown: Sequence[str], ranker: Any) -> None:
        cs.create_session(
            session_id=sid,
            search_query=query,
            search_results=[{"object_id": o, "rank": -i} for i, o in enumerate(shown)],
            search_meta=None if ranker is ... else {"ranker": ranker, "page": 1},
            created_at=at,
        )

    def push(sid: str, *events: tuple[str | None, str, int]) -> None:
        cs.push_events(
            sid,
            [
                {"event_id": f"{sid}-{i}", "object_id": o, "event_type": t, "created_at": ms}
                for i, (o, t, ms) in enumerate(events)
            ],
        )

    t = base + HOUR_MS
    session("plain", t, "Red Shoes", "abcde", "A")
    push(
        "plain",
        ("b", "click", t + 5_000),
        ("b", "click", t + 9_000),
        ("b", "purchase", t + 60_000),
        ("z", "view", t + 1_000),
        (None, "view", t + 2_000),
    )
    session("twice", t + 10, " red \t shoes ", ["x", "y", "x"], "B")
    push("twice", ("x", "click", t + 3_000), ("y", "add_to_cart", t + 4_000))
    session("long", t + 20, "RED SHOES", [f"o{i}" for i in range(25)], "A")
    push(
        "long",
        ("o22", "click", t + 7_000),
        ("o3", "add_to_cart", t + 25_000),
        ("o3", "click", t - 5_000),
    )
    session("nothing", t + 30, "red shoes", [], ...)
    push("nothing", ("a", "click", t + 31), (None, "purchase", t + 32))
    session("struct", base + DAY_MS, {"text": "boots", "size": 42}, ["a"], 2)
    session("struct2", base + DAY_MS + 1, {"size": 42, "text": "boots"}, ["a", "b"], {"v": 1})
    push("struct2", ("b", "click", base + DAY_MS + 400))
    session("junk", base + DAY_MS + 2, "boots", ["a"], "A")
    push("junk", ("a", "click", base + DAY_MS + 50), ("a", "purchase", base + DAY_MS + 90))
    cs.mark_irrelevant("junk")
    cs.release_batch("history-1")
    edge = base + 2 * DAY_MS - 1
    session("edge", edge, "BOOTS", ["a", "b", "c"], "A")
    push("edge", ("c", "add_to_cart", edge + 10_000), ("a", "view", edge + 20_000))
    midnight = base + 2 * DAY_MS
    session("midnight", midnight, None, ["a"], "B")
    push(
        "midnight",
        ("a", "click", midnight + 100),
        ("a", "click", midnight + 200),
        ("a", "purchase", midnight + 300),
    )
    session("hour", midnight + 5 * HOUR_MS, "socks", ["s1", "s2"], None)
    push("hour", ("s2", "click", midnight + 5 * HOUR_MS + 1_500))
