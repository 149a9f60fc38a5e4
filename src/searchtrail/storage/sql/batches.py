"""Batches: the collecting batch, its release, its later states and its pages of sessions.

Registrations pass the dialect's batch gate together, a release alone: no session
lands in a batch after its release was answered (postgres.py; on SQLite every write
holds the database lock).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

from sqlalchemy import Connection, func, select, update

from searchtrail.errors import BatchNotFound, NoCollectingBatch
from searchtrail.models import BatchInfo, BatchSessionsPage, ReleaseResult
from searchtrail.storage.api import BatchSizes, BatchState
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql._rows import events_of, session
from searchtrail.storage.sql.dialect import Dialect
from searchtrail.storage.sql.schema import batches, events, sessions

__all__ = ["SqlBatches", "collecting_batch_id"]


def collecting_batch_id(conn: Connection, dialect: Dialect, now: int) -> int:
    """The collecting batch, opened if none is; the caller holds the gate (shared).

    When another registration opened it first (our insert met its ``collecting``),
    the loop reads that one; no release can close it meanwhile, we hold the gate.
    """
    query = select(batches.c.batch_id).where(batches.c.collecting == 1)
    while True:
        batch_id = conn.execute(query).scalar()
        if batch_id is not None:
            return int(batch_id)
        opened = conn.execute(
            dialect.insert(batches)
            .values(
                state=BatchState.COLLECTING.value,
                collecting=1,
                created_at_ms=now,
                updated_at_ms=now,
            )
            .on_conflict_do_nothing()
            .returning(batches.c.batch_id)
        ).scalar()
        if opened is not None:
            return int(opened)


def _batch_infos(
    conn: Connection, *, batch_id: int | None = None, state: str | None = None
) -> list[BatchInfo]:
    """Batches with their session and event counts, two grouped scans, no per-batch query."""
    n_sessions = select(sessions.c.batch_id, func.count().label("n")).group_by(sessions.c.batch_id)
    n_events = select(sessions.c.batch_id, func.count().label("n")).select_from(
        sessions.join(events, events.c.session_number == sessions.c.session_number)
    )
    query = select(batches)
    if batch_id is not None:
        query = query.where(batches.c.batch_id == batch_id)
        n_sessions = n_sessions.where(sessions.c.batch_id == batch_id)
        n_events = n_events.where(sessions.c.batch_id == batch_id)
    if state is not None:
        query = query.where(batches.c.state == state)
    s_sub = n_sessions.subquery()
    e_sub = n_events.group_by(sessions.c.batch_id).subquery()
    query = (
        query.add_columns(
            func.coalesce(s_sub.c.n, 0).label("n_sessions"),
            func.coalesce(e_sub.c.n, 0).label("n_events"),
        )
        .outerjoin(s_sub, s_sub.c.batch_id == batches.c.batch_id)
        .outerjoin(e_sub, e_sub.c.batch_id == batches.c.batch_id)
        .order_by(batches.c.batch_id)
    )
    return [
        BatchInfo(
            batch_id=r.batch_id,
            state=r.state,
            release_id=r.release_id,
            created_at_ms=r.created_at_ms,
            released_at_ms=r.released_at_ms,
            updated_at_ms=r.updated_at_ms,
            sessions=r.n_sessions,
            events=r.n_events,
        )
        for r in conn.execute(query)
    ]


class SqlBatches:
    def __init__(self, db: _Database) -> None:
        self._db = db

    def release(self, release_id: str, now: int) -> ReleaseResult:
        """Close the collecting batch under ``release_id``; the same key answers the same batch.

        The release passes the batch gate alone, in a transaction of its own where the
        dialect needs it: it waits for registrations in flight.
        """
        gate = self._db.dialect.batch_gate

        def released(conn: Connection) -> ReleaseResult | None:
            row = conn.execute(select(batches).where(batches.c.release_id == release_id)).first()
            if row is None:
                return None
            return ReleaseResult(
                release_id=release_id,
                batch_id=row.batch_id,
                released_at=row.released_at_ms // 1000,
                released_at_ms=row.released_at_ms,
            )

        def work(conn: Connection) -> ReleaseResult:
            answer = released(conn)
            if answer is not None:
                return answer
            gate(conn, exclusive=True)
            batch_id = conn.execute(
                select(batches.c.batch_id).where(batches.c.collecting == 1).with_for_update()
            ).scalar()
            if batch_id is None:
                # A concurrent release with this key may have taken the batch while we waited.
                answer = released(conn)
                if answer is not None:
                    return answer
                raise NoCollectingBatch()
            conn.execute(
                update(batches)
                .where(batches.c.batch_id == batch_id)
                .values(
                    state=BatchState.RELEASED.value,
                    collecting=None,
                    release_id=release_id,
                    released_at_ms=now,
                    updated_at_ms=now,
                )
            )
            return ReleaseResult(
                release_id=release_id,
                batch_id=batch_id,
                released_at=now // 1000,
                released_at_ms=now,
            )

        return self._db.write(work, alone=True)

    def set_state(
        self, batch_id: int, state: BatchState | str, check: Callable[[str], None], now: int
    ) -> BatchInfo:
        """Move a batch to ``state``; ``check(current)`` raises if the move is not allowed."""

        def work(conn: Connection) -> BatchInfo:
            current = conn.execute(
                select(batches.c.state).where(batches.c.batch_id == batch_id).with_for_update()
            ).scalar()
            if current is None:
                raise BatchNotFound(batch_id)
            check(current)
            if current != state:
                conn.execute(
                    update(batches)
                    .where(batches.c.batch_id == batch_id)
                    .values(state=state, updated_at_ms=now)
                )
            return _batch_infos(conn, batch_id=batch_id)[0]

        return self._db.write(work)

    def get(self, batch_id: int) -> BatchInfo:
        with self._db.read() as conn:
            found = _batch_infos(conn, batch_id=batch_id)
        if not found:
            raise BatchNotFound(batch_id)
        return found[0]

    def list(self, state: str | None = None) -> builtins.list[BatchInfo]:
        with self._db.read() as conn:
            return _batch_infos(conn, state=state)

    def sessions_page(
        self, batch_id: int, after_number: int, limit: int, events_limit: int | None
    ) -> BatchSessionsPage:
        """One page by keyset on ``session_number`` and its events in one more query."""
        with self._db.read() as conn:
            found = conn.execute(select(batches.c.batch_id).where(batches.c.batch_id == batch_id))
            if found.scalar() is None:
                raise BatchNotFound(batch_id)
            rows = conn.execute(
                select(sessions)
                .where(sessions.c.batch_id == batch_id, sessions.c.session_number > after_number)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            numbers = [r.session_number for r in rows]
            evs = events_of(conn, numbers, events_limit)
        return BatchSessionsPage(
            batch_id=batch_id,
            last_number=numbers[-1] if numbers else None,
            sessions=[
                session(r, evs[r.session_number][0], events_cursor=evs[r.session_number][1])
                for r in rows
            ],
        )

    def sizes(self) -> BatchSizes:
        """Two small reads: the batches table grouped, and the collecting batch's sessions
        counted on the (batch_id, session_number) index."""
        collecting = select(batches.c.batch_id).where(batches.c.collecting == 1).scalar_subquery()
        with self._db.read() as conn:
            states = conn.execute(select(batches.c.state, func.count()).group_by(batches.c.state))
            by_state = {str(state): int(n) for state, n in states}
            held = conn.execute(
                select(func.count()).select_from(sessions).where(sessions.c.batch_id == collecting)
            ).scalar()
        return BatchSizes(batches=by_state, collecting_sessions=int(held or 0))
