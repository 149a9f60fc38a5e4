"""The metrics' storage: ``session_stats`` kept fresh, and sums over a range of it.

``refresh`` recomputes the stale rows (``stale``) a chunk at a time. It
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
from searchtrail.storage.sql._rollup import ROLLUP_COLUMNS
from searchtrail.storage.sql.schema import STALE_BUMP, events, metrics_state, sessions
from searchtrail.storage.sql.schema import session_stats as stats
from searchtrail.storage.sql.schema import session_stats_hourly as hourly

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
            .where(s.stale, s.session_number > bindparam("after"))
            .order_by(s.session_number)
            .limit(bindparam("chunk", type_=Integer))
        )
        self._store = (
            update(stats)
            .where(s.session_number == bindparam("n"), s.version == bindparam("v"))
            .values(
                computed=bindparam("v"),
                stale=False,
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
                self._db.write(partial(_execute, self._db.dialect, self._store, params))
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
                # Moving version (not computed) also fails the version check of a write
                # that a refresh under the old keys has in flight.
                conn.execute(update(stats).values(STALE_BUMP))

        self._db.write(work)

    def stale(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).where(stats.c.stale)).scalar_one())

    # -- sums over a range ------------------------------------------------------------

    def counts(self, scope: MetricsScope, by: str | None) -> list[tuple[Any, Counts]]:
        """The sums of every metric over ``scope``, by group (``None``: one group).

        By day or hour (or as one group) over a range of whole hours, the sums of the
        computed rows come from ``session_stats_hourly`` (storage/sql/_rollup.py), the rest
        from ``session_stats``: the same numbers, read from about 720 rows instead of
        every session of 30 days."""
        key = _group_key(by)
        s = stats.c
        groups: dict[Any, Counts] = {}
        hours = _whole_hours(scope) if by in (None, "day", "hour") else None
        narrowed = (scope.ranker, scope.query, scope.batch_id) != (None, None, None)
        with self._db.read() as conn:
            if hours is None or narrowed:
                _add_rows(groups, conn.execute(_sums(key, scope)))
            else:
                lo, hi = hours
                irrelevant = scope.include_irrelevant
                lo_ms, hi_ms = lo * _HOUR_MS, None if hi is None else hi * _HOUR_MS
                _add_rows(groups, conn.execute(_sums(key, _within(scope.since_ms, lo_ms, scope))))
                if hi_ms is not None:
                    edge = _within(hi_ms, scope.until_ms, scope)
                    _add_rows(groups, conn.execute(_sums(key, edge)))
                _add_rows(groups, conn.execute(_hourly_sums(by, lo, hi, irrelevant)))
            # The percentiles' values, one text list per group: 100,000 of them travel as
            # one row each no faster than the SQL takes (a narrow covering index) to read.
            listed = self._db.dialect.text_list(s.first_interaction_ms)
            ttfi = _scoped(
                select(key.label("g"), listed).where(s.first_interaction_ms.is_not(None)), scope
            ).group_by(key)
            for g, values in conn.execute(ttfi):
                groups[g].first_interaction_ms.extend(map(int, values.split(",")))
        # A group is a group of sessions: an hour whose sessions all left sums to none.
        kept = ((g, c) for g, c in groups.items() if c.sessions)
        return sorted(kept, key=lambda kv: (kv[0] is None, kv[0]))

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
            _scoped(select(s.query_key, measure.label("m")).where(s.computed > 0), scope)
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
        # Plain columns in GROUP BY: an expression such as ``results > 0`` binds its 0
        # once in SELECT and once in GROUP BY, which PostgreSQL does not see as one.
        columns = (s.ranker, s.results, s.first_position, s.purchased)
        query = (
            _scoped(select(*columns, func.count()).where(s.computed > 0), scope)
            .where(s.ranker.in_(list(rankers)))
            .group_by(*columns)
        )
        merged: dict[str, dict[tuple[bool, int | None, bool], int]] = {r: {} for r in rankers}
        with self._db.read() as conn:
            for ranker, results, first, bought, n in conn.execute(query):
                key = (bool(results), first, bool(bought))
                merged[ranker][key] = merged[ranker].get(key, 0) + int(n)
        return {r: [(*k, n) for k, n in found.items()] for r, found in merged.items()}

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


def _aggregates() -> list[ColumnElement[Any]]:
    s = stats.c
    return [
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


def _sums(key: ColumnElement[Any], scope: MetricsScope) -> Select[Any]:
    # A row never computed (a session registered after the refresh began) is left out,
    # as the hourly sums leave it out: counted before its stats exist, it would count
    # as a session without results.
    query = select(key.label("g"), *_aggregates()).where(stats.c.computed > 0)
    return _scoped(query, scope).group_by(key)


def _hourly_sums(by: str | None, lo: int, hi: int | None, irrelevant: bool) -> Select[Any]:
    h = hourly.c
    key: ColumnElement[Any] = {None: literal(None), "day": h.hour // 24, "hour": h.hour}[by]
    query = select(key.label("g"), *(func.sum(h[c]) for c in ROLLUP_COLUMNS)).where(h.hour >= lo)
    if hi is not None:
        query = query.where(h.hour < hi)
    if not irrelevant:
        query = query.where(h.is_irrelevant == false())
    return query.group_by(key)


def _whole_hours(scope: MetricsScope) -> tuple[int, int | None] | None:
    """The whole hours of ``scope`` the hourly sums answer for, from hour 1 (hours before
    it hold times before 1970, where ``/`` rounds toward zero), or None if there are none."""
    lo = 1 if scope.since_ms is None else max(1, -(-scope.since_ms // _HOUR_MS))
    hi = None if scope.until_ms is None else scope.until_ms // _HOUR_MS
    if hi is not None and hi <= lo:
        return None
    return lo, hi


def _within(since: int | None, until: int | None, scope: MetricsScope) -> MetricsScope:
    return MetricsScope(since, until, scope.include_irrelevant)


def _add_rows(groups: dict[Any, Counts], rows: Any) -> None:
    """Add rows of (group, the sums in ``ROLLUP_COLUMNS``' order) to ``groups``."""
    for row in rows:
        g = row[0]
        (n, with_results, interacted, purchased, rr, clicks, clicked_at, inter, unshown) = row[1:10]
        rest = row[10:]
        c = groups.get(g)
        if c is None:
            c = groups[g] = Counts()
        c.sessions += int(n or 0)
        c.with_results += int(with_results or 0)
        c.interacted += int(interacted or 0)
        c.purchased += int(purchased or 0)
        c.reciprocal_ranks += float(rr or 0.0)
        c.clicks += int(clicks or 0)
        c.click_positions += int(clicked_at or 0)
        c.interactions += int(inter or 0)
        c.unshown_events += int(unshown or 0)
        for k in range(MAX_POSITION):
            c.shown_at[k] += int(rest[k] or 0)
            c.interacted_at[k] += int(rest[MAX_POSITION + k] or 0)


def _execute(dialect: Any, statement: Any, params: list[dict[str, Any]], conn: Any) -> None:
    dialect.serialize_refresh(conn)
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
