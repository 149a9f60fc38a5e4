"""The garbage collector of a process that does nothing but serve searchtrail.

The objects alive after start-up (FastAPI, pydantic, SQLAlchemy, the app) live as long
as the process, yet every full collection walks them all. ``settle_heap`` freezes them
out of every later collection and enlarges the young generation, so a request's objects,
kept alive across an ``await``, die young instead of being promoted into full
collections (docs/performance.md, "The frozen heap").

Both are process-wide: only ``searchtrail serve``'s own workers and their writer
processes call this, never an application that mounts ``create_app`` in a process of
its own.
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
