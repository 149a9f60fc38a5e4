"""Fast fixtures: many sessions and events through ``Sessions.bulk_register``, not the HTTP path.

The pattern is deterministic so tests can predict what an export makes of it:
session ``i`` shows ten results; every 17th has no events; every 13th is irrelevant;
the others click result ``i % 10`` and every third also buys result ``(i * 7) % 10``.
"""

from __future__ import annotations

from typing import Any

from searchtrail import Clickstream
from searchtrail.timestamps import now_ms

RESULTS = 10


def session_rows(i: int, prefix: str, at: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sid = f"{prefix}{i}"
    shown = [f"o{(i + j) % 1000}" for j in range(RESULTS)]
    row = {
        "session_id": sid,
        "search_query": f"query {i % 500}",
        "search_results": [{"object_id": o, "rank": None, "meta": None} for o in shown],
        "search_meta": None,
        "payload_filter": None,
        "sort_by": None,
        "user_id": f"u{i % 97}",
        "created_at_ms": at + i,
        "created_at_given": True,
        "is_irrelevant": i % 13 == 0,
    }
    evs: list[dict[str, Any]] = []
    if i % 17:
        evs.append(_event(sid, "e1", shown[i % RESULTS], "click", at + i))
        if i % 3 == 0:
            evs.append(_event(sid, "e2", shown[(i * 7) % RESULTS], "purchase", at + i + 1))
    return row, evs


def _event(sid: str, eid: str, oid: str, etype: str, at: int) -> dict[str, Any]:
    return {
        "session_id": sid,
        "event_id": eid,
        "object_id": oid,
        "event_type": etype,
        "created_at_ms": at,
        "meta": None,
    }


def bulk_sessions(cs: Clickstream, n: int, prefix: str = "s", chunk: int = 10_000) -> None:
    """Register ``n`` sessions into the collecting batch, ``chunk`` per transaction."""
    at = now_ms() - 3_600_000
    for start in range(0, n, chunk):
        rows: list[dict[str, Any]] = []
        evs: list[dict[str, Any]] = []
        for i in range(start, min(n, start + chunk)):
            row, session_events = session_rows(i, prefix, at)
            rows.append(row)
            evs.extend(session_events)
        cs.storage.sessions.bulk_register(rows, evs, now_ms())
