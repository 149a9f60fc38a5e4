"""Training data with a click model: examined negatives and relevance labels.

``ClickModelJudge`` reworks each session's ``Judgement`` of ``searchtrail.export``
(docs/clickmodels.md, "Training data"):

- ``negatives="examined"``: of the skip-above negatives, only those the model says were
  examined with probability >= ``threshold`` (``ClickModel.examined``: given the
  session's clicks as observed). So they are a subset of the default negatives. A result
  the model has no estimate for (shown below ``max_position``) is left out. Records
  gain ``negative_examined``, aligned with ``negatives``.
- ``labels``: records gain ``positive_labels`` and ``positive_grades`` aligned with
  ``positives``, ``negative_labels`` and ``negative_grades`` aligned with ``negatives``:
  the model's relevance of the (query, object) pair and its grade 0..3
  (``searchtrail.clickfit``); null where the model never saw the pair.

The models are fitted on the exported batch's sessions beforehand; a page of exported
sessions becomes a ``ClickLog`` over the fitted model's pairs, so ``examined`` runs
vectorized once per page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from searchtrail.clickfit import FittedClickModel, num
from searchtrail.clickmodels.log import ClickLog
from searchtrail.export import Judgement
from searchtrail.metrics.definitions import query_key
from searchtrail.storage.api import SessionActions

__all__ = ["ClickModelJudge"]


class ClickModelJudge:
    def __init__(
        self,
        *,
        negatives: FittedClickModel | None,
        labels: FittedClickModel | None,
        threshold: float,
        click_types: Sequence[str],
    ) -> None:
        self.negatives = negatives
        self.labels = labels
        self.threshold = threshold
        self.click_types = set(click_types)
        self._examined: dict[str, dict[str, float]] = {}
        fields: list[pa.Field] = []
        if negatives is not None:
            fields.append(pa.field("negative_examined", pa.list_(pa.float64()), nullable=False))
        if labels is not None:
            for side in ("positive", "negative"):
                fields.append(pa.field(f"{side}_labels", pa.list_(pa.float64()), nullable=False))
                fields.append(pa.field(f"{side}_grades", pa.list_(pa.int64()), nullable=False))
        self.fields = fields

    def page(self, sessions: Sequence[SessionActions]) -> None:
        """Estimate what each session of the page examined (when negatives are filtered)."""
        self._examined = {}
        fitted = self.negatives
        if fitted is None or fitted.model is None or not sessions:
            return
        k = len(fitted.examination_raw)
        pair = np.full((len(sessions), k), -1, dtype=np.int32)
        click = np.zeros((len(sessions), k), dtype=bool)
        query = np.zeros(len(sessions), dtype=np.int32)
        places: list[dict[str, int]] = []
        queries = {q: i for i, q in enumerate(fitted.queries)}
        for s, session in enumerate(sessions):
            key = query_key(session.search_query)
            query[s] = queries.get(key, 0)
            clicked = {o for o, t in session.actions if o is not None and t in self.click_types}
            first: dict[str, int] = {}
            for at, object_id in enumerate(session.result_ids[:k]):
                if object_id in first:
                    continue
                first[object_id] = at
                p = fitted.pair_of(key, object_id)
                if p is not None:
                    pair[s, at] = p
                    click[s, at] = object_id in clicked
            places.append(first)
        log = ClickLog(
            pair,
            click,
            query,
            np.zeros(len(sessions), dtype=np.int64),
            fitted.queries,
            fitted.pair_query,
            fitted.pair_object,
        )
        examined = fitted.model.examined(log)
        for s, session in enumerate(sessions):
            row = examined[s]
            self._examined[session.session_id] = {
                o: float(row[at]) for o, at in places[s].items() if pair[s, at] >= 0
            }

    def _labels(self, query: str, objects: list[str]) -> tuple[list[Any], list[Any]]:
        fitted = self.labels
        assert fitted is not None
        values: list[Any] = []
        grades: list[Any] = []
        for object_id in objects:
            p = fitted.pair_of(query, object_id)
            values.append(None if p is None else num(fitted.relevance[p]))
            grades.append(None if p is None else int(fitted.grade[p]))
        return values, grades

    def apply(
        self, s: SessionActions, j: Judgement, *, filter_negatives: bool = True
    ) -> tuple[Judgement, dict[str, Any]]:
        """The session's judgement with examined negatives, and the fields it gains."""
        extra: dict[str, Any] = {}
        if self.negatives is not None:
            seen = self._examined.get(s.session_id, {})
            kept = j.negatives
            if filter_negatives:
                kept = [n for n in j.negatives if seen.get(n, math.nan) >= self.threshold]
            j = Judgement(j.results, j.positives, j.positive_weights, kept)
            extra["negative_examined"] = [num(seen.get(n)) for n in kept]
        if self.labels is not None:
            key = query_key(s.search_query)
            extra["positive_labels"], extra["positive_grades"] = self._labels(key, j.positives)
            extra["negative_labels"], extra["negative_grades"] = self._labels(key, j.negatives)
        return j, extra
