"""PBM: it recovers the parameters of its own traffic, beats COEC on it, and keeps finite,
documented answers on degenerate logs (for COEC and ``evaluate`` too)."""

from __future__ import annotations

import numpy as np
import pytest

from searchtrail import Clickstream
from searchtrail.clickmodels.base import evaluate, relative
from searchtrail.clickmodels.coec import COEC
from searchtrail.clickmodels.log import build_click_log, read_click_log
from searchtrail.clickmodels.pbm import PBM
from searchtrail.clickmodels.registry import MODELS, make
from searchtrail.clickmodels.ubm import UBM
from searchtrail.storage import MetricsScope
from searchtrail.timestamps import now_ms
from tests.clickmodel_traffic import Traffic, pbm_traffic


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return pbm_traffic()  # 60 queries x 10 results, order shuffled, 30,000 sessions


def test_pbm_recovers_relative_examination_within_003(traffic: Traffic) -> None:
    log = build_click_log(traffic.rows, 10)
    model = PBM()
    model.fit(log)
    fitted = np.array(relative(model.examination(log)))
    truth = traffic.gamma / traffic.gamma[0]
    assert np.abs(fitted - truth).max() < 0.03, (fitted, truth)  # about 0.013 here
    # Attractiveness on the same scale (alpha * gamma_1, identified): close on average.
    names = np.array([f"{q}-{r}" for q in range(60) for r in range(10)])
    alpha = model.labels()["attractiveness"] * model.gamma[0]
    index = {
        (log.queries[q], o): p
        for p, (q, o) in enumerate(zip(log.pair_query, log.pair_object, strict=True))
    }
    want = np.array([traffic.alpha[int(n.split("-")[0]), int(n.split("-")[1])] for n in names])
    got = np.array([alpha[index[(f"query {n.split('-')[0]}", n)]] for n in names])
    assert np.abs(got - want).mean() < 0.03
    params = model.params()
    assert params["converged"] and params["iterations"] < params["max_iterations"]


def test_on_pbm_traffic_pbm_predicts_held_out_clicks_better_than_coec(traffic: Traffic) -> None:
    train, test = build_click_log(traffic.rows, 10).split()
    scores = {}
    for model in (PBM(), COEC()):
        model.fit(train)
        scores[model.name] = evaluate(model, test)["log_likelihood"]
    assert scores["pbm"] > scores["coec"], scores


def test_pbm_examined_is_the_posterior(traffic: Traffic) -> None:
    log = build_click_log(traffic.rows[:2000], 10)
    model = PBM()
    model.fit(log)
    examined = model.examined(log)
    assert np.all(examined[log.click] == 1.0)
    g, a = model.gamma[None, :], model.labels()["attractiveness"][np.maximum(log.pair, 0)]
    want = g * (1 - a) / (1 - g * a)
    skipped = log.shown & ~log.click
    np.testing.assert_allclose(examined[skipped], want[skipped])
    assert np.all(examined[skipped] <= model.gamma[None, :].repeat(log.sessions, 0)[skipped])


def test_pairs_unseen_in_training_take_the_prior() -> None:
    rows = [(i, "q", ["a", "b"], {"a"} if i % 2 else set()) for i in range(50)]
    rows.append((99, "q", ["new", "b"], set()))  # latest: the test set
    train, test = build_click_log(rows, 2).split(test_fraction=1 / 51)
    model = PBM()
    model.fit(train)
    new = test.pair[0, 0]
    assert model.labels()["attractiveness"][new] == pytest.approx(model.prior_alpha)
    conditional, _ = model.click_probabilities(test)
    assert conditional[0, 0] == pytest.approx(model.gamma[0] * model.prior_alpha)
    assert 0 < model.prior_alpha < 1


def test_both_models_are_registered() -> None:
    assert {"coec", "pbm", "ubm"} <= set(MODELS)
    assert isinstance(make("pbm"), PBM)
    assert isinstance(make("ubm"), UBM)


# -- degenerate input: documented, finite output -------------------------------------

_NO_CLICKS = [(i, f"q{i % 3}", ["a", "b", "c"], set()) for i in range(40)]
_ONE_POSITION = [
    (i, "q", ["a", "b"][i % 2 : i % 2 + 1], {"a"} if i % 3 == 0 else set()) for i in range(40)
]
_SEEN_ONCE = [
    (0, "only once", ["x", "y"], {"y"}),
    *[(i, "q", ["a", "b"], {"a"}) for i in range(1, 30)],
]


def _finite(model: object, log: object) -> dict[str, object]:
    from searchtrail.clickmodels.base import ClickModel
    from searchtrail.clickmodels.log import ClickLog

    assert isinstance(log, ClickLog)
    m: ClickModel = model  # type: ignore[assignment]
    m.fit(log)
    conditional, full = m.click_probabilities(log)
    for values in (conditional, full, m.examined(log)):
        assert np.all(np.isfinite(values[log.shown])), values
        assert np.all(np.isnan(values[~log.shown]))
        assert np.all((values[log.shown] >= 0) & (values[log.shown] <= 1))
    assert np.all(np.isfinite(m.examination(log)))
    assert np.all(np.isfinite(m.labels()["attractiveness"]))
    result = evaluate(m, log)
    assert np.isfinite(result["log_likelihood"])
    assert all(p is None or np.isfinite(p) for p in result["perplexity_by_position"])
    return result


@pytest.mark.parametrize("name", ["coec", "pbm", "ubm"])
def test_no_clicks_gives_finite_output(name: str) -> None:
    log = build_click_log(_NO_CLICKS, 3)
    model = make(name)
    _finite(model, log)
    # No click: predicted clicks go to about 0 (PBM, UBM: gamma * alpha, split between the
    # two as the data cannot tell; COEC: a click-through rate of 0, every COEC 1).
    conditional, full = model.click_probabilities(log)
    assert np.nanmax(conditional) < 0.01
    assert np.nanmax(full) < 0.01
    if name == "coec":
        assert np.all(model.labels()["attractiveness"] == 1.0)


@pytest.mark.parametrize("name", ["coec", "pbm", "ubm"])
def test_one_position_gives_finite_output(name: str) -> None:
    log = build_click_log(_ONE_POSITION, 1)
    _finite(make(name), log)


@pytest.mark.parametrize("name", ["coec", "pbm", "ubm"])
def test_a_query_seen_once_gives_finite_output(name: str) -> None:
    log = build_click_log(_SEEN_ONCE, 2)
    model = make(name)
    _finite(model, log)
    alpha = model.labels()["attractiveness"]
    y = log.pair_object.index("y")
    assert alpha[y] > 0 and np.isfinite(alpha[y])


@pytest.mark.parametrize("name", ["coec", "pbm", "ubm"])
def test_an_empty_log_and_positions_never_shown(name: str) -> None:
    empty = build_click_log([], 3)
    model = make(name)
    model.fit(empty)
    assert evaluate(model, empty) == {
        "sessions": 0,
        "log_likelihood": None,
        "perplexity": None,
        "perplexity_by_position": [None, None, None],
    }
    # Fitted on short lists, asked about a longer one: the unseen positions get values.
    short = build_click_log([(i, "q", ["a"], {"a"} if i % 2 else set()) for i in range(20)], 3)
    model.fit(short)
    assert np.all(np.isfinite(model.examination(short)))


def test_read_click_log_reads_sessions_and_clicks_from_the_database(cs: Clickstream) -> None:
    """Through storage: order kept, a repeated object at its first position only, click
    types filtered, events on unshown objects and irrelevant sessions left out."""
    t0 = now_ms() - 600_000
    shown = {"s1": "abca", "s2": "bd", "s3": "ab", "s4": "xy"}
    for i, (sid, objects) in enumerate(shown.items()):
        cs.create_session(
            session_id=sid,
            search_query="Red Shoes" if sid != "s3" else {"text": "boots"},
            user_id="u",
            created_at=t0 + i,
            search_results=[{"object_id": o} for o in objects],
        )
    cs.push_events("s1", [{"object_id": "c", "event_type": "click"}, {"object_id": "z"}])
    cs.push_events("s2", [{"object_id": "d", "event_type": "purchase"}])
    cs.push_events("s2", [{"object_id": "b", "event_type": "hover"}])
    cs.push_events("s4", [{"object_id": "x", "event_type": "click"}])
    cs.mark_irrelevant("s4")
    log = read_click_log(cs.storage.reads, MetricsScope(), max_position=3)
    assert log.sessions == 3
    assert log.time_ms.tolist() == [t0, t0 + 1, t0 + 2]
    objects = [[log.pair_object[p] if p >= 0 else None for p in row] for row in log.pair]
    assert objects == [["a", "b", "c"], ["b", "d", None], ["a", "b", None]]
    assert log.click.tolist() == [[False, False, True], [False, True, False], [False] * 3]
    # Sessions 1 and 2 share a query (as the metrics group them), session 3 has its own.
    assert log.query[0] == log.query[1] != log.query[2]
    assert log.pairs == 6  # (red shoes: a b c d), (boots: a b)
    model = PBM()
    model.fit(log)
    assert np.isfinite(evaluate(model, log)["log_likelihood"])
