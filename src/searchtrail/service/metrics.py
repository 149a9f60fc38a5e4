"""Search-quality metrics, the ranker comparison and the query lists (docs/metrics.md).

Each call first refreshes the stats of sessions that changed since the last one (the
server also does so in the background, ``metrics_refresh_s``), so every answer is exact
for what was committed before it began.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from searchtrail.errors import FieldError, InvalidInput
from searchtrail.metrics.compare import METHOD, compare_outcomes, interleaving
from searchtrail.metrics.definitions import Counts, metrics_of, query_key
from searchtrail.models import (
    GroupBy,
    MetricsGroup,
    MetricsGroups,
    MetricsQuery,
    MetricsSummary,
    QueryLists,
    QueryMetrics,
    QuerySession,
    RankerComparison,
    ResultOutcome,
    parse,
)
from searchtrail.service._base import ServiceBase
from searchtrail.storage import MetricsScope
from searchtrail.timestamps import ms_to_iso

__all__ = ["MetricsOperations"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BY = ("day", "hour", "query", "ranker", "batch")


def _group_label(by: str, key: Any) -> str | int | None:
    if by == "day":
        return (_EPOCH + timedelta(days=int(key))).strftime("%Y-%m-%d")
    if by == "hour":
        return (_EPOCH + timedelta(hours=int(key))).strftime("%Y-%m-%dT%H:00Z")
    return key  # type: ignore[no-any-return]


class MetricsOperations(ServiceBase):
    # -- helpers ----------------------------------------------------------------------

    def refresh_metrics(self, limit: int | None = None) -> int:
        """Recompute the stats of sessions changed since the last refresh: how many."""
        return self.storage.metrics.refresh(
            self.settings.metrics_ranker_key, self.settings.metrics_team_key, limit
        )

    def _scope(
        self, since: object, until: object, include_irrelevant: bool, **narrow: Any
    ) -> tuple[MetricsQuery, MetricsScope]:
        q = parse(
            MetricsQuery,
            {"since": since, "until": until, "include_irrelevant": include_irrelevant},
            self.limits,
        )
        self.refresh_metrics()
        return q, MetricsScope(q.since, q.until, q.include_irrelevant, **narrow)

    @staticmethod
    def _range(q: MetricsQuery) -> dict[str, Any]:
        return {
            "since": None if q.since is None else ms_to_iso(q.since),
            "until": None if q.until is None else ms_to_iso(q.until),
            "include_irrelevant": q.include_irrelevant,
        }

    # -- the metrics ------------------------------------------------------------------

    def metrics(
        self,
        since: object = None,
        until: object = None,
        *,
        by: GroupBy | None = None,
        include_irrelevant: bool = False,
        batch_id: int | None = None,
    ) -> MetricsSummary | MetricsGroups:
        """Every metric over the range: one summary, or one entry per group (``by``)."""
        if by is not None and by not in _BY:
            raise InvalidInput(
                [FieldError(("by",), f"must be one of {', '.join(_BY)}, not {by!r}")]
            )
        q, scope = self._scope(since, until, include_irrelevant, batch_id=batch_id)
        groups = self.storage.metrics.counts(scope, by)
        if by is None:
            counts = groups[0][1] if groups else Counts()
            return MetricsSummary(**metrics_of(counts), **self._range(q))
        return MetricsGroups(
            by=by,
            groups=[MetricsGroup(key=_group_label(by, key), **metrics_of(c)) for key, c in groups],
            **self._range(q),
        )

    def metrics_queries(
        self,
        since: object = None,
        until: object = None,
        *,
        include_irrelevant: bool = False,
        limit: int = 10,
    ) -> QueryLists:
        """The top queries by sessions, by sessions without results, and by sessions with
        results but no interaction, each with its metrics."""
        q, scope = self._scope(since, until, include_irrelevant)
        lists: dict[str, list[QueryMetrics]] = {}
        for name, order in (
            ("top", "sessions"),
            ("zero_results", "zero_results"),
            ("no_interaction", "no_interaction"),
        ):
            keys = self.storage.metrics.top_queries(scope, order, limit)
            lists[name] = []
            for key in keys:
                one = MetricsScope(q.since, q.until, q.include_irrelevant, query=key)
                counts = self.storage.metrics.counts(one, None)
                lists[name].append(QueryMetrics(query=key, **metrics_of(counts[0][1])))
        return QueryLists(**lists, **self._range(q))

    def compare_rankers(
        self,
        a: str,
        b: str,
        since: object = None,
        until: object = None,
        *,
        include_irrelevant: bool = False,
        resamples: int = 10_000,
        seed: int = 0,
    ) -> RankerComparison:
        """Ranker B against ranker A: each compared metric's difference with its 95%
        bootstrap interval and a verdict; the interleaving preference where results carry
        a team label (``metrics_team_key``)."""
        if a == b:
            raise InvalidInput([FieldError(("ranker",), "must name two different rankers")])
        if not 100 <= resamples <= 100_000:
            raise InvalidInput([FieldError(("resamples",), "must be between 100 and 100000")])
        if not 0 <= seed < 2**63:
            # numpy's generator refuses a negative seed (a ValueError, not a domain error).
            raise InvalidInput([FieldError(("seed",), "must be between 0 and 2**63 - 1")])
        q, scope = self._scope(since, until, include_irrelevant)
        outcomes = self.storage.metrics.outcomes(scope, [a, b])
        return RankerComparison(
            a=a,
            b=b,
            sessions_a=sum(o[3] for o in outcomes[a]),
            sessions_b=sum(o[3] for o in outcomes[b]),
            method=METHOD,
            resamples=resamples,
            seed=seed,
            metrics=compare_outcomes(outcomes[a], outcomes[b], resamples=resamples, seed=seed),
            interleaving=interleaving(
                self.storage.metrics.teams(scope), a, b, resamples=resamples, seed=seed
            ),
            **self._range(q),
        )

    def metrics_sessions(
        self,
        query: str,
        since: object = None,
        until: object = None,
        *,
        include_irrelevant: bool = False,
        limit: int = 50,
    ) -> list[QuerySession]:
        """The newest sessions of a query: what each showed and what was done to each
        result. ``query`` as the query lists name it, or as a client sent it (a string is
        normalized when its own spelling finds nothing)."""
        _, scope = self._scope(since, until, include_irrelevant, query=query)
        found = self.storage.metrics.session_ids(scope, limit)
        if not found and query_key(query) != query:
            query = query_key(query)
            found = self.storage.metrics.session_ids(replace(scope, query=query), limit)
        out = []
        for session_id in found:
            s = self.storage.sessions.get(session_id, events_limit=10_000)
            positions: dict[str, int] = {}
            results = []
            for i, r in enumerate(s.search_results, 1):
                if r.object_id not in positions:
                    positions[r.object_id] = i - 1
                results.append(ResultOutcome(position=i, object_id=r.object_id, interactions=[]))
            unshown = 0
            for e in s.events:
                if e.object_id is None:
                    continue
                at = positions.get(e.object_id)
                if at is None:
                    unshown += 1
                else:
                    results[at].interactions.append(e.event_type)
            out.append(
                QuerySession(
                    session_id=s.session_id,
                    created_at=ms_to_iso(s.created_at_ms),
                    is_irrelevant=s.is_irrelevant,
                    query=query,
                    results=results,
                    unshown_events=unshown,
                )
            )
        return out
