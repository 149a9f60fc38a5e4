"""Click models on the service: fit, compare, labels (docs/clickmodels.md).

``fit_click_model`` reads the scope's sessions as a ``ClickLog`` and fits one model
(``searchtrail.clickfit``); ``compare_click_models`` scores several on the same held-out
sessions. ``click_model`` and ``click_model_labels`` answer HTTP: they keep the last
``FIT_CACHE_ENTRIES`` fits in the process, keyed by what was asked and by a data version
of the scope (its metrics counts after a refresh: a new session, event or irrelevant
mark changes them), so a repeated request does not fit again while nothing changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from searchtrail.clickfit import TEST_FRACTION, FittedClickModel, fit_log, held_out
from searchtrail.clickmodels.log import ClickLog, read_click_log
from searchtrail.clickmodels.registry import MODELS, make
from searchtrail.errors import FieldError, InvalidInput
from searchtrail.metrics.definitions import query_key
from searchtrail.models import MetricsQuery, parse
from searchtrail.models.clickmodels import (
    ClickModelComparison,
    ClickModelCounts,
    ClickModelFit,
    ClickModelLabels,
    ClickModelQuality,
    ClickModelScope,
    ModelQuality,
    PairLabel,
)
from searchtrail.service._base import ServiceBase
from searchtrail.storage import MetricsScope
from searchtrail.timestamps import ms_to_iso

__all__ = ["FIT_CACHE_ENTRIES", "MAX_CLICK_POSITION", "ClickModelOperations", "FitCache"]

MAX_CLICK_POSITION = 50
# Fitted models kept per process for HTTP. Each holds per-pair arrays only (a few tens of
# bytes per distinct (query, object) shown), never the sessions'.
FIT_CACHE_ENTRIES = 8


class FitCache:
    """A bounded least-recently-used map from a request's key to its fitted model."""

    def __init__(self, entries: int = FIT_CACHE_ENTRIES) -> None:
        self.entries = entries
        self.hits = 0
        self._fits: OrderedDict[tuple[Any, ...], FittedClickModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], fit: Callable[[], FittedClickModel]) -> FittedClickModel:
        with self._lock:
            found = self._fits.get(key)
            if found is not None:
                self._fits.move_to_end(key)
                self.hits += 1
                return found
        fitted = fit()  # outside the lock: two first requests may both fit, harmlessly
        with self._lock:
            self._fits[key] = fitted
            self._fits.move_to_end(key)
            while len(self._fits) > self.entries:
                self._fits.popitem(last=False)
        return fitted


class ClickModelOperations(ServiceBase):
    _fit_cache: FitCache

    # -- the scope ----------------------------------------------------------------------

    def _click_scope(
        self,
        models: Sequence[str],
        since: object,
        until: object,
        batch_id: int | None,
        include_irrelevant: bool,
        click_types: Sequence[str] | None,
        max_position: int,
    ) -> tuple[MetricsScope, dict[str, Any]]:
        errors: list[FieldError] = []
        for name in models:
            if name not in MODELS:
                errors.append(
                    FieldError(("model",), f"no click model {name!r}: one of {known_models()}")
                )
        types = list(self.settings.clickmodel_click_types if click_types is None else click_types)
        if not types or not all(isinstance(t, str) and t for t in types):
            errors.append(FieldError(("click_types",), "must name at least one event type"))
        if not 1 <= max_position <= MAX_CLICK_POSITION:
            errors.append(
                FieldError(("max_position",), f"must be between 1 and {MAX_CLICK_POSITION}")
            )
        q = parse(
            MetricsQuery,
            {"since": since, "until": until, "include_irrelevant": include_irrelevant},
            self.limits,
        )
        if errors:
            raise InvalidInput(errors)
        if batch_id is not None:
            self.storage.batches.get(self._batch_id(batch_id))  # a clear 404 if unknown
        scope = MetricsScope(q.since, q.until, q.include_irrelevant, batch_id=batch_id)
        described = {
            "since": None if q.since is None else ms_to_iso(q.since),
            "until": None if q.until is None else ms_to_iso(q.until),
            "include_irrelevant": q.include_irrelevant,
            "batch_id": batch_id,
            "click_types": types,
            "max_position": max_position,
        }
        return scope, described

    def _log(self, scope: MetricsScope, described: dict[str, Any]) -> ClickLog:
        return read_click_log(
            self.storage.reads,
            scope,
            click_types=described["click_types"],
            max_position=described["max_position"],
        )

    # -- the library's calls ------------------------------------------------------------

    def fit_click_model(
        self,
        model: str,
        since: object = None,
        until: object = None,
        *,
        batch_id: int | None = None,
        include_irrelevant: bool = False,
        click_types: Sequence[str] | None = None,
        max_position: int = 10,
    ) -> FittedClickModel:
        """Fit ``model`` on the scope's sessions: scored on the latest 10% by time after
        fitting on the rest; examination and labels from a refit on every session.
        ``click_types`` default to the ``clickmodel_click_types`` setting."""
        scope, described = self._click_scope(
            [model], since, until, batch_id, include_irrelevant, click_types, max_position
        )
        return fit_log(model, self._log(scope, described), described)

    def compare_click_models(
        self,
        models: Sequence[str],
        since: object = None,
        until: object = None,
        *,
        batch_id: int | None = None,
        include_irrelevant: bool = False,
        click_types: Sequence[str] | None = None,
        max_position: int = 10,
    ) -> ClickModelComparison:
        """Each model fitted on the same earliest 90% of the sessions and scored on the
        same latest 10%: held-out log-likelihood and perplexity, side by side."""
        if not models:
            raise InvalidInput([FieldError(("model",), "name at least one model")])
        scope, described = self._click_scope(
            models, since, until, batch_id, include_irrelevant, click_types, max_position
        )
        log = self._log(scope, described)
        train, test = log.split(TEST_FRACTION)
        rows = []
        for name in dict.fromkeys(models):
            if log.sessions:
                model = make(name)
                model.fit(train)
                quality = held_out(model, test)
            else:
                quality = held_out(make(name), test)
            rows.append(
                ModelQuality(
                    model=name,
                    train_sessions=train.sessions,
                    test_sessions=test.sessions,
                    log_likelihood=quality["log_likelihood"],
                    perplexity=quality["perplexity"],
                    perplexity_by_position=quality["perplexity_by_position"],
                )
            )
        shown = log.shown
        counts = ClickModelCounts(
            sessions=log.sessions, pairs=log.pairs, clicks=int((log.click & shown).sum())
        )
        return ClickModelComparison(models=rows, counts=counts, scope=ClickModelScope(**described))

    # -- HTTP's calls, cached -----------------------------------------------------------

    def _cached_fit(
        self,
        model: str,
        since: object,
        until: object,
        batch_id: int | None,
        include_irrelevant: bool,
        max_position: int,
    ) -> FittedClickModel:
        scope, described = self._click_scope(
            [model], since, until, batch_id, include_irrelevant, None, max_position
        )
        self.storage.metrics.refresh(
            self.settings.metrics_ranker_key, self.settings.metrics_team_key
        )
        groups = self.storage.metrics.counts(scope, None)
        c = groups[0][1] if groups else None
        version = (
            None
            if c is None
            else (c.sessions, c.with_results, c.clicks, c.interactions, c.unshown_events)
        )
        key = (
            model,
            scope,
            tuple(described["click_types"]),
            max_position,
            version,
            self.storage.metrics.stale(),
        )
        return self._fit_cache.get(
            key, lambda: fit_log(model, self._log(scope, described), described)
        )

    def click_model(
        self,
        model: str,
        since: object = None,
        until: object = None,
        *,
        batch_id: int | None = None,
        include_irrelevant: bool = False,
        max_position: int = 10,
    ) -> ClickModelFit:
        """A fit's propensities, held-out quality and counts (cached; see the module)."""
        fitted = self._cached_fit(model, since, until, batch_id, include_irrelevant, max_position)
        return fit_answer(fitted)

    def click_model_labels(
        self,
        model: str,
        query: str | None = None,
        since: object = None,
        until: object = None,
        *,
        batch_id: int | None = None,
        include_irrelevant: bool = False,
        max_position: int = 10,
        limit: int = 50,
    ) -> ClickModelLabels:
        """The labels of a query's pairs by relevance (``query`` as the metrics name it,
        or as a client sent it), or without a query the pairs with most impressions."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput([FieldError(("limit",), "must be between 1 and 10000")])
        fitted = self._cached_fit(model, since, until, batch_id, include_irrelevant, max_position)
        if query is None:
            top = np.argsort(-fitted.impressions, kind="stable")[:limit]
            rows = fitted.labels(top)
            rows.sort(key=lambda r: (-r["impressions"], r["query"], r["object_id"]))
        else:
            key = query if query in fitted.queries else query_key(query)
            q = fitted.queries.index(key) if key in fitted.queries else -1
            rows = fitted.labels(np.flatnonzero(fitted.pair_query == q))[:limit]
        return ClickModelLabels(
            model=fitted.name,
            query=query,
            labels=[PairLabel(**r) for r in rows],
            counts=ClickModelCounts(**fitted.counts()),
            scope=ClickModelScope(**fitted.scope),
        )


def known_models() -> str:
    return ", ".join(sorted(MODELS))


def fit_answer(fitted: FittedClickModel) -> ClickModelFit:
    return ClickModelFit(
        model=fitted.name,
        examination=fitted.examination,
        examination_raw=fitted.examination_raw,
        params=fitted.params,
        fit=ClickModelQuality(**fitted.fit_quality()),
        counts=ClickModelCounts(**fitted.counts()),
        scope=ClickModelScope(**fitted.scope),
    )
