"""EM shared by the models where, given the clicks above as observed, each shown result is
clicked independently with probability ``gamma[e] * alpha[p]``: ``p`` is the (query,
object) pair, ``e`` an examination cell (PBM: the position; UBM: the position and the
previous click's). A click means examined and attractive; a skip leaves both unknown, with
posteriors ``alpha (1 - gamma) / (1 - gamma alpha)`` (attractive) and
``gamma (1 - alpha) / (1 - gamma alpha)`` (examined).

The steps work on cells, the distinct (pair group, examination cell) combinations with
their counts of clicks and skips, since the posteriors depend on nothing else. Pairs
shown once are grouped by where they were shown and whether clicked: all pairs of a group
have the same history, so EM gives them the same attractiveness at every iteration, and
logs where most pairs are seen once (a long tail) shrink to a few cells. Every iteration
is then two gathers and two ``np.bincount`` over at most as many cells as shown results.

Initialization: every ``alpha`` and ``gamma`` at ``INIT`` (0.5, as PyClick). The M step of
``alpha`` adds ``prior_weight`` pseudo-impressions at the prior, the impression-weighted
mean attractiveness of the iteration (``INIT`` with no impressions at all): a pair seen
once is pulled towards the average, a pair never seen takes it. An examination cell never
seen keeps ``INIT`` (its models fill it). Values stay inside ``[EPS, 1 - EPS]``.

Stopping: after ``max_iterations`` or as soon as no identified value moved by more than
``tolerance`` in an iteration. Only ``gamma * alpha`` is identified (``gamma c`` and
``alpha / c`` fit as well, and EM drifts slowly along that ridge), so the values compared
are ``gamma / gamma[0]`` and ``alpha * gamma[0]`` (cell 0: position 1 with nothing above
it), not the raw ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from searchtrail.clickmodels.base import EPS

__all__ = ["INIT", "Cells", "EMFit", "cells", "fit_em", "skip_posterior"]

INIT = 0.5
# Aggregate through a dense (groups x cells) grid only when it is no larger than this
# many times the shown results (else by sorting).
_DENSE_FACTOR = 4


@dataclass(frozen=True)
class Cells:
    group: np.ndarray  # (cells,) int64: the pair group
    exam: np.ndarray  # (cells,) int64
    clicks: np.ndarray  # (cells,) float64
    skips: np.ndarray  # (cells,) float64
    members: np.ndarray  # (groups,) float64: pairs in each group
    pair_group: np.ndarray  # (pairs,) int64: each pair's group, -1 if never shown
    exams: int


@dataclass(frozen=True)
class EMFit:
    alpha: np.ndarray  # (pairs,)
    gamma: np.ndarray  # (exams,)
    exam_seen: np.ndarray  # (exams,) impressions of each examination cell
    prior_alpha: float
    iterations: int
    converged: bool


def cells(pair: np.ndarray, exam: np.ndarray, click: np.ndarray, pairs: int, exams: int) -> Cells:
    """The cells of the shown results ``pair``, ``exam``, ``click`` (1-d, same length)."""
    pair = pair.astype(np.int64)
    exam = exam.astype(np.int64)
    n_pair = np.bincount(pair, minlength=pairs)
    several = n_pair > 1
    own = np.cumsum(several) - 1
    shared = int(several.sum())
    pair_group = np.where(several, own, -1)
    once = ~several[pair]
    pair_group[pair[once]] = shared + 2 * exam[once] + click[once]
    groups = shared + 2 * exams
    key = pair_group[pair] * exams + exam
    if groups * exams <= _DENSE_FACTOR * max(len(key), 1):
        n = np.bincount(key, minlength=groups * exams)
        c = np.bincount(key, weights=click, minlength=groups * exams)
        used = np.flatnonzero(n)
        n, c = n[used], c[used]
    else:
        used, inverse = np.unique(key, return_inverse=True)
        n = np.bincount(inverse, minlength=len(used))
        c = np.bincount(inverse, weights=click, minlength=len(used))
    members = np.bincount(pair_group[pair_group >= 0], minlength=groups).astype(np.float64)
    return Cells(used // exams, used % exams, c, n - c, members, pair_group, exams)


def skip_posterior(gamma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """P(examined | not clicked) = gamma (1 - alpha) / (1 - gamma alpha)."""
    return gamma * (1 - alpha) / np.maximum(1 - gamma * alpha, EPS)  # type: ignore[no-any-return]


def fit_em(c: Cells, *, max_iterations: int, tolerance: float, prior_weight: float) -> EMFit:
    groups, exams = len(c.members), c.exams
    n = c.clicks + c.skips
    n_group = np.bincount(c.group, weights=n, minlength=groups)
    n_exam = np.bincount(c.exam, weights=n, minlength=exams)
    total = float(n_group.sum())
    seen_exam = n_exam > 0
    pseudo = prior_weight * c.members
    alpha = np.full(groups, INIT)
    gamma = np.full(exams, INIT)
    prior = INIT
    iterations, converged = 0, False
    while iterations < max_iterations and not converged:
        iterations += 1
        a, g = alpha[c.group], gamma[c.exam]
        ratio = c.skips / np.maximum(1 - g * a, EPS)
        sum_a = np.bincount(c.group, weights=c.clicks + ratio * a * (1 - g), minlength=groups)
        sum_e = np.bincount(c.exam, weights=c.clicks + ratio * g * (1 - a), minlength=exams)
        prior = float(np.clip(sum_a.sum() / total, EPS, 1 - EPS)) if total > 0 else INIT
        with np.errstate(invalid="ignore", divide="ignore"):
            new_alpha = np.where(
                n_group + pseudo > 0, (sum_a + pseudo * prior) / (n_group + pseudo), prior
            )
            new_gamma = np.where(seen_exam, sum_e / np.where(seen_exam, n_exam, 1.0), gamma)
        new_alpha = np.clip(new_alpha, EPS, 1 - EPS)
        new_gamma = np.clip(new_gamma, EPS, 1 - EPS)
        # Only gamma * alpha is identified: the change is measured on gamma relative to
        # the first cell's and on alpha times it, not on the scale, which drifts slowly.
        old_scale, new_scale = (gamma[0], new_gamma[0]) if exams and seen_exam[0] else (1, 1)
        change = max(
            float(np.abs(new_alpha * new_scale - alpha * old_scale).max(initial=0.0)),
            float(np.abs(new_gamma / new_scale - gamma / old_scale).max(initial=0.0)),
        )
        alpha, gamma = new_alpha, new_gamma
        converged = change < tolerance
    padded = np.append(alpha, prior)  # the last entry: pairs never shown
    pair_alpha = padded[np.where(c.pair_group >= 0, c.pair_group, groups)]
    return EMFit(pair_alpha, gamma, n_exam, prior, iterations, converged)
