"""The cascade model, model choice between the cascade family and PBM or COEC, and the
family's degenerate inputs (no clicks, one position, a query seen once, no sessions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from searchtrail.clickmodels.base import EPS, ClickModel, evaluate
from searchtrail.clickmodels.cascade import Cascade
from searchtrail.clickmodels.log import ClickLog, build_click_log
from searchtrail.clickmodels.registry import MODELS, make
from tests.clickmodel_cascade_traffic import chain_log, pbm_log

FAMILY = ("cascade", "dbn", "sdbn")


def test_the_family_is_registered() -> None:
    assert {name: MODELS[name].name for name in FAMILY} == {name: name for name in FAMILY}


def test_cascade_counts_down_to_the_first_click() -> None:
    log = build_click_log(
        [
            (1, "q", ["a", "b", "c"], {"b", "c"}),  # c, below the first click, is not counted
            (2, "q", ["a", "b", "c"], set()),  # every position counted
            (3, "q", ["c", "a", "b"], {"c"}),
        ],
        3,
    )
    model = Cascade()
    model.fit(log)
    a, b, c = (log.pair_object.index(x) for x in "abc")
    # a: 2 impressions counted, 0 clicks; b: 2 and 1; c: 2 and 1 (its click below b's
    # first click is dropped, and so is the impression).
    assert model.alpha[[a, b, c]] == pytest.approx([1 / 4, 2 / 4, 2 / 4])
    assert model.params() == {"multi_click_sessions": 1}
    assert set(model.labels()) == {"attractiveness"}


def test_cascade_gives_a_click_after_the_first_probability_zero_and_evaluate_clips_it() -> None:
    log = build_click_log([(1, "q", ["a", "b"], {"a", "b"}), (2, "q", ["a", "b"], {"a"})], 2)
    model = Cascade()
    model.fit(log)
    conditional, full = model.click_probabilities(log)
    alpha_a, alpha_b = model.alpha[0], model.alpha[1]
    assert conditional[:, 1].tolist() == [0.0, 0.0]
    assert full[0].tolist() == pytest.approx([alpha_a, (1 - alpha_a) * alpha_b])
    expected = (math.log(alpha_a) + math.log(EPS) + math.log(alpha_a) + math.log(1 - EPS)) / 2
    assert evaluate(model, log)["log_likelihood"] == pytest.approx(expected)
    # Posterior examination: 1 down to the last click, 0 below; all 1 without a click.
    other = build_click_log([(1, "q", ["a", "b", "c"], {"a"}), (2, "q", ["a", "b"], set())], 3)
    examined = model.examined(other)
    assert examined[0].tolist() == [1.0, 0.0, 0.0]
    assert examined[1, :2].tolist() == pytest.approx([1.0, 1.0])
    assert math.isnan(examined[1, 2])


def test_cascade_recovers_attractiveness_on_cascade_traffic() -> None:
    traffic = chain_log(3, queries=4, results=5, sessions=4000, gamma=1.0, satisfaction=False)
    model = Cascade()
    model.fit(traffic.log)
    # 1,000 sessions a query, each pair examined some hundreds of times: within 0.12.
    assert np.abs(model.alpha - traffic.alpha).max() < 0.12
    assert np.abs(model.alpha - traffic.alpha).mean() < 0.04


def _held_out(model: ClickModel, log: ClickLog) -> float:
    train, test = log.split()
    model.fit(train)
    return float(evaluate(model, test)["log_likelihood"])


def _pbm() -> ClickModel:
    # PBM comes from another branch; once both are merged into main it is registered and
    # this skip never happens there.
    if "pbm" not in MODELS:
        pytest.skip("PBM is not registered in this tree")
    return make("pbm")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_cascade_family_beats_pbm_on_cascade_traffic(seed: int) -> None:
    log = chain_log(seed, queries=5, results=6, sessions=3000, gamma=1.0, satisfaction=False).log
    pbm = _held_out(_pbm(), log)
    family = {name: _held_out(make(name), log) for name in FAMILY}
    assert all(ll > pbm + 0.3 for ll in family.values()), (family, pbm)


@pytest.mark.parametrize("seed", [0, 1])
def test_pbm_beats_the_cascade_family_on_pbm_traffic(seed: int) -> None:
    log = pbm_log(seed, queries=5, results=6, sessions=3000).log
    pbm = _held_out(_pbm(), log)
    family = {name: _held_out(make(name), log) for name in FAMILY}
    assert all(ll < pbm - 0.03 for ll in family.values()), (family, pbm)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_cascade_family_beats_coec_on_cascade_traffic(seed: int) -> None:
    log = chain_log(seed, queries=5, results=6, sessions=3000, gamma=1.0, satisfaction=False).log
    coec = _held_out(make("coec"), log)
    family = {name: _held_out(make(name), log) for name in FAMILY}
    assert all(ll > coec + 0.3 for ll in family.values()), (family, coec)


def _answers(model: ClickModel, log: ClickLog) -> list[np.ndarray]:
    conditional, full = model.click_probabilities(log)
    return [
        conditional,
        full,
        model.examination(log),
        model.examined(log),
        *model.labels().values(),
    ]


def _finite_where_shown(model: ClickModel, log: ClickLog) -> None:
    shown = log.shown
    conditional, full, examination, examined, *labels = _answers(model, log)
    for values in (conditional, full, examined):
        assert np.isfinite(values[shown]).all()
        assert np.isnan(values[~shown]).all()
        assert ((values[shown] >= 0) & (values[shown] <= 1)).all()
    assert np.isfinite(examination).all()
    for label in labels:
        assert np.isfinite(label).all()
        assert ((label > 0) & (label < 1)).all()  # the prior keeps 0 and 1 out
    result = evaluate(model, log)
    assert math.isfinite(result["log_likelihood"])
    assert all(p is None or math.isfinite(p) for p in result["perplexity_by_position"])


@pytest.mark.parametrize("name", FAMILY)
def test_no_clicks_gives_low_attractiveness_and_the_prior_satisfaction(name: str) -> None:
    log = build_click_log([(t, "q", ["a", "b", "c"], set()) for t in range(8)], 3)
    model = make(name)
    model.fit(log)
    _finite_where_shown(model, log)
    labels = model.labels()
    alpha = labels["attractiveness"]
    assert alpha[0] == pytest.approx(1 / (8 + 2))  # position 1 is always examined
    if name == "dbn":
        # gamma falls with no click to keep the user going, so the lower positions count
        # as hardly examined: their alpha stays between the first's and the prior.
        assert (alpha[1:] > alpha[0]).all() and (alpha <= 0.5).all()
    else:
        # The user who never clicks examined everything: alpha = 1 / (8 + 2) for all.
        assert alpha.tolist() == pytest.approx([0.1] * 3)
    if "satisfaction" in labels:
        assert labels["satisfaction"].tolist() == [0.5, 0.5, 0.5]  # no click: the prior
    assert model.examination(log)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("name", FAMILY)
def test_one_position(name: str) -> None:
    log = build_click_log(
        [(t, "q", ["a", "b"][t % 2 :], {"a"} if t < 3 else set()) for t in range(6)], 1
    )
    model = make(name)
    model.fit(log)
    _finite_where_shown(model, log)
    assert model.examination(log).tolist() == [1.0]
    assert np.nan_to_num(model.examined(log)).tolist() == [[1.0]] * 6
    if name == "dbn":
        assert model.params()["gamma"] == 0.5  # never observed: its prior alone


@pytest.mark.parametrize("name", FAMILY)
def test_a_query_seen_once_and_pairs_not_seen_in_training(name: str) -> None:
    rows = [(t, "often", ["a", "b", "c"], {"b"} if t % 2 else set()) for t in range(9)]
    rows.append((9, "once", ["x", "y"], {"y"}))  # the latest: alone in the test set
    train, test = build_click_log(rows, 3).split()
    assert test.queries[test.query[0]] == "once" and test.sessions == 1
    model = make(name)
    model.fit(train)
    _finite_where_shown(model, test)
    # x and y were never seen in training: their alpha is the prior, 0.5.
    conditional, _ = model.click_probabilities(test)
    assert conditional[0, 0] == pytest.approx(0.5)
    # Fitted on the single session alone: alpha = (clicks + 1) / (examinations + 2).
    once = build_click_log(rows[-1:], 3)
    model.fit(once)
    _finite_where_shown(model, once)
    assert model.labels()["attractiveness"][1] == pytest.approx(2 / 3, abs=0.02)


@pytest.mark.parametrize("name", FAMILY)
def test_no_sessions(name: str) -> None:
    log = build_click_log([], 3)
    model = make(name)
    model.fit(log)
    assert model.examination(log).tolist() == [0.0, 0.0, 0.0]
    assert model.examined(log).shape == (0, 3)
    assert evaluate(model, log)["log_likelihood"] is None
    assert all(v.shape == (0,) for v in model.labels().values())
