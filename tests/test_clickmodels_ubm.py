"""UBM: it recovers the examination of its own traffic and beats PBM on it."""

from __future__ import annotations

import numpy as np
import pytest

from searchtrail.clickmodels.base import evaluate
from searchtrail.clickmodels.log import build_click_log
from searchtrail.clickmodels.pbm import PBM
from searchtrail.clickmodels.ubm import UBM, previous_click
from tests.clickmodel_traffic import Traffic, ubm_traffic


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return ubm_traffic()  # 60 queries x 10 results, order shuffled, 30,000 sessions


def test_previous_click_is_the_last_clicked_position_above() -> None:
    rows = [(0, "q", list("abcde"), {"b", "d"}), (1, "q", list("abc"), set())]
    log = build_click_log(rows, 5)
    assert previous_click(log).tolist() == [[0, 0, 2, 2, 4], [0, 0, 0, 0, 0]]


def test_ubm_recovers_examination_by_position_and_previous_click(traffic: Traffic) -> None:
    """gamma relative to gamma[1, none] (only gamma * alpha is identified): within 0.04
    where a (position, previous click) was seen 3,000 times or more, within 0.08 where
    1,000 times (the sampling error of a rarer cell; about 0.035 and 0.065 here)."""
    log = build_click_log(traffic.rows, 10)
    model = UBM()
    model.fit(log)
    assert model.fitted is not None
    seen = model.fitted.exam_seen.reshape(10, 11)
    fitted = model.gamma / model.gamma[0, 0]
    truth = traffic.gamma / traffic.gamma[0, 0]
    error = np.abs(fitted - truth)
    assert (seen >= 3000).sum() >= 20
    assert error[seen >= 3000].max() < 0.04, error
    assert error[seen >= 1000].max() < 0.08, error
    assert error[seen >= 1000].mean() < 0.02
    # Attractiveness times gamma[1, none] (identified) close on average.
    alpha = model.labels()["attractiveness"] * model.gamma[0, 0]
    want = np.array(
        [
            traffic.alpha[int(log.queries[q].split()[-1]), int(o.split("-")[1])]
            for q, o in zip(log.pair_query, log.pair_object, strict=True)
        ]
    )
    assert np.abs(alpha - want * traffic.gamma[0, 0]).mean() < 0.03


def test_on_ubm_traffic_ubm_predicts_held_out_clicks_better_than_pbm(traffic: Traffic) -> None:
    train, test = build_click_log(traffic.rows, 10).split()
    scores = {}
    for model in (UBM(), PBM()):
        model.fit(train)
        scores[model.name] = evaluate(model, test)["log_likelihood"]
    assert scores["ubm"] > scores["pbm"] + 0.05, scores


def test_unconditional_clicks_follow_the_model(traffic: Traffic) -> None:
    """The forward pass's P(C_k = 1) matches the click rate per position it predicts."""
    log = build_click_log(traffic.rows, 10)
    model = UBM()
    model.fit(log)
    _, full = model.click_probabilities(log)
    np.testing.assert_allclose(full.mean(axis=0), log.click.mean(axis=0), atol=0.01)
    # Examination: the mean over sessions of gamma at each one's previous click, relative to
    # position 1 as the truth's.
    exam = model.examination(log)
    assert exam[0] == pytest.approx(model.gamma[0, 0])
    truth = traffic.gamma[np.arange(10)[None, :], previous_click(log)].mean(axis=0)
    np.testing.assert_allclose(exam / exam[0], truth / truth[0], atol=0.03)


def test_examined_is_the_posterior(traffic: Traffic) -> None:
    log = build_click_log(traffic.rows[:2000], 10)
    model = UBM()
    model.fit(log)
    examined = model.examined(log)
    prev = previous_click(log)
    g = model.gamma[np.arange(10)[None, :], prev]
    a = model.labels()["attractiveness"][log.pair]
    skipped = ~log.click
    np.testing.assert_allclose(examined[skipped], (g * (1 - a) / (1 - g * a))[skipped])
    assert np.all(examined[log.click] == 1.0)
