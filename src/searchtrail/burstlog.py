"""``BurstLog``: a failure that repeats is logged once per burst, not once per request.

A full disk or a locked database fails every request until an operator acts: hundreds
a second, each with the same reason. The first of a burst is logged at warning with its
reason; the ones after it are counted, and at most one summary line per ``every_s``
says how many were left out (at the next failure past that time: no timer runs). A kind
quiet for ``every_s`` ends its burst; the next failure starts a new one, and says how
many of the previous burst were never summarized.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BurstLog"]


@dataclass
class _Burst:
    logged_at: float  # the first line of the burst, or its last summary
    seen_at: float  # its latest failure
    left_out: int = 0  # failures since the line at logged_at


class BurstLog:
    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every_s = every_s
        self._clock = clock
        self._bursts: dict[str, _Burst] = {}
        # Failures arrive from the event loop and from threads (the library, the CLI).
        self._lock = threading.Lock()

    def note(self, kind: str, reason: str) -> None:
        """One failure of ``kind`` (a stable code, e.g. ``disk_full``) because of ``reason``."""
        now = self._clock()
        with self._lock:
            burst = self._bursts.get(kind)
            if burst is None or now - burst.seen_at >= self._every_s:
                unsummarized = burst.left_out if burst is not None else 0
                self._bursts[kind] = _Burst(logged_at=now, seen_at=now)
                tail = f" ({unsummarized} more of the previous burst)" if unsummarized else ""
                self._log.warning("%s: %s%s", kind, reason, tail)
                return
            burst.seen_at = now
            burst.left_out += 1
            if now - burst.logged_at < self._every_s:
                return
            left_out, since = burst.left_out, now - burst.logged_at
            burst.logged_at, burst.left_out = now, 0
        self._log.warning(
            "%s: %d more in the last %.0f s, not logged one by one (latest: %s)",
            kind,
            left_out,
            since,
            reason,
        )
