"""Token buckets in process memory, one per API key (or per client IP without keys).

Per process: with N uvicorn workers a client gets up to N times the configured rate.
That keeps the check free of any shared store; it is a guard against floods and
runaway clients, not a billing meter.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from searchtrail.errors import RateLimited

__all__ = ["RateLimiter"]


class RateLimiter:
    """``rate`` tokens a second up to ``burst``; each request takes one."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_buckets = max_buckets
        self._clock = clock
        self._lock = threading.Lock()
        # name -> (tokens, when); least recently used first, so the oldest is dropped.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str, who: str) -> None:
        """Take one token from ``name``'s bucket, or raise RateLimited naming ``who``."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[name] = (tokens - 1, now)
                self._trim()
                return
            self._buckets[name] = (tokens, now)
        retry_after = max(1, math.ceil((1 - tokens) / self.rate))
        raise RateLimited(
            f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded for {who}; "
            f"retry after {retry_after} s",
            retry_after=retry_after,
        )

    def _trim(self) -> None:
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
