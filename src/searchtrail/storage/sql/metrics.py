"""The metrics' storage: ``session_stats`` kept fresh, and sums over a range of it.

``refresh`` recomputes the stale rows (``version <> computed``) a chunk at a time. It
reads a chunk's sessions and events outside any write, computes each session's stats
(``metrics.definitions.session_stats``), then writes each row only where ``version`` is
still the one it read: a push that landed meanwhile moved it, so that row stays stale
and the next refresh takes it again. Whatever the interleaving, a row marked computed
was computed from every event its version stands for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    select,
    update,
)

from searchtrail.metrics.definitions import MAX_POSITION, Counts, session_stats
from searchtrail.storage.api import MetricsScope, Outcome
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.schema import events, metrics_state, sessions
from searchtrail.storage.sql.schema import session_stats as stats

__all__ = ["SqlMetrics"]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_REFRESH_CHUNK = 2_000


class SqlMetrics:
    def __init__(self, db: _Database) -> None:
        self._db = db
        s = stats.c
        self._stale = (
            select(s.session_number, s.version)
            .where(s.version != s.computed, s.session_number > bindparam("after"))
            .order_by(s.session_number)
            .limit(bindparam("chunk", type_=Integer))
        )
        self._store = (
            update(stats)
            .where(s.session_number == bindparam("n"), s.version == bindparam("v"))
            .values(
                computed=bindparam("v"),
                **{c: bindparam(c) for c in _COMPUTED},
            )
        )

    # -- keeping session_stats fresh ----------------------------------------------------

    def refresh(self, ranker_key: str, team_key: str, limit: int | None = None) -> int:
        """Recompute stale rows (at most ``limit``): how many were computed."""
        self._settle_keys(ranker_key, team_key)
        done = after = 0
        # One pass in session_number order: a row whose version moves while it is
        # computed stays stale for the next refresh instead of being chased here.
        while limit is None or done < limit:
            chunk = _REFRESH_CHUNK if limit is None else min(_REFRESH_CHUNK, limit - done)
            with self._db.read() as conn:
                stale = conn.execute(self._stale, {"chunk": chunk, "after": after}).all()
                if not stale:
                    break
                after = stale[-1][0]
                numbers = [n for n, _ in stale]
                found = conn.execute(
                    select(
                        sessions.c.session_number,
                        sessions.c.created_at_ms,
                        sessions.c.search_query,
                        sessions.c.search_results,
                        sessions.c.search_meta,
                    ).where(sessions.c.session_number.in_(numbers))
                ).all()
                by_session: dict[int, list[tuple[str | None, str, int]]] = {}
                for e in conn.execute(
                    select(
                        events.c.session_number,
                        events.c.object_id,
                        events.c.event_type,
                        events.c.created_at_ms,
                    ).where(events.c.session_number.in_(numbers))
                ):
                    by_session.setdefault(e[0], []).append((e[1], e[2], e[3]))
            versions = dict(stale)
            params = []
            for n, created, query, results, meta in found:
                st = session_stats(
                    created,
                    query,
                    results,
                    meta,
                    by_session.get(n, ()),
                    ranker_key=ranker_key,
                    team_key=team_key,
                )
                params.append(
                    {
                        "n": n,
                        "v": versions[n],
                        **{c: getattr(st, c) for c in _COMPUTED if c != "teams"},
                        "teams": None if st.teams is None else json.dumps(st.teams),
                    }
                )
            if params:
                self._db.write(partial(_execute, self._store, params))
            done += len(stale)
            if len(stale) < chunk:
                break
        return done

    def _settle_keys(self, ranker_key: str, team_key: str) -> None:
        """Stats computed under other keys are stale: recompute every row."""
        wanted = {"ranker_key": ranker_key, "team_key": team_key}
        with self._db.read() as conn:
            kept = dict(conn.execute(select(metrics_state.c.name, metrics_state.c.value)).all())
        if kept == wanted:
            return

        def work(conn: Any) -> None:
            conn.execute(metrics_state.delete())
            conn.execute(
                metrics_state.insert(), [{"name": k, "value": v} for k, v in wanted.items()]
            )
            if kept:
                conn.execute(update(stats).values(computed=stats.c.version - 1))

        self._db.write(work)

    def stale(self) -> int:
        with self._db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(stats.c.version != stats.c.computed)
                ).scalar_one()
            )

    # -- sums over a range ------------------------------------------------------------

    def counts(self, scope: MetricsScope, by: str | None) -> list[tuple[Any, Counts]]:
        """The sums of every metric over ``scope``, by group (``None``: one group)."""
        key = _group_key(by)
        s = stats.c
        aggregates: list[ColumnElement[Any]] = [
            func.count(),
            func.count().filter(s.results > 0),
            func.count().filter(s.first_position.is_not(None)),
            func.count().filter(s.purchased),
            func.sum(cast(literal(1.0), Float) / s.first_position),
            func.sum(s.clicks),
            func.sum(s.click_positions),
            func.sum(s.interactions),
            func.sum(s.unshown_events),
            *(func.count().filter(s.results >= k) for k in range(1, MAX_POSITION + 1)),
            *(
                func.count().filter(s.positions_mask.op("&")(1 << (k - 1)) != 0)
                for k in range(1, MAX_POSITION + 1)
            ),
        ]
        query = _scoped(select(key.label("g"), *aggregates), scope).group_by(key)
        ttfi = _scoped(
            select(key.label("g"), s.first_interaction_ms).where(
                s.first_interaction_ms.is_not(None)
            ),
            scope,
        )
        groups: dict[Any, Counts] = {}
        with self._db.read() as conn:
            for row in conn.execute(query):
                (
                    g,
                    n,
                    with_results,
                    interacted,
                    purchased,
                    rr,
                    clicks,
                    clicked_at,
                    inter,
                    unshown,
                ) = row[:10]
                rest = row[10:]
                groups[g] = Counts(
                    sessions=n,
                    with_results=with_results,
                    interacted=interacted,
                    purchased=purchased,
                    reciprocal_ranks=float(rr or 0.0),
                    clicks=int(clicks or 0),
                    click_positions=int(clicked_at or 0),
                    interactions=int(inter or 0),
                    unshown_events=int(unshown or 0),
                    shown_at=list(rest[:MAX_POSITION]),
                    interacted_at=list(rest[MAX_POSITION:]),
                )
            for g, ms in conn.execute(ttfi):
                groups[g].first_interaction_ms.append(ms)
        return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0]))

    def top_queries(self, scope: MetricsScope, order: str, limit: int) -> list[str]:
        """The query keys with the most sessions (``sessions``), sessions without results
        (``zero_results``), or sessions with results but no interaction (``no_interaction``)."""
        s = stats.c
        measure = {
            "sessions": func.count(),
            "zero_results": func.count().filter(s.results == 0),
            "no_interaction": func.count().filter(and_(s.results > 0, s.first_position.is_(None))),
        }[order]
        query = (
            _scoped(select(s.query_key, measure.label("m")), scope)
            .group_by(s.query_key)
            .having(measure > 0)
            .order_by(measure.desc(), s.query_key)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [r[0] for r in conn.execute(query)]

    def outcomes(self, scope: MetricsScope, rankers: Sequence[str]) -> dict[str, list[Outcome]]:
        """Per ranker, how many sessions had each outcome: (results shown, the first
        position interacted with or None, purchased), for bootstrap intervals."""
        s = stats.c
        query = (
            _scoped(
                select(
                    s.ranker,
                    s.results > 0,
                    s.first_position,
                    func.coalesce(s.purchased, false()),
                    func.count(),
                ),
                scope,
            )
            .where(s.ranker.in_(list(rankers)))
            .group_by(
                s.ranker, s.results > 0, s.first_position, func.coalesce(s.purchased, false())
            )
        )
        out: dict[str, list[Outcome]] = {r: [] for r in rankers}
        with self._db.read() as conn:
            for ranker, shown, first, bought, n in conn.execute(query):
                out[ranker].append((bool(shown), first, bool(bought), int(n)))
        return out

    def teams(self, scope: MetricsScope) -> list[dict[str, int]]:
        """The interleaved sessions' interactions by team, one dict per session."""
        query = _scoped(select(stats.c.teams).where(stats.c.teams.is_not(None)), scope)
        with self._db.read() as conn:
            return [json.loads(t) for (t,) in conn.execute(query)]

    def session_ids(self, scope: MetricsScope, limit: int) -> list[str]:
        """The newest sessions of ``scope``, newest first."""
        query = (
            _scoped(
                select(sessions.c.session_id).join(
                    stats, stats.c.session_number == sessions.c.session_number
                ),
                scope,
            )
            .order_by(stats.c.created_at_ms.desc(), stats.c.session_number.desc())
            .limit(limit)
        )
        with self._db.read() as conn:
            return [r[0] for r in conn.execute(query)]


def _execute(statement: Any, params: list[dict[str, Any]], conn: Any) -> None:
    conn.execute(statement, params)


_COMPUTED = (
    "results",
    "interactions",
    "first_position",
    "purchased",
    "clicks",
    "click_positions",
    "positions_mask",
    "first_interaction_ms",
    "unshown_events",
    "query_key",
    "ranker",
    "teams",
)


def _group_key(by: str | None) -> ColumnElement[Any]:
    s = stats.c
    if by is None:
        return literal(None)
    if by == "day":
        return s.created_at_ms // _DAY_MS
    if by == "hour":
        return s.created_at_ms // _HOUR_MS
    if by == "query":
        return s.query_key
    if by == "ranker":
        return s.ranker
    if by == "batch":
        return s.batch_id
    raise ValueError(f"metrics group by day, hour, query, ranker or batch, not {by!r}")


def _scoped(query: Select[Any], scope: MetricsScope) -> Select[Any]:
    s = stats.c
    where: list[ColumnElement[bool]] = []
    if scope.since_ms is not None:
        where.append(s.created_at_ms >= scope.since_ms)
    if scope.until_ms is not None:
        where.append(s.created_at_ms < scope.until_ms)
    if not scope.include_irrelevant:
        where.append(s.is_irrelevant == false())
    if scope.ranker is not None:
        where.append(s.ranker == scope.ranker)
    if scope.query is not None:
        where.append(s.query_key == scope.query)
    if scope.batch_id is not None:
        where.append(s.batch_id == scope.batch_id)
    return query.where(*where)
