"""A varied clickstream for the Spark tests, loaded through ``Sessions.bulk_register``.

Seeded, so a failure repeats. It holds what makes the judgement and the metrics differ
when a rule is wrong: repeated object ids in a result list, events on unshown objects
and without ``object_id``, event types with and without a weight, irrelevant sessions,
sessions without results or events, blank, missing, structured and non-ASCII queries,
more than 20 results, events before their session and on the next day, several days
and several batches (all released but the last, which is still collecting).
"""

from __future__ import annotations

import random
from typing import Any

from searchtrail import Clickstream

__all__ = ["BASE_MS", "DAYS", "load"]

BASE_MS = 1_767_470_400_000  # 2026-01-03T20:00:00Z: the first day is 4 hours long
DAYS = 5
_TYPES = ("click",) * 5 + ("add_to_cart", "purchase", "view", "hover")
_STRUCTURED: tuple[Any, ...] = (
    {"text": "red shoes", "filters": {"size": 42, "brand": ["a", "b"]}},
    ["red", "shoes"],
    42,
    1.5,
    True,
)


def _query(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.70:
        word = f"Query  {rng.randrange(300)}"
        return word.lower() if rng.random() < 0.5 else f" {word} "
    if roll < 0.75:
        return rng.choice(["", "   ", "\t\n", "\u3000", "\x1f"])
    if roll < 0.80:
        return None
    if roll < 0.85:
        return rng.choice(["chaussures été", "靴", 'say "hi" \\ there'])
    return rng.choice(_STRUCTURED)


def _session(rng: random.Random, i: int, at: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sid = f"s{i}"
    shown: list[str] = []
    n = 0 if rng.random() < 0.05 else rng.randint(1, 25)
    for _ in range(n):
        repeat = shown and rng.random() < 0.15
        shown.append(rng.choice(shown) if repeat else f"o{rng.randrange(3000)}")
    row = {
        "session_id": sid,
        "search_query": _query(rng),
        "search_results": [{"object_id": o, "rank": None, "meta": None} for o in shown],
        "search_meta": None,
        "payload_filter": None,
        "sort_by": None,
        "user_id": f"u{rng.randrange(5000)}" if rng.random() < 0.8 else None,
        "created_at_ms": at,
        "created_at_given": True,
        "is_irrelevant": rng.random() < 0.06,
    }
    evs: list[dict[str, Any]] = []
    if rng.random() < 0.85:
        for j in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.7 and shown:
                # Weighted toward the top, as people click: positions 1..5 most.
                oid: str | None = shown[min(int(rng.expovariate(0.3)), len(shown) - 1)]
            elif roll < 0.85:
                oid = f"x{rng.randrange(3000)}"
            else:
                oid = None
            evs.append(
                {
                    "session_id": sid,
                    "event_id": f"e{j}",
                    "object_id": oid,
                    "event_type": rng.choice(_TYPES),
                    "created_at_ms": at + rng.randint(-2_000, 7_200_000),
                    "meta": None,
                }
            )
    return row, evs


def load(cs: Clickstream, n: int, batches: int = 4, chunk: int = 10_000, seed: int = 24) -> None:
    """``n`` sessions spread over ``DAYS`` days from ``BASE_MS``, in ``batches`` batches
    of equal size: every batch released but the last."""
    rng = random.Random(seed)
    step = DAYS * 86_400_000 // n
    per_batch = -(-n // batches)
    for start in range(0, n, chunk):
        rows: list[dict[str, Any]] = []
        evs: list[dict[str, Any]] = []
        for i in range(start, min(n, start + chunk)):
            row, session_events = _session(rng, i, BASE_MS + i * step + rng.randrange(step))
            rows.append(row)
            evs.extend(session_events)
            if (i + 1) % per_batch == 0 or i + 1 == n:
                cs.storage.sessions.bulk_register(rows, evs, BASE_MS)
                rows, evs = [], []
                if i + 1 < n:
                    cs.release_batch(f"release-{i + 1}")
        cs.storage.sessions.bulk_register(rows, evs, BASE_MS)
