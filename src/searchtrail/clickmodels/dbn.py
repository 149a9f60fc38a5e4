"""DBN: the dynamic Bayesian network click model (Chapelle & Zhang 2009).

The chain of ``cascade`` with attractiveness ``alpha`` and satisfaction ``sigma`` per
(query, object) pair and one continuation ``gamma`` for the whole log (as PyClick),
fitted by EM; ``DBN(gamma=x)`` holds gamma at x instead.

EM. The hidden variables are each position's examination E_k, the satisfaction S_k at a
click, and the decision to go on after an examined, unsatisfied position; the
attraction of an unclicked result is summed out (a click is Bernoulli(alpha) given
examination), so EM takes longer strides than with it hidden too. The E-step
(``Chain.posterior``: a backward pass for P(no click at k or below | E_k = 1), then a
forward pass below the last click; loops over positions, numpy across sessions) gives
per session:

- P(E_k = 1 | clicks): 1 down to the last click l, the chain's posterior below it;
- P(S_l = 1 | clicks) = sigma_l / P(what follows l | the click at l); every earlier
  click was unsatisfied (the user went on and clicked again).

The M-step counts them, with PyClick's prior (one hit in two trials, so a pair never
seen is 0.5 and nothing is 0 or 1):

- alpha = (clicks + 1) / (sum of P(E_k = 1 | clicks) over its impressions + 2);
- sigma = (sum of P(S = 1 | clicks) over its clicks + 1) / (clicks + 2);
- gamma = (sum of P(E_k+1 = 1) + 1) / (sum of P(E_k = 1, not satisfied at k) + 2),
  over the shown positions with another shown below (the last one's step is never
  observed; with none at all, as at max_position 1, gamma is 0.5).

Stopping rule: from alpha = sigma = 0.5 and gamma = 0.9, it stops when no alpha, sigma
or gamma moved by more than ``tol`` (1e-4) in an iteration, or after ``max_iter`` (200)
iterations; ``params()`` says how many it ran and whether it converged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels.cascade import CascadeFamily, Chain, smoothed
from searchtrail.clickmodels.log import ClickLog

__all__ = ["DBN"]


class DBN(CascadeFamily):
    name: ClassVar[str] = "dbn"

    def __init__(
        self, gamma: float | None = None, *, tol: float = 1e-4, max_iter: int = 200
    ) -> None:
        super().__init__()
        self.fixed_gamma = gamma
        self.gamma = 0.9 if gamma is None else gamma
        self.tol = tol
        self.max_iter = max_iter
        self.iterations = 0
        self.converged = False

    def fit(self, log: ClickLog) -> None:
        chain = Chain.of(log)
        shown = chain.shown
        everywhere = bool(shown.all())  # the usual case: no boolean gather per iteration
        pairs_shown = chain.pair.ravel() if everywhere else chain.pair[shown]
        clicks = np.bincount(chain.pair[chain.click], minlength=log.pairs)
        has = chain.last >= 0
        last_pair = chain.pair[chain.last[has], np.flatnonzero(has)]
        # A gamma step leaves a shown position with another shown one below it.
        below = np.flip(np.logical_or.accumulate(np.flip(shown, 0), 0), 0)
        step = shown[:-1] & below[1:]
        last_steps = has & (chain.last < chain.positions - 1)
        last_steps[last_steps] = step[chain.last[last_steps], np.flatnonzero(last_steps)]
        alpha, sigma = np.full(log.pairs, 0.5), np.full(log.pairs, 0.5)
        gamma = 0.9 if self.fixed_gamma is None else self.fixed_gamma
        self.iterations, self.converged = 0, False
        while self.iterations < self.max_iter and not self.converged:
            post, satisfied = chain.posterior(alpha, sigma, gamma)
            new_alpha = smoothed(
                clicks,
                np.bincount(
                    pairs_shown,
                    weights=post.ravel() if everywhere else post[shown],
                    minlength=log.pairs,
                ),
            )
            new_sigma = smoothed(
                np.bincount(last_pair, weights=satisfied[has], minlength=log.pairs), clicks
            )
            new_gamma = gamma
            if self.fixed_gamma is None:
                went_on = post[1:][step].sum()
                could = post[:-1][step].sum() - satisfied[last_steps].sum()
                new_gamma = float(smoothed(np.array(went_on), np.array(could)))
            moved = max(
                float(np.abs(new_alpha - alpha).max(initial=0.0)),
                float(np.abs(new_sigma - sigma).max(initial=0.0)),
                abs(new_gamma - gamma),
            )
            alpha, sigma, gamma = new_alpha, new_sigma, new_gamma
            self.iterations += 1
            self.converged = moved <= self.tol
        self.alpha, self.sigma, self.gamma = alpha, sigma, gamma

    def params(self) -> dict[str, Any]:
        return {
            "gamma": float(self.gamma),
            "gamma_fitted": self.fixed_gamma is None,
            "iterations": self.iterations,
            "converged": self.converged,
        }
