"""Timestamp rules: what a client may send as a time, and the window it must fall in.

Clients of the original service send integer epoch seconds; its documentation also
shows epoch milliseconds and ISO 8601 strings. All three are accepted and stored as
integer epoch milliseconds, so ordering and millisecond precision survive a round trip.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "MAX_EPOCH_MS",
    "MS_THRESHOLD",
    "TimeWindow",
    "ms_to_iso",
    "now_ms",
    "to_epoch_ms",
]

# A number this large or larger is milliseconds: 10**11 seconds is the year 5138,
# 10**11 milliseconds is 1973, so no realistic value is ambiguous.
MS_THRESHOLD = 10**11
# 9999-12-31T23:59:59.999Z, the last instant datetime can represent.
MAX_EPOCH_MS = 253_402_300_799_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_epoch_ms(value: object) -> int:
    """Normalize a client timestamp to epoch milliseconds, or raise ``ValueError`` saying why.

    Booleans are refused although ``bool`` is an ``int``: ``true`` as a time is a client bug.
    """
    if isinstance(value, bool):
        raise ValueError(
            "a timestamp must be epoch seconds, epoch milliseconds or ISO 8601, not a boolean"
        )
    if isinstance(value, int | float):
        return _number_to_ms(value)
    if isinstance(value, str):
        return _string_to_ms(value)
    raise ValueError(
        f"a timestamp must be epoch seconds, epoch milliseconds or an ISO 8601 string, "
        f"not {type(value).__name__}"
    )


def _number_to_ms(value: float) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a timestamp must be a finite number")
    if value < 0:
        raise ValueError("a timestamp must not be negative")
    ms = round(value) if value >= MS_THRESHOLD else round(value * 1000)
    if ms > MAX_EPOCH_MS:
        raise ValueError("a timestamp must be before the year 10000")
    return int(ms)


def _string_to_ms(value: str) -> int:
    text = value.strip()
    if not text:
        raise ValueError("a timestamp must not be an empty string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 timestamp (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if ms < 0:
        raise ValueError("a timestamp must not be before 1970-01-01T00:00:00Z")
    return ms


def ms_to_iso(ms: int) -> str:
    # timedelta, not ms / 1000: a float loses the last millisecond after the year 2200.
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class TimeWindow:
    """How far a client's clock may be from ours: ``minus_sec`` back, ``plus_sec`` ahead."""

    minus_sec: int = 12 * 3600
    plus_sec: int = 5 * 60

    def bounds(self, now: int) -> tuple[int, int]:
        """The earliest and the latest accepted epoch milliseconds, both included."""
        return now - self.minus_sec * 1000, now + self.plus_sec * 1000

    def contains(self, ms: int, now: int) -> bool:
        earliest, latest = self.bounds(now)
        return earliest <= ms <= latest

    def describe(self, now: int) -> str:
        lo, hi = map(ms_to_iso, self.bounds(now))
        return (
            f"between {lo} and {hi} (at most {self.minus_sec} s in the past "
            f"and {self.plus_sec} s in the future)"
        )
