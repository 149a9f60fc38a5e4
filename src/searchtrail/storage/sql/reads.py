"""The read side of training data and click models: scans of a batch or a range."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, false, func, select

from searchtrail.storage.api import ClickRow, MetricsScope, SessionActions
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.schema import events, sessions

__all__ = ["SqlReads"]


class SqlReads:
    def __init__(self, db: _Database) -> None:
        self._db = db

    def session_actions(self, batch_id: int, after_number: int, limit: int) -> list[SessionActions]:
        """A keyset page of a batch for training data: two queries, events already grouped."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(
                    sessions.c.session_number,
                    sessions.c.session_id,
                    sessions.c.user_id,
                    sessions.c.created_at_ms,
                    sessions.c.search_query,
                    sessions.c.search_results,
                    sessions.c.is_irrelevant,
                )
                .where(sessions.c.batch_id == batch_id, sessions.c.session_number > after_number)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            if not rows:
                return []
            grouped = conn.execute(
                select(
                    events.c.session_number,
                    events.c.object_id,
                    events.c.event_type,
                    func.count().label("n"),
                )
                .where(
                    events.c.session_number >= rows[0].session_number,
                    events.c.session_number <= rows[-1].session_number,
                )
                .group_by(events.c.session_number, events.c.object_id, events.c.event_type)
            )
            counts: dict[int, int] = {}
            actions: dict[int, list[tuple[str | None, str]]] = {}
            for g in grouped:
                counts[g.session_number] = counts.get(g.session_number, 0) + g.n
                actions.setdefault(g.session_number, []).append((g.object_id, g.event_type))
        return [
            SessionActions(
                session_number=r.session_number,
                session_id=r.session_id,
                user_id=r.user_id,
                created_at_ms=r.created_at_ms,
                search_query=r.search_query,
                result_ids=[item["object_id"] for item in r.search_results],
                is_irrelevant=bool(r.is_irrelevant),
                events=counts.get(r.session_number, 0),
                actions=actions.get(r.session_number, []),
            )
            for r in rows
        ]

    def created_at_quantile(self, batch_id: int, fraction: float) -> int | None:
        """The ``created_at_ms`` below which ``fraction`` of the batch's trainable sessions lie.

        Trainable here means relevant and with events: the sessions an export can use.
        ``None`` when no session is at or above the quantile.
        """
        has_events = exists().where(events.c.session_number == sessions.c.session_number)
        where = (sessions.c.batch_id == batch_id, sessions.c.is_irrelevant == false(), has_events)
        with self._db.read() as conn:
            total = conn.execute(select(func.count()).where(*where)).scalar_one()
            skip = int(total * fraction)
            if skip >= total:
                return None
            value = conn.execute(
                select(sessions.c.created_at_ms)
                .where(*where)
                .order_by(sessions.c.created_at_ms)
                .offset(skip)
                .limit(1)
            ).scalar_one()
        return int(value)

    def click_rows(
        self, scope: MetricsScope, click_types: Sequence[str], after_number: int, limit: int
    ) -> list[ClickRow]:
        """A keyset page of the sessions of ``scope`` (irrelevant ones only if included):
        what each showed, in order, and the objects clicked (events of ``click_types``)."""
        where = [sessions.c.session_number > after_number]
        if scope.since_ms is not None:
            where.append(sessions.c.created_at_ms >= scope.since_ms)
        if scope.until_ms is not None:
            where.append(sessions.c.created_at_ms < scope.until_ms)
        if not scope.include_irrelevant:
            where.append(sessions.c.is_irrelevant == false())
        if scope.batch_id is not None:
            where.append(sessions.c.batch_id == scope.batch_id)
        with self._db.read() as conn:
            rows = conn.execute(
                select(
                    sessions.c.session_number,
                    sessions.c.created_at_ms,
                    sessions.c.search_query,
                    sessions.c.search_results,
                )
                .where(*where)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            if not rows:
                return []
            clicked: dict[int, set[str]] = {}
            for session, object_id in conn.execute(
                select(events.c.session_number, events.c.object_id)
                .where(
                    events.c.session_number >= rows[0].session_number,
                    events.c.session_number <= rows[-1].session_number,
                    events.c.event_type.in_(list(click_types)),
                    events.c.object_id.is_not(None),
                )
                .distinct()
            ):
                clicked.setdefault(session, set()).add(object_id)
        return [
            ClickRow(
                session_number=number,
                created_at_ms=created,
                search_query=query,
                result_ids=[item["object_id"] for item in results],
                clicked=clicked.get(number) or set(),
            )
            for number, created, query, results in rows
        ]
