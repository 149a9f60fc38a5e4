"""A small clickstream with known metrics, for the metrics' CLI and HTTP tests.

Two days (2026-01-05 and 2026-01-06, UTC), two rankers (``A`` and ``B``, 40 and 45
sessions: enough for the comparison's verdicts), a few named sessions for the query
lists, one interleaved session and one irrelevant session.

- ranker A, 2026-01-05: 40 "Red Shoes" sessions showing a, b, c; the first 10 have a
  click on ``a`` (position 1) 1.5 s after the session began, the 10th a purchase too.
- ranker B, 2026-01-06: 40 "blue hat" sessions showing x, y; 35 have a click on ``x``
  1 s after; 5 more with no result (B's zero-result rate is 5/45).
- "socks" (no ranker), 2026-01-06: results p (team A) and q (team B); a click on q, an
  event on ``zzz`` (never shown) and one with no object_id.
- "red  SHOES" (A), 2026-01-05, marked irrelevant: a click on c.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from searchtrail import Clickstream, Settings
from tests.support import clean_env

DAY1 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def settings(database_url: str, **more: Any) -> Settings:
    """Settings that accept the dataset's history (its times are outside the window)."""
    return Settings(database_url=database_url, time_max_delta_minus_sec=10**11, **more)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``searchtrail metrics ARGS``, run as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "metrics", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


def _at(t: datetime, seconds: float = 0) -> str:
    return (t + timedelta(seconds=seconds)).isoformat()


def _session(cs: Clickstream, sid: str, query: str, results: list[Any], meta: Any, at: datetime,
             events: list[dict[str, Any]]) -> None:  # fmt: skip
    cs.create_session(
        session_id=sid,
        search_query=query,
        search_results=[r if isinstance(r, dict) else {"object_id": r} for r in results],
        search_meta=meta,
        created_at=_at(at),
    )
    if events:
        cs.push_events(sid, events)


def load(cs: Clickstream) -> None:
    for i in range(40):
        at = DAY1 + timedelta(minutes=i)
        events = []
        if i < 10:
            events.append({"event_id": "c", "object_id": "a", "created_at": _at(at, 1.5)})
        if i == 9:
            events.append(
                {"event_id": "p", "object_id": "a", "event_type": "purchase",
                 "created_at": _at(at, 60)}
            )  # fmt: skip
        _session(cs, f"a{i}", "Red Shoes", ["a", "b", "c"], {"ranker": "A"}, at, events)
    for i in range(45):
        at = DAY2 + timedelta(minutes=i)
        results = ["x", "y"] if i < 40 else []
        events = []
        if i < 35:
            events.append({"event_id": "c", "object_id": "x", "created_at": _at(at, 1)})
        _session(cs, f"b{i}", "blue hat", results, {"ranker": "B"}, at, events)
    socks = DAY2 + timedelta(hours=2)
    _session(
        cs,
        "socks",
        "socks",
        [{"object_id": "p", "meta": {"team": "A"}}, {"object_id": "q", "meta": {"team": "B"}}],
        None,
        socks,
        [
            {"event_id": "1", "object_id": "q", "created_at": _at(socks, 3)},
            {"event_id": "2", "object_id": "zzz", "created_at": _at(socks, 4)},
            {"event_id": "3", "created_at": _at(socks, 5)},
        ],
    )
    _session(
        cs,
        "junk",
        "red  SHOES",
        ["a", "b", "c"],
        {"ranker": "A"},
        DAY1 + timedelta(hours=3),
        [{"event_id": "c", "object_id": "c", "created_at": _at(DAY1 + timedelta(hours=3), 2)}],
    )
    cs.mark_irrelevant("junk")


# What the dataset's metrics are, by hand (irrelevant sessions excluded).
SESSIONS = 40 + 45 + 1
WITH_RESULTS = 40 + 40 + 1
INTERACTED = 10 + 35 + 1
EXPECTED = {
    "sessions": SESSIONS,
    "sessions_with_results": WITH_RESULTS,
    "sessions_with_interaction": INTERACTED,
    "sessions_with_purchase": 1,
    "zero_result_rate": 1 - WITH_RESULTS / SESSIONS,
    "ctr": INTERACTED / WITH_RESULTS,
    "conversion_rate": 1 / WITH_RESULTS,
    # first positions: 45 sessions at 1, the socks session at 2
    "mrr": (45 + 0.5) / WITH_RESULTS,
    "clicks": 10 + 35 + 1,
    "interactions": 11 + 35 + 1,
    "unshown_events": 1,
}
