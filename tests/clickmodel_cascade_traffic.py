"""Synthetic click logs from known parameters: the cascade family's chain, and PBM.

Each session picks a query uniformly and shows its results in a random order (so each
pair is seen at every position). Object ``d`` of query ``q`` is ``"q{q}-d{d}"``; the
returned truth arrays are indexed by the log's pairs. ``chain_log`` follows the chain of
``searchtrail.clickmodels.cascade``: examine position 1; click with alpha; after a
click stop with sigma; go on with gamma. The cascade model is sigma = 1 and gamma = 1;
SDBN is gamma = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from searchtrail.clickmodels.log import ClickLog, build_click_log


@dataclass(frozen=True)
class Traffic:
    log: ClickLog
    alpha: np.ndarray  # (pairs,) the true attractiveness
    sigma: np.ndarray  # (pairs,) the true satisfaction (1 for cascade traffic)


def parameters(
    rng: np.random.Generator, queries: int, results: int
) -> tuple[np.ndarray, np.ndarray]:
    """alpha in [0.05, 0.9] and sigma in [0.2, 0.9], (queries, results) each."""
    return (
        rng.uniform(0.05, 0.9, (queries, results)),
        rng.uniform(0.2, 0.9, (queries, results)),
    )


def _shown(
    rng: np.random.Generator, queries: int, results: int, sessions: int
) -> tuple[np.ndarray, np.ndarray]:
    query = rng.integers(queries, size=sessions)
    order = np.argsort(rng.random((sessions, results)), axis=1)
    return query, order


def _traffic(
    query: np.ndarray, order: np.ndarray, click: np.ndarray, alpha: np.ndarray, sigma: np.ndarray
) -> Traffic:
    rows = [
        (s, f"q{q}", [f"q{q}-d{d}" for d in docs], {f"q{q}-d{d}" for d in docs[clicked]})
        for s, (q, docs, clicked) in enumerate(zip(query, order, click, strict=True))
    ]
    log = build_click_log(rows, order.shape[1])
    qd = np.array([[int(x) for x in o[1:].split("-d")] for o in log.pair_object])
    return Traffic(log, alpha[qd[:, 0], qd[:, 1]], sigma[qd[:, 0], qd[:, 1]])


def chain_clicks(
    rng: np.random.Generator, a: np.ndarray, s: np.ndarray, gamma: float
) -> np.ndarray:
    """(sessions, positions) clicks of the chain with per-slot alpha ``a`` and sigma ``s``."""
    sessions, positions = a.shape
    click = np.zeros((sessions, positions), dtype=bool)
    examining = np.ones(sessions, dtype=bool)
    for k in range(positions):
        click[:, k] = examining & (rng.random(sessions) < a[:, k])
        satisfied = click[:, k] & (rng.random(sessions) < s[:, k])
        examining &= ~satisfied & (rng.random(sessions) < gamma)
    return click


def chain_log(
    seed: int,
    *,
    queries: int,
    results: int,
    sessions: int,
    gamma: float,
    satisfaction: bool = True,
) -> Traffic:
    """Chain traffic; ``satisfaction=False`` makes sigma = 1 (the cascade model with gamma = 1)."""
    rng = np.random.default_rng(seed)
    alpha, sigma = parameters(rng, queries, results)
    if not satisfaction:
        sigma = np.ones_like(sigma)
    query, order = _shown(rng, queries, results, sessions)
    a, s = alpha[query[:, None], order], sigma[query[:, None], order]
    return _traffic(query, order, chain_clicks(rng, a, s, gamma), alpha, sigma)


def pbm_log(seed: int, *, queries: int, results: int, sessions: int) -> Traffic:
    """PBM traffic: position k is examined with 0.9 / (k + 1) ** 0.7, independently."""
    rng = np.random.default_rng(seed)
    alpha, sigma = parameters(rng, queries, results)
    query, order = _shown(rng, queries, results, sessions)
    theta = 0.9 / np.arange(1, results + 1) ** 0.7
    a = alpha[query[:, None], order]
    click = (rng.random(a.shape) < theta) & (rng.random(a.shape) < a)
    return _traffic(query, order, click, alpha, np.full_like(sigma, np.nan))
