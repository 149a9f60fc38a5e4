"""The garbage collector of a process that does nothing but serve searchtrail.

After start-up the process holds about 115,000 objects (FastAPI, pydantic, SQLAlchemy,
the app) that live as long as it does. CPython's full collection walks every one of
them: 60 ms on the benchmark machine. Under a push load the requests in flight keep
enough objects alive across an ``await`` that they are promoted to the oldest
generation, so full collections kept coming: a fifth of the event loop's CPU, and twice
the push's p99 latency (bench/analysis.md).

Freezing the start-up heap keeps it out of every later collection, and a larger young
generation lets a request's objects die young instead of being promoted. Both are
process-wide, so only ``searchtrail serve``'s own workers and their writer processes do
this, never an application that mounts ``create_app`` in a process of its own.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GENERATION", "settle_heap"]

# Container allocations (net of frees) between two young collections; CPython's default
# is 700, less than one 100-event push allocates.
YOUNG_GENERATION = 10_000


def settle_heap() -> None:
    """Collect once, freeze what is left, and give the young generation room."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)
