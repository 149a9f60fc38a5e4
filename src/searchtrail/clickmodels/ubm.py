"""UBM, the user browsing model (Dupret and Piwowarski, 2008).

P(C_k = 1 | the clicks above) = gamma[k, j] * alpha(pair), where j is the position
(1-based) of the last click above k, 0 when there is none: as PyClick indexes it by the
rank and the previous click's rank, so the distance to the previous click is
``k + 1 - j`` (to the top of the page when none). ``gamma`` is the examination of
position k after a click at j. Given the clicks above, clicks are independent, so the
same EM as PBM's fits it (``_em``: every parameter starts at 0.5, each pair's
attractiveness gets ``prior_weight`` (1) pseudo-impression at the prior, which an unseen
pair takes; at most ``max_iterations`` (100), stopping once no parameter moves by more
than ``tolerance`` (1e-4)). A (k, j) never seen in training takes position k's pooled
examination over the j that were seen (a position never shown, the one above it).

``examination`` is, per position, the mean over the log's sessions showing it of
``gamma[k, j]`` with ``j`` their own previous click; ``examined`` the posterior
P(E_k = 1 | C_k) (1 if clicked, gamma (1 - alpha) / (1 - gamma alpha) otherwise), exact
since later clicks depend on E_k only through C_k. Only gamma * alpha is identified, as
for PBM.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels._em import INIT, EMFit, cells, fit_em, skip_posterior
from searchtrail.clickmodels.log import ClickLog
from searchtrail.clickmodels.pbm import pair_values

__all__ = ["UBM", "previous_click"]


def previous_click(log: ClickLog) -> np.ndarray:
    """(sessions, max_position) int64: the 1-based position of the last click above each
    position, 0 where there is none."""
    m = log.max_position
    at = np.where(log.click & log.shown, np.arange(1, m + 1), 0)
    last = np.maximum.accumulate(at, axis=1) if m else at
    prev = np.zeros_like(last)
    prev[:, 1:] = last[:, :-1]
    return prev


class UBM:
    name: ClassVar[str] = "ubm"

    def __init__(
        self, *, max_iterations: int = 100, tolerance: float = 1e-4, prior_weight: float = 1.0
    ) -> None:
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.prior_weight = prior_weight
        self.gamma = np.zeros((0, 1))  # (max_position, max_position + 1)
        self.alpha = np.zeros(0)
        self.prior_alpha = INIT
        self.fitted: EMFit | None = None

    def fit(self, log: ClickLog) -> None:
        m = log.max_position
        shown = log.shown
        exam = (np.arange(m) * (m + 1))[None, :] + previous_click(log)
        fit = fit_em(
            cells(log.pair[shown], exam[shown], log.click[shown], log.pairs, m * (m + 1)),
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
            prior_weight=self.prior_weight,
        )
        self.fitted = fit
        self.alpha, self.prior_alpha = fit.alpha, fit.prior_alpha
        gamma = fit.gamma.reshape(m, m + 1)
        n = fit.exam_seen.reshape(m, m + 1)
        pooled, above = np.empty(m), INIT
        for k in range(m):
            if n[k].sum() > 0:
                above = float((gamma[k] * n[k]).sum() / n[k].sum())
            pooled[k] = above
        self.gamma = np.where(n > 0, gamma, pooled[:, None])

    def _gamma(self, m: int) -> np.ndarray:
        """gamma for ``m`` positions (a log of another width than the fit's)."""
        have = self.gamma.shape[0]
        if m <= have:
            return self.gamma[:m, : m + 1]
        last = float(self.gamma[-1].mean()) if have else INIT
        out = np.full((m, m + 1), last)
        out[:have, : have + 1] = self.gamma
        return out

    def _exam(self, log: ClickLog) -> np.ndarray:
        """gamma[k, j] with each session's own previous click j."""
        m = log.max_position
        exam: np.ndarray = self._gamma(m)[np.arange(m)[None, :], previous_click(log)]
        return exam

    def click_probabilities(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        alpha = self._alpha(log)
        conditional = self._exam(log) * alpha
        # Unconditional: forward over where the last click so far was (0: none yet).
        m, gamma = log.max_position, self._gamma(log.max_position)
        last = np.zeros((log.sessions, m + 1))
        last[:, 0] = 1.0
        full = np.full(log.pair.shape, np.nan)
        a = np.nan_to_num(alpha)
        for k in range(m):
            joint = last[:, : k + 1] * gamma[k, : k + 1] * a[:, k : k + 1]
            p = joint.sum(axis=1)
            last[:, : k + 1] -= joint
            last[:, k + 1] = p
            full[:, k] = np.where(log.shown[:, k], p, np.nan)
        return conditional, full

    def _alpha(self, log: ClickLog) -> np.ndarray:
        return pair_values(self.alpha, self.prior_alpha, log.pair)

    def examination(self, log: ClickLog) -> np.ndarray:
        m = log.max_position
        exam = np.where(log.shown, self._exam(log), 0.0)
        shown = log.shown.sum(axis=0)
        g = self._gamma(m)
        fallback = g[np.arange(m), 0] if m else np.zeros(0)
        return np.where(shown > 0, exam.sum(axis=0) / np.maximum(shown, 1), fallback)

    def examined(self, log: ClickLog) -> np.ndarray:
        e = skip_posterior(self._exam(log), self._alpha(log))
        return np.where(log.click, 1.0, e)

    def labels(self) -> dict[str, np.ndarray]:
        return {"attractiveness": self.alpha}

    def params(self) -> dict[str, Any]:
        fit = self.fitted
        return {
            "gamma_by_position_and_previous_click": [
                [float(x) for x in row[: k + 1]] for k, row in enumerate(self.gamma)
            ],
            "prior_alpha": float(self.prior_alpha),
            "iterations": fit.iterations if fit else 0,
            "converged": fit.converged if fit else False,
            "max_iterations": self.max_iterations,
            "tolerance": self.tolerance,
            "prior_weight": self.prior_weight,
        }
