"""Synthetic click traffic from known parameters, for the click models' tests.

Each generator returns rows for ``build_click_log`` (``(created_at_ms, query, result_ids,
clicked)``, one per session, in time order) and the truth they were drawn from. Query
``q`` shows results ``q-0`` to ``q-{results - 1}`` in an order shuffled per session, so
every pair is seen at every position; ``alpha[q, r]`` is the attractiveness of ``q-r``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PBM_GAMMA", "Traffic", "pbm_traffic", "ubm_gamma", "ubm_traffic"]

Row = tuple[int, object, Sequence[str], set[str]]

PBM_GAMMA = np.array([1.0, 0.85, 0.7, 0.58, 0.48, 0.4, 0.33, 0.28, 0.24, 0.2])


@dataclass(frozen=True)
class Traffic:
    rows: list[Row]
    alpha: np.ndarray  # (queries, results)
    gamma: np.ndarray  # PBM: (results,); UBM: (results, results + 1)
    shown: np.ndarray  # (sessions, results): the result index shown at each position
    query: np.ndarray  # (sessions,)


def _layout(
    rng: np.random.Generator, queries: int, results: int, sessions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alpha = rng.uniform(0.05, 0.9, size=(queries, results))
    query = rng.integers(0, queries, size=sessions)
    shown = rng.permuted(np.tile(np.arange(results), (sessions, 1)), axis=1)
    return alpha, query, shown


def _rows(query: np.ndarray, shown: np.ndarray, click: np.ndarray) -> list[Row]:
    return [
        (
            s,
            f"query {q}",
            [f"{q}-{r}" for r in order],
            {f"{q}-{r}" for r, c in zip(order, clicked, strict=True) if c},
        )
        for s, (q, order, clicked) in enumerate(
            zip(query.tolist(), shown.tolist(), click.tolist(), strict=True)
        )
    ]


def pbm_traffic(
    seed: int = 1, queries: int = 60, results: int = 10, sessions: int = 30_000
) -> Traffic:
    """P(C_k = 1) = PBM_GAMMA[k] * alpha, independently."""
    rng = np.random.default_rng(seed)
    alpha, query, shown = _layout(rng, queries, results, sessions)
    gamma = PBM_GAMMA[:results]
    p = gamma[None, :] * alpha[query[:, None], shown]
    click = rng.random(p.shape) < p
    return Traffic(_rows(query, shown, click), alpha, gamma, shown, query)


def ubm_gamma(results: int) -> np.ndarray:
    """gamma[k, j] (j: the last click above, 1-based; 0: none): examination falls with the
    distance to the last click, more steeply when there was none."""
    gamma = np.zeros((results, results + 1))
    for k in range(results):
        gamma[k, 0] = 0.95 * 0.8**k
        for j in range(1, k + 1):
            gamma[k, j] = 0.9 * 0.88 ** (k - j)
    return gamma


def ubm_traffic(
    seed: int = 2, queries: int = 60, results: int = 10, sessions: int = 30_000
) -> Traffic:
    """P(C_k = 1 | clicks above) = ubm_gamma[k, last click above] * alpha."""
    rng = np.random.default_rng(seed)
    alpha, query, shown = _layout(rng, queries, results, sessions)
    gamma = ubm_gamma(results)
    a = alpha[query[:, None], shown]
    u = rng.random(a.shape)
    click = np.zeros(a.shape, dtype=bool)
    last = np.zeros(sessions, dtype=np.int64)
    for k in range(results):
        click[:, k] = u[:, k] < gamma[k, last] * a[:, k]
        last = np.where(click[:, k], k + 1, last)
    return Traffic(_rows(query, shown, click), alpha, gamma, shown, query)
