"""The cascade model (Craswell et al. 2008) and the chain that the cascade family shares.

The cascade family (cascade, DBN, SDBN) is one chain over the shown positions, top
down. Position 1 is examined; an examined result is clicked with its pair's
attractiveness ``alpha``; after a click the user is satisfied with the pair's
satisfaction ``sigma`` and stops; otherwise (clicked and not satisfied, or not clicked)
the next position is examined with the continuation ``gamma``, one number for the whole
log. A position where nothing was shown (a duplicate's later copy, or past the end of a
short list) is skipped: the chain passes it without a click and without a gamma step.

- cascade: sigma = 1 and gamma = 1 (the user scans until the first click, then leaves);
- SDBN (``sdbn``): gamma = 1, alpha and sigma per pair;
- DBN (``dbn``): alpha and sigma per pair, gamma fitted.

``CascadeFamily`` answers the protocol for any such (alpha, sigma, gamma): click
probabilities (conditional on the clicks above, and unconditional), examination, and
the posterior examination given a session's clicks. ``Chain`` holds a log as (position,
session) arrays: a loop over the at most ``max_position`` positions, numpy across
sessions.

The cascade model's fit follows PyClick's CascadeModel: a session counts its positions
down to and including its first click (all its shown positions when it has no click),
and alpha = (clicks + 1) / (impressions + 2) over those: a pair never seen has 0.5 and
none is 0 or 1. Sessions with several clicks cannot happen under the model; training
reads their first click and ignores the rest (``params()`` counts them). Predicting,
the cascade model gives any click below the first probability 0 given the clicks above
(the user left); ``evaluate`` clips that to ``base.EPS``, so each later click costs
log(EPS) = -13.8 in the log-likelihood, the penalty that makes DBN or SDBN the better
choice on such logs. Its posterior examination is 1 down to the last click and 0 below
it (1 everywhere in a session without clicks: the user scanned the whole list).

Degenerate input gives numbers, never NaN where something was shown: a pair seen in no
training session (a query seen once, in the test set only) takes alpha = sigma = 0.5; a
log without clicks gives alpha = 1 / (examinations + 2) and sigma = 0.5 (DBN lowers
gamma instead of counting every position as examined, so its lower positions keep alpha
nearer 0.5); DBN on a log of one position keeps gamma = 0.5; an empty log gives empty
labels, examination 0 at every position and no log-likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels.log import ClickLog

__all__ = ["PRIOR", "Cascade", "CascadeFamily", "Chain", "per_pair", "smoothed"]

# What a pair never seen in training takes, for alpha and sigma alike.
PRIOR = 0.5


def smoothed(hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """(hits + 1) / (trials + 2), PyClick's MLE with its prior: never 0 or 1, 0.5 unseen."""
    return (np.asarray(hits, dtype=np.float64) + 1.0) / (np.asarray(trials) + 2.0)


def per_pair(values: np.ndarray, pairs: int) -> np.ndarray:
    """``values`` for ``pairs`` pairs: pairs beyond those fitted take ``PRIOR``."""
    if len(values) >= pairs:
        return values
    return np.concatenate([values, np.full(pairs - len(values), PRIOR)])


@dataclass(frozen=True)
class Chain:
    """A log's sessions as (position, session) arrays, contiguous per position."""

    pair: np.ndarray  # (M, S) int32, 0 where nothing was shown (use ``shown``)
    shown: np.ndarray  # (M, S) bool
    click: np.ndarray  # (M, S) bool, only where shown
    last: np.ndarray  # (S,) int64: the position (0-based) of the last click, -1 if none

    @classmethod
    def of(cls, log: ClickLog) -> Chain:
        shown = np.ascontiguousarray(log.shown.T)
        click = np.ascontiguousarray((log.click & log.shown).T)
        m = log.max_position
        last = np.full(log.sessions, -1, dtype=np.int64)
        if m:
            reverse_first = np.argmax(click[::-1], axis=0)
            last = np.where(click.any(axis=0), m - 1 - reverse_first, -1)
        pair = np.ascontiguousarray(np.maximum(log.pair, 0).T)
        return cls(pair, shown, click, last)

    @property
    def positions(self) -> int:
        return int(self.pair.shape[0])

    @property
    def sessions(self) -> int:
        return int(self.pair.shape[1])

    def at(self, values: np.ndarray, k: int, blank: float) -> np.ndarray:
        """(S,): the pair values at position k, ``blank`` where nothing was shown."""
        return np.where(self.shown[k], values[self.pair[k]], blank)

    def gamma(self, gamma: float, k: int) -> np.ndarray:
        """(S,): the continuation from position k: gamma where shown, 1 (skipped) elsewhere."""
        return np.where(self.shown[k], gamma, 1.0)

    def posterior(
        self, alpha: np.ndarray, sigma: np.ndarray, gamma: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(E_k = 1 | the session's clicks), (M, S) (skipped positions pass their next
        shown one's value on), and P(satisfied at the last click | clicks), (S,) (0 for
        sessions without clicks).

        Down to the last click l every position was examined. Below it, with
        ``beta[k]`` = P(no click at k or below | E_k = 1) by a backward pass and
        ``enter`` = P(E_{l+1} = 1 | the clicks down to l) = (1 - sigma_l) gamma (1 without
        clicks), a forward pass gives P(E_k = 1, no click from l+1 to k-1) and the
        session's tail likelihood is 1 - enter + enter * beta[l + 1].
        """
        m, s = self.positions, self.sessions
        cols = np.arange(s)
        beta = np.ones((m + 1, s))
        for k in reversed(range(m)):
            g = self.gamma(gamma, k)
            beta[k] = (1.0 - self.at(alpha, k, 0.0)) * (1.0 - g + g * beta[k + 1])
        has = self.last >= 0
        sigma_last = np.where(has, sigma[self.pair[np.maximum(self.last, 0), cols]], 0.0)
        enter = np.where(has, (1.0 - sigma_last) * gamma, 1.0)
        tail = np.maximum(1.0 - enter + enter * beta[self.last + 1, cols], 1e-300)
        # Forward, top down; beta[k] becomes the posterior in place once it is used.
        f = enter
        for k in range(m):
            below = k > self.last
            f = np.where(k == self.last + 1, enter, f)
            beta[k] = np.where(below, f * beta[k] / tail, 1.0)
            f = f * (1.0 - self.at(alpha, k, 0.0)) * self.gamma(gamma, k)
        return beta[:m], np.where(has, sigma_last / tail, 0.0)

    def forward(
        self, alpha: np.ndarray, sigma: np.ndarray, gamma: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, S) each: P(C_k = 1 | the clicks above), P(C_k = 1) and P(E_k = 1)."""
        m, s = self.positions, self.sessions
        conditional, full, exam = np.empty((m, s)), np.empty((m, s)), np.empty((m, s))
        e_full, e_cond = np.ones(s), np.ones(s)
        for k in range(m):
            a, sat, g = self.at(alpha, k, 0.0), self.at(sigma, k, 0.0), self.gamma(gamma, k)
            exam[k] = e_full
            full[k] = a * e_full
            conditional[k] = a * e_cond
            e_full = e_full * g * (1.0 - a * sat)
            # Not clicked: Bayes on "not examined, or examined and not attracted".
            no_click = 1.0 - a * e_cond
            stayed = np.divide(e_cond * (1.0 - a), no_click, out=np.zeros(s), where=no_click > 0)
            e_cond = g * np.where(self.click[k], 1.0 - sat, stayed)
        return conditional, full, exam


class CascadeFamily:
    """The protocol for a chain of per-pair alpha and sigma and one gamma; the subclasses
    fit them."""

    name: ClassVar[str]
    has_satisfaction: ClassVar[bool] = True

    def __init__(self) -> None:
        self.alpha = np.zeros(0)
        self.sigma = np.zeros(0)
        self.gamma = 1.0

    def fit(self, log: ClickLog) -> None:
        raise NotImplementedError

    def _values(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        return per_pair(self.alpha, log.pairs), per_pair(self.sigma, log.pairs)

    def click_probabilities(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        conditional, full, _ = Chain.of(log).forward(*self._values(log), self.gamma)
        shown = log.shown
        return np.where(shown, conditional.T, np.nan), np.where(shown, full.T, np.nan)

    def examination(self, log: ClickLog) -> np.ndarray:
        """The mean of P(E_k = 1) over the sessions that show position k (0 where none
        does); it depends on the pairs each session showed above k."""
        chain = Chain.of(log)
        _, _, exam = chain.forward(*self._values(log), self.gamma)
        counts = chain.shown.sum(axis=1)
        sums = np.where(chain.shown, exam, 0.0).sum(axis=1)
        out = np.zeros(len(counts))
        np.divide(sums, counts, out=out, where=counts > 0)
        return out

    def examined(self, log: ClickLog) -> np.ndarray:
        """1 down to the session's last click; below it what the chain says given no
        further click (1 everywhere in a session without clicks when gamma = 1)."""
        post, _ = Chain.of(log).posterior(*self._values(log), self.gamma)
        return np.where(log.shown, post.T, np.nan)

    def labels(self) -> dict[str, np.ndarray]:
        if not self.has_satisfaction:
            return {"attractiveness": self.alpha}
        return {"attractiveness": self.alpha, "satisfaction": self.sigma}

    def params(self) -> dict[str, Any]:
        return {"gamma": float(self.gamma)}


class Cascade(CascadeFamily):
    name: ClassVar[str] = "cascade"
    has_satisfaction: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.multi_click_sessions = 0

    def fit(self, log: ClickLog) -> None:
        shown, click = log.shown, log.click & log.shown
        # Positions up to and including the first click; all shown ones without a click.
        before_first = np.cumsum(click, axis=1) - click == 0
        counted = shown & before_first
        self.alpha = smoothed(
            np.bincount(log.pair[counted & click], minlength=log.pairs),
            np.bincount(log.pair[counted], minlength=log.pairs),
        )
        self.sigma = np.ones(log.pairs)
        self.gamma = 1.0
        self.multi_click_sessions = int((click.sum(axis=1) > 1).sum())

    def _values(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        return per_pair(self.alpha, log.pairs), np.ones(log.pairs)

    def params(self) -> dict[str, Any]:
        return {"multi_click_sessions": self.multi_click_sessions}
