"""The benchmark's targets, in one place: the runner profiles a scenario that misses one,
and the report gives each its verdict from the same thresholds."""

from __future__ import annotations

__all__ = [
    "CREATES_PER_SECOND",
    "GET_P99_MS",
    "IMPORT_SHARE_OF_RAW",
    "PUSH_SHARE_OF_CEILING",
    "create_met",
    "get_met",
    "import_met",
    "push_met",
]

# A push's events/s against its ceiling's (the same validation, nothing stored).
PUSH_SHARE_OF_CEILING = 0.6
CREATES_PER_SECOND = 5000
# The get's p99 at one connection.
GET_P99_MS = 5.0
# An import's sessions/s against a raw insert of the same rows.
IMPORT_SHARE_OF_RAW = 0.5


def push_met(rate: float, ceiling_rate: float) -> bool:
    return rate >= PUSH_SHARE_OF_CEILING * ceiling_rate


def create_met(rate: float) -> bool:
    return rate >= CREATES_PER_SECOND


def get_met(p99_ms: float) -> bool:
    return p99_ms < GET_P99_MS


def import_met(ratio: float) -> bool:
    return ratio >= IMPORT_SHARE_OF_RAW
