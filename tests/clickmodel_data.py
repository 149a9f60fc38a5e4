"""A small clickstream with a strong position bias, for the click models' CLI, HTTP and
export tests. Released as one batch (``load`` returns its id).

- "Red Shoes", 50 sessions a minute apart from 2026-02-02 09:00 UTC, showing a, b, c, d
  (every other session b, a, c, d): the result at position 1 is clicked in sessions
  0, 3, 6, ... (17 sessions); d, at position 4, in 7 others (i % 5 == 1 and not a
  multiple of 3), one of them with a purchase. Positions 2 and 3 are never clicked, so
  a model that estimates examination from clicks says they were seldom examined.
- "hats", 10 sessions after those, showing h1, h2; h1 clicked in 6 of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from searchtrail import Clickstream, Settings

DAY = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
SESSIONS = 60


def settings(database_url: str, **more: Any) -> Settings:
    """Settings that accept the dataset's history."""
    return Settings(database_url=database_url, time_max_delta_minus_sec=10**11, **more)


def _session(cs: Clickstream, sid: str, query: str, shown: list[str], at: datetime,
             clicks: list[tuple[str, str]]) -> None:  # fmt: skip
    cs.create_session(
        session_id=sid,
        search_query=query,
        search_results=[{"object_id": o} for o in shown],
        created_at=at.isoformat(),
    )
    if clicks:
        events = [
            {"event_id": f"{sid}-{n}", "object_id": o, "event_type": t,
             "created_at": (at + timedelta(seconds=n + 1)).isoformat()}
            for n, (o, t) in enumerate(clicks)
        ]  # fmt: skip
        cs.push_events(sid, events)


def load(cs: Clickstream) -> int:
    for i in range(50):
        shown = ["a", "b", "c", "d"] if i % 2 == 0 else ["b", "a", "c", "d"]
        clicks: list[tuple[str, str]] = []
        if i % 3 == 0:
            clicks.append((shown[0], "click"))
        elif i % 5 == 1:
            clicks.append(("d", "click"))
            if i == 1:
                clicks.append(("d", "purchase"))
        _session(cs, f"s{i}", "Red Shoes", shown, DAY + timedelta(minutes=i), clicks)
    for i in range(10):
        clicks = [("h1", "click")] if i < 6 else []
        _session(cs, f"h{i}", "hats", ["h1", "h2"], DAY + timedelta(hours=1, minutes=i), clicks)
    return cs.release_batch("clickmodels").batch_id
