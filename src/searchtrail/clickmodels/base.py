"""What every click model answers, and how a fit is judged on held-out sessions.

A model is fitted on a ``ClickLog`` and keeps its parameters in arrays indexed by
position and by the log's (query, object) pair; a pair it never saw in training takes
the model's prior. ``evaluate`` scores any model on other sessions of the same log
(``ClickLog.split``) the way PyClick does:

- log-likelihood: the mean over sessions of the sum over shown positions of
  ``log P(C_k = c_k | the clicks above, as observed)`` (natural log; higher is better);
- perplexity at position k: ``2 ** -(mean over sessions showing k of
  log2 P(C_k = c_k))`` with the unconditional click probability; 1 is perfect, 2 a coin.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from searchtrail.clickmodels.log import ClickLog

__all__ = ["EPS", "ClickModel", "evaluate", "relative"]

# Probabilities are kept inside [EPS, 1 - EPS] where a log is taken of them.
EPS = 1e-6


class ClickModel(Protocol):
    name: ClassVar[str]

    def fit(self, log: ClickLog) -> None:
        """Estimate the parameters from ``log`` (maximum likelihood; EM where needed)."""

    def click_probabilities(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        """For each session and position of ``log``: the click probability given the
        clicks above as observed, and the unconditional one; (sessions, max_position)
        each, NaN where nothing was shown."""

    def examination(self, log: ClickLog) -> np.ndarray:
        """The probability that position k was examined, by position (max_position,),
        averaged over ``log``'s sessions where the model's examination depends on them."""

    def examined(self, log: ClickLog) -> np.ndarray:
        """For each session and position of ``log``: the probability that the result was
        examined given the session's clicks as observed (1 where clicked); NaN where
        nothing was shown. The export's ``--negatives examined`` keeps unclicked results
        whose probability is high."""

    def labels(self) -> dict[str, np.ndarray]:
        """Per pair: ``attractiveness`` and, where the model has it, ``satisfaction``."""

    def params(self) -> dict[str, Any]:
        """The fitted raw values, as JSON-able numbers and lists."""


def relative(examination: np.ndarray) -> list[float]:
    """Examination relative to position 1 (inverse propensity weights divide by these);
    a zero or undefined first position leaves the raw values."""
    first = float(examination[0]) if len(examination) else 0.0
    if not np.isfinite(first) or first <= 0:
        return [float(x) for x in examination]
    return [float(x) / first for x in examination]


def evaluate(model: ClickModel, test: ClickLog) -> dict[str, Any]:
    """Log-likelihood and perplexity per position of ``model`` on ``test``."""
    conditional, full = model.click_probabilities(test)
    shown = test.shown
    c = test.click

    def log_p(p: np.ndarray, base: Any) -> np.ndarray:
        p = np.clip(np.nan_to_num(p, nan=0.5), EPS, 1 - EPS)
        return np.where(c, base(p), base(1 - p))  # type: ignore[no-any-return]

    sessions = test.sessions
    ll = np.where(shown, log_p(conditional, np.log), 0.0).sum(axis=1)
    per_position = []
    log2 = np.where(shown, log_p(full, np.log2), 0.0)
    counts = shown.sum(axis=0)
    for k in range(test.max_position):
        n = int(counts[k])
        per_position.append(float(2 ** (-log2[:, k].sum() / n)) if n else None)
    known = [p for p in per_position if p is not None]
    return {
        "sessions": sessions,
        "log_likelihood": float(ll.mean()) if sessions else None,
        "perplexity": float(np.mean(known)) if known else None,
        "perplexity_by_position": per_position,
    }
