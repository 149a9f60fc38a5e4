"""What each metric means, in code: per session, then over many sessions.

A *position* is the 1-based index of a result in the shown order (an object shown
twice counts at its first position). An *interaction* is an event whose ``object_id``
is one of the session's shown results; an event on an object never shown is an
*unshown event*; an event with no ``object_id`` is neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_POSITION",
    "Counts",
    "SessionStats",
    "canonical",
    "metrics_of",
    "percentile",
    "query_key",
    "ranker_value",
    "session_stats",
]

# ctr_at_position is reported for positions 1..MAX_POSITION.
MAX_POSITION = 20


def canonical(value: Any) -> str:
    """A JSON value as one string: keys sorted, no spaces, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def query_key(query: Any) -> str:
    """How queries are grouped: a string lower-cased with its whitespace collapsed (runs
    of whitespace become one space, none at either end); any other value as canonical
    JSON."""
    if isinstance(query, str):
        return " ".join(query.lower().split())
    return canonical(query)


def ranker_value(search_meta: Any, key: str) -> str | None:
    """The ranker of a session: ``search_meta[key]``, a string as it is, any other JSON
    value as canonical JSON; ``None`` where there is none."""
    if not isinstance(search_meta, Mapping) or search_meta.get(key) is None:
        return None
    value = search_meta[key]
    return value if isinstance(value, str) else canonical(value)


@dataclass(frozen=True, slots=True)
class SessionStats:
    """One session's part in every metric (storage keeps it, one row per session)."""

    results: int
    interactions: int
    first_position: int | None
    purchased: bool
    clicks: int
    click_positions: int
    positions_mask: int  # bit k-1 set: an interaction at position k (k <= MAX_POSITION)
    first_interaction_ms: int | None  # the first interaction's time minus created_at
    unshown_events: int
    query_key: str
    ranker: str | None
    teams: dict[str, int] | None  # interleaving: interactions by the result's team


def session_stats(
    created_at_ms: int,
    search_query: Any,
    search_results: Sequence[Mapping[str, Any]],
    search_meta: Any,
    events: Iterable[tuple[str | None, str, int]],
    *,
    ranker_key: str = "ranker",
    team_key: str = "team",
) -> SessionStats:
    """A session's stats from what it showed and its events ``(object_id, type, ms)``."""
    positions: dict[str, int] = {}
    teams_of: dict[str, str] = {}
    for i, result in enumerate(search_results, 1):
        object_id = result["object_id"]
        if object_id in positions:
            continue
        positions[object_id] = i
        meta = result.get("meta")
        if isinstance(meta, Mapping) and meta.get(team_key) is not None:
            team = meta[team_key]
            teams_of[object_id] = team if isinstance(team, str) else canonical(team)
    interactions = clicks = click_positions = mask = unshown = 0
    first: int | None = None
    first_ms: int | None = None
    purchased = False
    teams: dict[str, int] | None = {} if teams_of else None
    for object_id, event_type, at_ms in events:
        if object_id is None:
            continue
        position = positions.get(object_id)
        if position is None:
            unshown += 1
            continue
        interactions += 1
        first = position if first is None else min(first, position)
        first_ms = at_ms if first_ms is None else min(first_ms, at_ms)
        if event_type == "purchase":
            purchased = True
        elif event_type == "click":
            clicks += 1
            click_positions += position
        if position <= MAX_POSITION:
            mask |= 1 << (position - 1)
        if teams is not None and object_id in teams_of:
            team = teams_of[object_id]
            teams[team] = teams.get(team, 0) + 1
    return SessionStats(
        results=len(search_results),
        interactions=interactions,
        first_position=first,
        purchased=purchased,
        clicks=clicks,
        click_positions=click_positions,
        positions_mask=mask,
        first_interaction_ms=None if first_ms is None else first_ms - created_at_ms,
        unshown_events=unshown,
        query_key=query_key(search_query),
        ranker=ranker_value(search_meta, ranker_key),
        teams=teams,
    )


@dataclass(slots=True)
class Counts:
    """Sums over a set of sessions, from which every metric follows (``metrics_of``)."""

    sessions: int = 0
    with_results: int = 0
    interacted: int = 0
    purchased: int = 0
    reciprocal_ranks: float = 0.0
    clicks: int = 0
    click_positions: int = 0
    interactions: int = 0
    unshown_events: int = 0
    shown_at: list[int] = field(default_factory=lambda: [0] * MAX_POSITION)
    interacted_at: list[int] = field(default_factory=lambda: [0] * MAX_POSITION)
    first_interaction_ms: list[int] = field(default_factory=list)


def percentile(values: Sequence[int], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between the two nearest
    ranks (numpy's default): the median of an even count is the mean of the middle two."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _ratio(num: float, den: int) -> float | None:
    return num / den if den else None


def metrics_of(c: Counts) -> dict[str, Any]:
    """The metrics (docs/metrics.md) of one set of sessions; ``None`` where a metric's
    denominator is zero."""
    return {
        "sessions": c.sessions,
        "sessions_with_results": c.with_results,
        "sessions_with_interaction": c.interacted,
        "sessions_with_purchase": c.purchased,
        "zero_result_rate": None if not c.sessions else 1 - c.with_results / c.sessions,
        "ctr": _ratio(c.interacted, c.with_results),
        "conversion_rate": _ratio(c.purchased, c.with_results),
        "mrr": _ratio(c.reciprocal_ranks, c.with_results),
        "mean_click_position": _ratio(c.click_positions, c.clicks),
        "clicks": c.clicks,
        "interactions": c.interactions,
        "unshown_events": c.unshown_events,
        "ctr_at_position": [_ratio(n, d) for n, d in zip(c.interacted_at, c.shown_at, strict=True)],
        "time_to_first_interaction_ms": {
            "median": percentile(c.first_interaction_ms, 50),
            "p90": percentile(c.first_interaction_ms, 90),
        },
    }
