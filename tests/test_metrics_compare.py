"""metrics/compare.py on outcome counts made by hand: the bootstrap comparison of two
rankers and the interleaving preference. No database."""

from __future__ import annotations

from typing import Any

import pytest

from searchtrail.metrics.compare import COMPARED, MIN_SESSIONS, compare_outcomes, interleaving
from searchtrail.storage.api import Outcome


def outcomes(
    *, sessions: int, zero: float = 0.0, clicked: float = 0.0, bought: float = 0.0
) -> list[Outcome]:
    """``sessions`` sessions: a share without results, a share clicked at position 1 (of
    which a share bought) and the rest shown but not clicked."""
    none = round(sessions * zero)
    hit = round(sessions * clicked)
    paid = round(hit * bought)
    rows: list[Outcome] = [
        (False, None, False, none),
        (True, 1, True, paid),
        (True, 1, False, hit - paid),
        (True, None, False, sessions - none - hit),
    ]
    return [r for r in rows if r[3] > 0]


def by_metric(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert [r["metric"] for r in rows] == list(COMPARED)
    return {r["metric"]: r for r in rows}


def test_a_seeded_comparison_is_deterministic() -> None:
    a = outcomes(sessions=200, zero=0.1, clicked=0.3, bought=0.2)
    b = outcomes(sessions=180, zero=0.05, clicked=0.35, bought=0.3)
    first = compare_outcomes(a, b, resamples=2000, seed=7)
    assert compare_outcomes(a, b, resamples=2000, seed=7) == first
    assert compare_outcomes(a, b, resamples=2000, seed=8) != first  # the seed is used


def test_a_large_clear_difference_is_better_or_worse() -> None:
    a = outcomes(sessions=400, zero=0.4, clicked=0.2, bought=0.2)
    b = outcomes(sessions=400, zero=0.1, clicked=0.7, bought=0.5)
    rows = by_metric(compare_outcomes(a, b, resamples=2000, seed=1))
    assert {m: r["verdict"] for m, r in rows.items()} == {
        "ctr": "better", "conversion_rate": "better", "mrr": "better",
        "zero_result_rate": "better",  # B shows results more often: lower is better
    }  # fmt: skip
    assert rows["zero_result_rate"]["difference"] == pytest.approx(0.1 - 0.4)
    assert rows["ctr"]["a"] == pytest.approx(80 / 240) and rows["ctr"]["b"] == pytest.approx(
        280 / 360
    )
    swapped = by_metric(compare_outcomes(b, a, resamples=2000, seed=1))
    assert {r["verdict"] for r in swapped.values()} == {"worse"}


def test_identical_samples_show_no_significant_difference() -> None:
    a = outcomes(sessions=300, zero=0.2, clicked=0.4, bought=0.25)
    for seed in range(5):
        rows = by_metric(compare_outcomes(a, list(a), resamples=2000, seed=seed))
        for row in rows.values():
            assert row["difference"] == 0.0
            assert row["verdict"] == "no significant difference"
            low, high = row["ci95"]
            assert low < 0 < high


@pytest.mark.parametrize("seed", range(4))
def test_the_interval_brackets_the_observed_difference(seed: int) -> None:
    a = outcomes(sessions=150, zero=0.2, clicked=0.3, bought=0.3)
    b = outcomes(sessions=120, zero=0.15, clicked=0.4, bought=0.2)
    for row in compare_outcomes(a, b, resamples=4000, seed=seed):
        low, high = row["ci95"]
        assert low <= row["difference"] <= high, row
        assert row["difference"] == pytest.approx(row["b"] - row["a"])


def test_fewer_than_min_sessions_is_not_enough_data() -> None:
    few = MIN_SESSIONS - 1
    a = outcomes(sessions=few, clicked=0.0)
    b = outcomes(sessions=few, clicked=1.0, bought=1.0)
    for row in compare_outcomes(a, b, resamples=500, seed=0):
        assert row["verdict"] == "not enough data", row
        assert row["ci95"] is not None  # the interval is still reported
    enough = compare_outcomes(
        outcomes(sessions=MIN_SESSIONS, clicked=0.0),
        outcomes(sessions=MIN_SESSIONS, clicked=1.0, bought=1.0),
        resamples=500,
        seed=0,
    )
    assert by_metric(enough)["ctr"]["verdict"] == "better"


def test_a_side_without_sessions_or_results_has_no_difference() -> None:
    b = outcomes(sessions=50, clicked=0.5)
    for row in compare_outcomes([], b, resamples=200, seed=0):
        assert (row["a"], row["difference"], row["ci95"]) == (None, None, None)
        assert row["verdict"] == "not enough data"
    no_results = by_metric(
        compare_outcomes(outcomes(sessions=50, zero=1.0), b, resamples=200, seed=0)
    )
    assert no_results["ctr"]["a"] is None and no_results["ctr"]["verdict"] == "not enough data"
    assert no_results["zero_result_rate"]["a"] == 1.0
    assert no_results["zero_result_rate"]["verdict"] == "better"


def test_the_interleaving_preference_on_a_hand_made_example() -> None:
    teams = [
        {"A": 2, "B": 1},  # A wins
        {"B": 1},  # B wins
        {"B": 3, "A": 1, "C": 9},  # B wins; C is neither
        {"A": 1, "B": 1},  # a tie
        {"C": 4},  # neither A nor B: left out
        {},  # no interaction: left out
        {"A": 0, "B": 0},  # left out
    ]
    got = interleaving(teams, "A", "B", resamples=1000, seed=3)
    assert got is not None
    assert (got["sessions"], got["wins_a"], got["wins_b"], got["ties"]) == (4, 1, 2, 1)
    # (wins of B + ties / 2) / sessions - 0.5
    assert got["preference_b"] == pytest.approx((2 + 1 / 2) / 4 - 0.5)
    low, high = got["ci95"]
    assert low <= got["preference_b"] <= high
    assert got["verdict"] == "not enough data"  # 4 sessions, under MIN_SESSIONS
    many = interleaving(teams * 10, "A", "B", resamples=1000, seed=3)
    assert many is not None and many["verdict"] == "no significant difference"
    assert interleaving(teams, "A", "B", resamples=1000, seed=3) == got
    mirrored = interleaving(teams, "B", "A", resamples=1000, seed=3)
    assert mirrored is not None and mirrored["preference_b"] == pytest.approx(-0.125)
    assert interleaving([{"C": 1}, {}], "A", "B", resamples=100, seed=0) is None


def test_an_interleaving_won_by_b_throughout_is_better() -> None:
    teams = [{"B": 2, "A": 1}] * 80 + [{"A": 1}] * 10 + [{"A": 1, "B": 1}] * 10
    got = interleaving(teams, "A", "B", resamples=2000, seed=0)
    assert got is not None
    assert got["preference_b"] == pytest.approx((80 + 5) / 100 - 0.5)
    assert got["verdict"] == "better"
    against = interleaving(teams, "B", "A", resamples=2000, seed=0)
    assert against is not None and against["verdict"] == "worse"


def test_the_outcomes_order_does_not_change_a_seeded_answer() -> None:
    """A database may group outcomes in any order (PostgreSQL's hash aggregate does)."""
    a = [(True, 1, False, 30), (True, None, False, 40), (False, None, False, 5), (True, 3, True, 9)]
    b = [(True, 2, False, 50), (True, None, False, 20), (True, 1, True, 12)]
    first = compare_outcomes(a, b, resamples=500, seed=7)
    again = compare_outcomes(a[::-1], b[::-1], resamples=500, seed=7)
    assert first == again
