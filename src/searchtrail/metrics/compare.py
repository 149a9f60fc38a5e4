"""Two rankers side by side: each metric's difference with a 95% bootstrap interval.

The bootstrap resamples sessions with replacement, each ranker's apart (they are
independent samples). Every compared metric depends on a session only through its
outcome (results shown; the first position interacted with; purchased), so drawing
``n`` sessions with replacement is drawing outcome counts from a multinomial with the
observed frequencies: the same distribution, at the cost of a few categories instead of
``n`` sessions per resample. The interval is the 2.5th and 97.5th percentiles of the
resampled differences (B minus A); a verdict says better or worse only when the
interval excludes 0 and each side has at least ``MIN_SESSIONS`` sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from searchtrail.storage.api import Outcome

__all__ = ["COMPARED", "METHOD", "compare_outcomes", "interleaving"]

METHOD = (
    "percentile bootstrap over sessions (each ranker resampled apart; "
    "multinomial over session outcomes, equivalent to resampling sessions)"
)

# Fewer sessions than this on a side: the bootstrap's interval is not to be trusted (it
# is still reported), and the verdict is "not enough data".
MIN_SESSIONS = 30

# The compared metrics, and whether a higher value is better.
COMPARED = {"ctr": True, "conversion_rate": True, "mrr": True, "zero_result_rate": False}


def _metrics(counts: np.ndarray, shown: np.ndarray, rr: np.ndarray, bought: np.ndarray) -> Any:
    """Each compared metric per resample; ``counts`` is (resamples, categories)."""
    sessions = counts.sum(axis=1)
    with_results = counts @ shown
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "ctr": (counts @ (rr > 0)) / with_results,
            "conversion_rate": (counts @ bought) / with_results,
            "mrr": (counts @ rr) / with_results,
            "zero_result_rate": 1 - with_results / sessions,
        }


def _arrays(outcomes: Sequence[Outcome]) -> tuple[np.ndarray, ...]:
    # The categories in one fixed order: a seed draws the same resamples only if each
    # category has the same place, whatever order the database grouped them in.
    outcomes = sorted(outcomes, key=lambda o: (o[0], o[1] or 0, o[2]))
    n = np.array([o[3] for o in outcomes], dtype=np.int64)
    shown = np.array([o[0] for o in outcomes], dtype=np.float64)
    rr = np.array([0.0 if o[1] is None else 1.0 / o[1] for o in outcomes])
    bought = np.array([o[2] for o in outcomes], dtype=np.float64)
    return n, shown, rr, bought


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0 or high < 0:
        up = low > 0
        return "better" if up == higher_is_better else "worse"
    return "no significant difference"


def compare_outcomes(
    a: Sequence[Outcome], b: Sequence[Outcome], *, resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Per compared metric: A's and B's values, B minus A, its 95% interval, a verdict
    on B against A."""
    rng = np.random.default_rng(seed)
    sides: list[tuple[Any, Any] | None] = []
    for outcomes in (a, b):
        if not outcomes:
            sides.append(None)
            continue
        n, shown, rr, bought = _arrays(outcomes)
        observed = _metrics(n[None, :], shown, rr, bought)
        drawn = rng.multinomial(int(n.sum()), n / n.sum(), size=resamples)
        sides.append((observed, _metrics(drawn, shown, rr, bought)))
    out = []
    for name, higher_is_better in COMPARED.items():
        side_a, side_b = sides
        value_a = _value(side_a[0][name]) if side_a else None
        value_b = _value(side_b[0][name]) if side_b else None
        row: dict[str, Any] = {
            "metric": name,
            "a": value_a,
            "b": value_b,
            "difference": None,
            "ci95": None,
            "verdict": "not enough data",
        }
        if side_a and side_b and value_a is not None and value_b is not None:
            diffs = side_b[1][name] - side_a[1][name]
            diffs = diffs[np.isfinite(diffs)]
            row["difference"] = value_b - value_a
            if len(diffs):
                low, high = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
                row["ci95"] = [low, high]
                if min(_sessions(a), _sessions(b)) >= MIN_SESSIONS:
                    row["verdict"] = _verdict(low, high, higher_is_better)
        out.append(row)
    return out


def _sessions(outcomes: Sequence[Outcome]) -> int:
    return sum(o[3] for o in outcomes)


def _value(x: np.ndarray) -> float | None:
    v = float(x[0])
    return v if np.isfinite(v) else None


def interleaving(
    teams: Sequence[dict[str, int]], a: str, b: str, *, resamples: int, seed: int
) -> dict[str, Any] | None:
    """Interleaved sessions (results labelled with their ranker's team): a session is won
        by the team whose results got more interactions, or tied. The preference for B is
        (wins of B + ties / 2) / sessions - 0.5 (Chapelle et al., 2012): positive when B's
        results draw more interactions. ``None`` where no interleaved session involves both; the
    verdict needs ``MIN_SESSIONS`` of them."""
    wins_a = wins_b = ties = 0
    for t in teams:
        ta, tb = t.get(a, 0), t.get(b, 0)
        if ta == tb == 0:
            continue
        if ta > tb:
            wins_a += 1
        elif tb > ta:
            wins_b += 1
        else:
            ties += 1
    n = wins_a + wins_b + ties
    if n == 0:
        return None
    counts = np.array([wins_a, wins_b, ties])
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, counts / n, size=resamples)
    prefs = (drawn[:, 1] + drawn[:, 2] / 2) / n - 0.5
    low, high = (float(x) for x in np.percentile(prefs, [2.5, 97.5]))
    return {
        "sessions": n,
        "wins_a": wins_a,
        "wins_b": wins_b,
        "ties": ties,
        "preference_b": (wins_b + ties / 2) / n - 0.5,
        "ci95": [low, high],
        "verdict": _verdict(low, high, True) if n >= MIN_SESSIONS else "not enough data",
    }
