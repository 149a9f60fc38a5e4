"""A click model fitted on a scope's sessions: what the CLI, HTTP and the export use.

``fit_log`` fits a model twice (docs/clickmodels.md):

- on the earliest 90% of the sessions by time, scored on the latest 10% (``evaluate``):
  the held-out log-likelihood and perplexity, so that models compare fairly;
- on every session: the examination by position (the propensities) and the per-pair
  labels come from this fit, which has seen every pair.

Grades map a pair's relevance onto 0..3 relative to the scope's average: ``ratio =
relevance / (impression-weighted mean relevance)``; below 0.5 is 0, below 1 is 1, below 2
is 2, from 2 on 3. Relevance is ``attractiveness * satisfaction`` where the model has a
satisfaction (DBN, SDBN), else ``attractiveness``. Only per-pair arrays are kept, never
the sessions', so a fitted model is small enough to cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from searchtrail.clickmodels.base import ClickModel, evaluate, relative
from searchtrail.clickmodels.log import ClickLog
from searchtrail.clickmodels.registry import make

__all__ = ["GRADE_CUTS", "TEST_FRACTION", "FittedClickModel", "fit_log", "held_out", "num"]

TEST_FRACTION = 0.1
# ratio of a pair's relevance to the scope's impression-weighted mean: the grade is how
# many of these cuts the ratio reaches.
GRADE_CUTS = (0.5, 1.0, 2.0)


def num(x: Any) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _empty_quality(test: ClickLog) -> dict[str, Any]:
    return {
        "sessions": test.sessions,
        "log_likelihood": None,
        "perplexity": None,
        "perplexity_by_position": [None] * test.max_position,
    }


def held_out(model: ClickModel, test: ClickLog) -> dict[str, Any]:
    """``evaluate`` with JSON-safe numbers; nothing to score without test sessions."""
    if test.sessions == 0:
        return _empty_quality(test)
    quality = evaluate(model, test)
    quality["log_likelihood"] = num(quality["log_likelihood"])
    quality["perplexity"] = num(quality["perplexity"])
    quality["perplexity_by_position"] = [num(p) for p in quality["perplexity_by_position"]]
    return quality


@dataclass(eq=False)
class FittedClickModel:
    """A model fitted on every session of a scope, with its held-out score."""

    name: str
    model: ClickModel | None  # None when the scope had no session
    scope: dict[str, Any]
    sessions: int
    clicks: int
    train_sessions: int
    test_sessions: int
    quality: dict[str, Any]  # held_out(): the train part's model on the test part
    examination_raw: list[float | None]
    params: dict[str, Any]
    queries: list[str]
    pair_query: np.ndarray
    pair_object: list[str]
    impressions: np.ndarray
    pair_clicks: np.ndarray
    attractiveness: np.ndarray
    satisfaction: np.ndarray | None
    relevance: np.ndarray
    grade: np.ndarray
    _index: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    @property
    def pairs(self) -> int:
        return len(self.pair_object)

    @property
    def examination(self) -> list[float | None]:
        """Relative to position 1 (``base.relative``): inverse propensity weights divide
        by these."""
        raw = np.array([np.nan if x is None else x for x in self.examination_raw])
        return [num(x) for x in relative(raw)] if len(raw) else []

    def counts(self) -> dict[str, int]:
        return {"sessions": self.sessions, "pairs": self.pairs, "clicks": self.clicks}

    def fit_quality(self) -> dict[str, Any]:
        q = self.quality
        return {
            "train_sessions": self.train_sessions,
            "test_sessions": self.test_sessions,
            "log_likelihood": q["log_likelihood"],
            "perplexity": q["perplexity"],
            "perplexity_by_position": q["perplexity_by_position"],
        }

    def pair_of(self, query: str, object_id: str) -> int | None:
        """The pair index of (query key, object), or None if the fit never saw it."""
        if not self._index and self.pairs:
            self._index.update(
                ((self.queries[q], o), p)
                for p, (q, o) in enumerate(
                    zip(self.pair_query.tolist(), self.pair_object, strict=True)
                )
            )
        return self._index.get((query, object_id))

    def order(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Pair indices (all, or ``rows``) by query in first-seen order, then relevance
        descending, then object id."""
        rows = np.arange(self.pairs) if rows is None else np.asarray(rows)
        if not len(rows):
            return rows
        rel = np.nan_to_num(self.relevance[rows], nan=-np.inf)
        objects = np.array([self.pair_object[p] for p in rows.tolist()], dtype=object)
        keys = np.lexsort((objects.astype(str), -rel, self.pair_query[rows]))
        return rows[keys]

    def label(self, p: int) -> dict[str, Any]:
        """One pair's label record (the columns of labels.jsonl)."""
        return {
            "query": self.queries[int(self.pair_query[p])],
            "object_id": self.pair_object[p],
            "impressions": int(self.impressions[p]),
            "clicks": int(self.pair_clicks[p]),
            "attractiveness": num(self.attractiveness[p]),
            "satisfaction": None if self.satisfaction is None else num(self.satisfaction[p]),
            "relevance": num(self.relevance[p]),
            "grade": int(self.grade[p]),
        }

    def labels(self, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        return [self.label(int(p)) for p in self.order(rows)]


def grades(relevance: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """0..3 by the ratio of relevance to its impression-weighted mean (``GRADE_CUTS``);
    an undefined relevance is 0, and so is every pair when the mean is not positive."""
    finite = np.isfinite(relevance)
    weight = impressions[finite].sum()
    mean = float((relevance[finite] * impressions[finite]).sum() / weight) if weight else 0.0
    if not mean > 0:
        return np.zeros(len(relevance), dtype=np.int64)
    ratio = np.where(finite, relevance, 0.0) / mean
    return np.searchsorted(np.array(GRADE_CUTS), ratio, side="right").astype(np.int64)


def fit_log(name: str, log: ClickLog, scope: dict[str, Any]) -> FittedClickModel:
    """Fit ``name`` on ``log``: on its train part for the held-out score, on all of it for
    the examination and the labels."""
    train, test = log.split(TEST_FRACTION)
    shown = log.shown
    click = log.click & shown
    impressions = np.bincount(log.pair[shown], minlength=log.pairs)
    pair_clicks = np.bincount(log.pair[click], minlength=log.pairs)
    model: ClickModel | None = None
    quality = _empty_quality(test)
    examination: list[float | None] = [None] * log.max_position
    params: dict[str, Any] = {}
    attractiveness = np.zeros(log.pairs)
    satisfaction: np.ndarray | None = None
    if log.sessions:
        on_train = make(name)
        on_train.fit(train)
        quality = held_out(on_train, test)
        model = make(name)
        model.fit(log)
        examination = [num(x) for x in model.examination(log)]
        params = model.params()
        labels = model.labels()
        attractiveness = np.asarray(labels["attractiveness"], dtype=float)
        if labels.get("satisfaction") is not None:
            satisfaction = np.asarray(labels["satisfaction"], dtype=float)
    relevance = attractiveness if satisfaction is None else attractiveness * satisfaction
    return FittedClickModel(
        name=name,
        model=model,
        scope=scope,
        sessions=log.sessions,
        clicks=int(click.sum()),
        train_sessions=train.sessions,
        test_sessions=test.sessions,
        quality=quality,
        examination_raw=examination,
        params=params,
        queries=log.queries,
        pair_query=log.pair_query,
        pair_object=log.pair_object,
        impressions=impressions,
        pair_clicks=pair_clicks,
        attractiveness=attractiveness,
        satisfaction=satisfaction,
        relevance=relevance,
        grade=grades(relevance, impressions),
    )
