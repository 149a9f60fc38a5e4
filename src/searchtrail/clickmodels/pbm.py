"""PBM, the position-based model: P(C_k = 1) = gamma_k * alpha(pair), clicks independent.

``gamma_k`` is the probability that position k is examined, ``alpha`` the attractiveness
of the (query, object) pair. Fitted by EM (``_em``): every parameter starts at 0.5; each
pair's attractiveness gets ``prior_weight`` (1) pseudo-impression at the prior, the
impression-weighted mean attractiveness, which a pair unseen in training takes. Stops
after ``max_iterations`` (100) or once no parameter moves by more than ``tolerance``
(1e-4) in an iteration. A position never shown in training takes the examination of the
last position above it that was (0.5 when none was).

Only the product gamma * alpha is identified (gamma * c and alpha / c fit as well):
compare examination relative to position 1 (``base.relative``) and attractiveness
within a fit. Degenerate input gives finite values: with no click at all gamma * alpha
goes towards 0 (about 1e-3 when the tolerance stops EM), its split between the two not
informed by the data; a pair seen once sits between its one outcome and the prior.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels._em import INIT, EMFit, cells, fit_em, skip_posterior
from searchtrail.clickmodels.log import ClickLog

__all__ = ["PBM", "pair_values"]


def pair_values(values: np.ndarray, prior: float, pair: np.ndarray) -> np.ndarray:
    """``values[pair]`` where shown, the prior for a pair beyond ``values``, NaN where
    nothing was shown (``pair`` -1)."""
    padded = np.append(values, prior)  # the last entry: the prior
    index = np.where((pair >= 0) & (pair < len(values)), pair, len(values))
    return np.where(pair >= 0, padded[index], np.nan)


def fill_forward(values: np.ndarray, seen: np.ndarray, first: float = INIT) -> np.ndarray:
    """``values`` with each unseen entry replaced by the last seen one before it."""
    out = np.array(values, dtype=np.float64)
    last = first
    for k in range(len(out)):
        if seen[k]:
            last = out[k]
        else:
            out[k] = last
    return out


class PBM:
    name: ClassVar[str] = "pbm"

    def __init__(
        self, *, max_iterations: int = 100, tolerance: float = 1e-4, prior_weight: float = 1.0
    ) -> None:
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.prior_weight = prior_weight
        self.gamma = np.zeros(0)
        self.alpha = np.zeros(0)
        self.prior_alpha = INIT
        self.fitted: EMFit | None = None

    def fit(self, log: ClickLog) -> None:
        shown = log.shown
        position = np.broadcast_to(np.arange(log.max_position), shown.shape)[shown]
        fit = fit_em(
            cells(log.pair[shown], position, log.click[shown], log.pairs, log.max_position),
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
            prior_weight=self.prior_weight,
        )
        self.fitted = fit
        self.alpha, self.prior_alpha = fit.alpha, fit.prior_alpha
        self.gamma = fill_forward(fit.gamma, fit.exam_seen > 0)

    def _gamma(self, max_position: int) -> np.ndarray:
        g = self.gamma[:max_position]
        last = float(g[-1]) if len(g) else INIT
        return np.concatenate([g, np.full(max_position - len(g), last)])

    def _alpha(self, log: ClickLog) -> np.ndarray:
        return pair_values(self.alpha, self.prior_alpha, log.pair)

    def click_probabilities(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        p = self._gamma(log.max_position) * self._alpha(log)
        return p, p

    def examination(self, log: ClickLog) -> np.ndarray:
        return self._gamma(log.max_position)

    def examined(self, log: ClickLog) -> np.ndarray:
        """1 where clicked, else gamma_k (1 - alpha) / (1 - gamma_k alpha)."""
        alpha = self._alpha(log)
        e = skip_posterior(self._gamma(log.max_position), alpha)
        return np.where(log.click, 1.0, e)

    def labels(self) -> dict[str, np.ndarray]:
        return {"attractiveness": self.alpha}

    def params(self) -> dict[str, Any]:
        fit = self.fitted
        return {
            "gamma_by_position": [float(x) for x in self.gamma],
            "prior_alpha": float(self.prior_alpha),
            "iterations": fit.iterations if fit else 0,
            "converged": fit.converged if fit else False,
            "max_iterations": self.max_iterations,
            "tolerance": self.tolerance,
            "prior_weight": self.prior_weight,
        }
