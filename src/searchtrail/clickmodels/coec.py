"""COEC: clicks over expected clicks (as OpenSearch's Search Relevance Workbench uses).

The expected clicks of a pair are the sum, over its impressions, of the click-through
rate of the position it was shown at (over all training sessions). COEC = clicks /
expected clicks: 1 is as clicked as its positions predict, above 1 more. As a model of
clicks: P(C_k = 1) = ctr_k * COEC(pair), capped at 1, independent of other clicks; a
pair never seen has COEC 1. Its examination is ctr_k itself (relative to position 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels.log import ClickLog

__all__ = ["COEC"]


class COEC:
    name: ClassVar[str] = "coec"

    def __init__(self) -> None:
        self.ctr = np.zeros(0)
        self.coec = np.zeros(0)
        self.impressions = np.zeros(0, dtype=np.int64)
        self.clicks = np.zeros(0, dtype=np.int64)

    def fit(self, log: ClickLog) -> None:
        shown, click = log.shown, log.click & log.shown
        per_position = shown.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.ctr = np.where(per_position > 0, click.sum(axis=0) / per_position, 0.0)
        pairs = log.pair[shown]
        expected = np.bincount(
            pairs, weights=np.broadcast_to(self.ctr, shown.shape)[shown], minlength=log.pairs
        )
        self.impressions = np.bincount(pairs, minlength=log.pairs)
        self.clicks = np.bincount(log.pair[click], minlength=log.pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.coec = np.where(expected > 0, self.clicks / expected, 1.0)

    def click_probabilities(self, log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
        coec = np.where(log.shown, self.coec[np.maximum(log.pair, 0)], np.nan)
        p = np.minimum(1.0, coec * self.ctr)
        return p, p

    def examination(self, log: ClickLog) -> np.ndarray:
        return self.ctr.copy()

    def examined(self, log: ClickLog) -> np.ndarray:
        """COEC has no examination of its own: the position's CTR relative to position 1
        stands for it (1 where clicked)."""
        first = self.ctr[0] if len(self.ctr) and self.ctr[0] > 0 else 1.0
        e = np.broadcast_to(np.minimum(1.0, self.ctr / first), log.pair.shape)
        return np.where(log.shown, np.where(log.click, 1.0, e), np.nan)

    def labels(self) -> dict[str, np.ndarray]:
        return {"attractiveness": self.coec}

    def params(self) -> dict[str, Any]:
        return {"ctr_by_position": [float(x) for x in self.ctr]}
