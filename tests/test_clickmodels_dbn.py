"""DBN and SDBN: the chain's inference against brute force, EM, parameter recovery on
synthetic traffic from known parameters, and DBN's fit at a million sessions.

Tolerances (fixed seeds; the fast ones hold with margin over seeds 0-9):

- DBN on DBN traffic (gamma = 0.8), 4 queries x 5 results, 10,000 sessions: alpha mean
  error < 0.025 and max < 0.07; sigma mean < 0.06 and max < 0.2; gamma within 0.02.
- the same at 20 queries x 10 results, 100,000 sessions (slow): alpha mean < 0.015 and
  max < 0.06; sigma mean < 0.04, and max < 0.12 for pairs with 200 clicks or more
  (< 0.25 for all: the rarest has ~50 clicks); gamma within 0.005.
- SDBN on SDBN traffic (gamma = 1), 4 x 5, 10,000 sessions: alpha mean < 0.06 and max
  < 0.15 (its counts' bias, sdbn.py); sigma against what its counts estimate,
  sigma + (1 - sigma) P(no click below), mean < 0.035 and max < 0.15. DBN on the same
  traffic finds gamma > 0.99.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchtrail.clickmodels.base import evaluate
from searchtrail.clickmodels.cascade import Chain
from searchtrail.clickmodels.dbn import DBN
from searchtrail.clickmodels.log import ClickLog, build_click_log
from searchtrail.clickmodels.sdbn import SDBN
from tests.clickmodel_cascade_traffic import Traffic, chain_log

ROOT = Path(__file__).resolve().parent.parent

# Five slots, the third showing nothing (skipped by the chain); pairs 0-3 elsewhere.
SLOTS = [0, 1, -1, 2, 3]
ALPHA = np.array([0.6, 0.3, 0.45, 0.2])
SIGMA = np.array([0.4, 0.7, 0.25, 0.5])
GAMMA = 0.85


def _enumerate() -> dict[tuple[bool, ...], np.ndarray]:
    """Per click pattern: [P(pattern), P(E_k = 1, pattern) per slot..., P(satisfied at
    the last click, pattern)], summing the chain over every attraction, satisfaction and
    continuation of every shown slot."""
    out: dict[tuple[bool, ...], np.ndarray] = {}
    shown = [k for k, p in enumerate(SLOTS) if p >= 0]
    for bits in itertools.product((0, 1), repeat=3 * len(shown)):
        weight, examining = 1.0, True
        clicks, exams = [False] * len(SLOTS), [0.0] * len(SLOTS)
        satisfied_at: dict[int, int] = {}
        latent = dict(zip(shown, zip(bits[0::3], bits[1::3], bits[2::3], strict=True), strict=True))
        for k, p in enumerate(SLOTS):
            exams[k] = float(examining)
            if p < 0:
                continue
            attracted, satisfied, goes_on = latent[k]
            weight *= ALPHA[p] if attracted else 1 - ALPHA[p]
            weight *= SIGMA[p] if satisfied else 1 - SIGMA[p]
            weight *= GAMMA if goes_on else 1 - GAMMA
            clicks[k] = examining and bool(attracted)
            satisfied_at[k] = satisfied
            examining = examining and not (clicks[k] and satisfied) and bool(goes_on)
        clicked = [k for k, c in enumerate(clicks) if c]
        sat_last = satisfied_at[clicked[-1]] if clicked else 0
        row = out.setdefault(tuple(clicks), np.zeros(len(SLOTS) + 2))
        row += weight * np.array([1.0, *exams, sat_last])
    return out


def _log_of(patterns: list[tuple[bool, ...]]) -> ClickLog:
    n = len(patterns)
    pair = np.tile(np.array(SLOTS, dtype=np.int32), (n, 1))
    return ClickLog(
        pair,
        np.array(patterns, dtype=bool),
        np.zeros(n, dtype=np.int32),
        np.arange(n, dtype=np.int64),
        ["q"],
        np.zeros(4, dtype=np.int32),
        ["a", "b", "c", "d"],
    )


def test_the_chain_matches_brute_force_enumeration() -> None:
    table = _enumerate()
    assert sum(row[0] for row in table.values()) == pytest.approx(1.0)
    patterns = sorted(table)
    chain = Chain.of(_log_of(patterns))
    conditional, full, exam = chain.forward(ALPHA, SIGMA, GAMMA)
    post, satisfied = chain.posterior(ALPHA, SIGMA, GAMMA)
    prob = np.array([table[p][0] for p in patterns])
    for s, pattern in enumerate(patterns):
        row = table[pattern]
        assert post[:, s] == pytest.approx(row[1:-1] / row[0])
        assert satisfied[s] == pytest.approx(row[-1] / row[0])
        for k in range(len(SLOTS)):
            above = [p for p in patterns if p[:k] == pattern[:k]]
            given = sum(table[p][0] for p in above)
            clicked = sum(table[p][0] for p in above if p[k])
            assert conditional[k, s] == pytest.approx(clicked / given)
    clicks = np.array(patterns, dtype=float)
    assert full[:, 0] == pytest.approx(prob @ clicks)
    assert exam[:, 0] == pytest.approx(sum(table[p][1:-1] for p in patterns))
    # The product of the conditional click probabilities is the pattern's probability.
    shown = chain.shown
    likelihood = np.where(shown, np.where(chain.click, conditional, 1 - conditional), 1.0)
    assert likelihood.prod(axis=0) == pytest.approx(prob)


def test_em_never_lowers_the_training_likelihood() -> None:
    log = chain_log(7, queries=3, results=5, sessions=2000, gamma=0.7).log
    lls = []
    for n in range(1, 12):
        model = DBN(tol=0.0, max_iter=n)
        model.fit(log)
        lls.append(evaluate(model, log)["log_likelihood"])
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(lls)), lls
    assert model.params()["iterations"] == 11 and not model.params()["converged"]


def _errors(values: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    e = np.abs(values - truth)
    return float(e.mean()), float(e.max())


def test_dbn_recovers_its_parameters() -> None:
    traffic = chain_log(0, queries=4, results=5, sessions=10_000, gamma=0.8)
    model = DBN()
    model.fit(traffic.log)
    mean, worst = _errors(model.alpha, traffic.alpha)
    assert mean < 0.025 and worst < 0.07
    mean, worst = _errors(model.sigma, traffic.sigma)
    assert mean < 0.06 and worst < 0.2
    assert model.gamma == pytest.approx(0.8, abs=0.02)
    assert model.params()["converged"] and model.params()["gamma_fitted"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dbn_recovers_its_parameters_at_scale(seed: int) -> None:
    traffic = chain_log(seed, queries=20, results=10, sessions=100_000, gamma=0.8)
    model = DBN()
    model.fit(traffic.log)
    mean, worst = _errors(model.alpha, traffic.alpha)
    assert mean < 0.015 and worst < 0.06
    mean, worst = _errors(model.sigma, traffic.sigma)
    clicks = np.bincount(traffic.log.pair[traffic.log.click], minlength=traffic.log.pairs)
    often = clicks >= 200
    assert mean < 0.04 and worst < 0.25
    assert np.abs(model.sigma - traffic.sigma)[often].max() < 0.12
    assert model.gamma == pytest.approx(0.8, abs=0.005)


def test_dbn_holds_a_given_gamma() -> None:
    traffic = chain_log(1, queries=3, results=4, sessions=3000, gamma=0.8)
    model = DBN(gamma=0.8)
    model.fit(traffic.log)
    assert model.gamma == 0.8
    assert model.params()["gamma_fitted"] is False
    assert _errors(model.alpha, traffic.alpha)[0] < 0.03


def _sdbn_sigma_target(traffic: Traffic) -> np.ndarray:
    """What SDBN's sigma counts estimate: per click on the pair,
    sigma + (1 - sigma) P(no click below | went on)."""
    log = traffic.log
    a = np.where(log.shown, traffic.alpha[np.maximum(log.pair, 0)], 0.0)
    none_from = np.cumprod((1 - a)[:, ::-1], axis=1)[:, ::-1]
    none_below = np.concatenate([none_from[:, 1:], np.ones((log.sessions, 1))], axis=1)
    c = log.click
    sigma = traffic.sigma[log.pair[c]]
    last = np.bincount(log.pair[c], weights=sigma + (1 - sigma) * none_below[c])
    clicks = np.bincount(log.pair[c])
    return (np.pad(last, (0, log.pairs - len(last))) + 1) / (
        np.pad(clicks, (0, log.pairs - len(clicks))) + 2
    )


def test_sdbn_on_sdbn_traffic() -> None:
    traffic = chain_log(0, queries=4, results=5, sessions=10_000, gamma=1.0)
    model = SDBN()
    model.fit(traffic.log)
    mean, worst = _errors(model.alpha, traffic.alpha)
    assert mean < 0.06 and worst < 0.15
    mean, worst = _errors(model.sigma, _sdbn_sigma_target(traffic))
    assert mean < 0.035 and worst < 0.15
    assert model.params() == {"gamma": 1.0}
    dbn = DBN()
    dbn.fit(traffic.log)
    assert dbn.gamma > 0.99


def test_sdbn_counts_down_to_the_last_click() -> None:
    log = build_click_log(
        [
            (1, "q", ["a", "b", "c", "d"], {"a", "c"}),  # d, below the last click: not counted
            (2, "q", ["a", "b", "c", "d"], set()),  # no click: all four counted
        ],
        4,
    )
    model = SDBN()
    model.fit(log)
    a, b, c, d = (log.pair_object.index(x) for x in "abcd")
    assert model.alpha[[a, b, c, d]] == pytest.approx([2 / 4, 1 / 4, 2 / 4, 1 / 3])
    # a's click was followed by another: not last; c's was last.
    assert model.sigma[[a, c, b]] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    examined = model.examined(log)
    assert examined[0, :3].tolist() == [1.0, 1.0, 1.0]
    # Below the last click: P(not satisfied at c | no click on d) with gamma = 1.
    sat, attr = model.sigma[c], model.alpha[d]
    assert examined[0, 3] == pytest.approx((1 - sat) * (1 - attr) / (sat + (1 - sat) * (1 - attr)))
    assert examined[1].tolist() == pytest.approx([1.0] * 4)


@pytest.mark.slow
def test_dbn_fits_a_million_sessions_in_a_minute_under_2_gb() -> None:
    """Run in its own process so that its peak RSS is its own (tests/peak_rss.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.clickmodel_dbn_scale"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(done.stdout)
    print(result)
    assert result["sessions"] == 1_000_000
    assert result["seconds"] < 60
    assert result["peak_mb"] < 2048
