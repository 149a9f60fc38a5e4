from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchtrail.timestamps import MAX_EPOCH_MS, MS_THRESHOLD, TimeWindow, ms_to_iso, to_epoch_ms

# Instants a client can send as seconds without them reading as milliseconds.
epoch_ms = st.integers(min_value=0, max_value=MS_THRESHOLD * 1000 - 1)
datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(epoch_ms)
def test_whole_seconds_and_milliseconds_agree(ms: int) -> None:
    seconds = ms // 1000
    if seconds * 1000 >= MS_THRESHOLD:
        assert to_epoch_ms(seconds) == seconds * 1000
        assert to_epoch_ms(seconds * 1000) == seconds * 1000


@given(st.integers(min_value=MS_THRESHOLD, max_value=MAX_EPOCH_MS))
def test_large_numbers_are_milliseconds(ms: int) -> None:
    assert to_epoch_ms(ms) == ms


@given(st.integers(min_value=0, max_value=MS_THRESHOLD - 1))
def test_small_numbers_are_seconds(seconds: int) -> None:
    assert to_epoch_ms(seconds) == seconds * 1000


@given(st.floats(min_value=0, max_value=MS_THRESHOLD - 1, allow_nan=False))
def test_float_seconds_keep_milliseconds(seconds: float) -> None:
    assert to_epoch_ms(seconds) == round(seconds * 1000)


@given(datetimes)
def test_iso_round_trip_keeps_milliseconds(dt: datetime) -> None:
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    ms = to_epoch_ms(dt.isoformat())
    assert to_epoch_ms(ms_to_iso(ms)) == ms
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms) == dt


@given(datetimes, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_iso_offsets_name_the_same_instant(dt: datetime, offset_min: int) -> None:
    shifted = dt.astimezone(timezone(timedelta(minutes=offset_min)))
    assert to_epoch_ms(shifted.isoformat()) == to_epoch_ms(dt.isoformat())


def test_iso_without_offset_is_utc() -> None:
    assert to_epoch_ms("2023-01-01T00:00:00") == to_epoch_ms("2023-01-01T00:00:00Z")
    assert to_epoch_ms("2023-01-01T00:00:00Z") == 1_672_531_200_000
    assert to_epoch_ms("2023-01-01T02:00:00+02:00") == 1_672_531_200_000


@pytest.mark.parametrize(
    "bad",
    [True, False, -1, -0.5, math.nan, math.inf, -math.inf, "", "yesterday", "2023-13-01", [], {}],
)
def test_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"timestamp|ISO 8601"):
        to_epoch_ms(bad)


@given(st.one_of(st.text(alphabet="abcxyz!?# ", min_size=1), st.booleans()))
def test_garbage_never_parses(value: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        to_epoch_ms(value)


def test_beyond_year_9999_refused() -> None:
    with pytest.raises(ValueError, match="10000"):
        to_epoch_ms(MAX_EPOCH_MS + 1)


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_window_edges_are_inclusive(minus: int, plus: int) -> None:
    window, now = TimeWindow(minus, plus), 2_000_000_000_000
    assert window.contains(now - minus * 1000, now)
    assert window.contains(now + plus * 1000, now)
    assert not window.contains(now - minus * 1000 - 1, now)
    assert not window.contains(now + plus * 1000 + 1, now)
