"""The improvement queue: sessions queued for the improvement worker, claimed under a
lease, acknowledged once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, and_, func, or_, select, update

from searchtrail.errors import Conflict, QueueEntryNotFound, SessionNotFound
from searchtrail.models import QueueCounts, QueueEntry
from searchtrail.storage.api import QueueState
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.schema import improvement_queue, sessions

__all__ = ["SqlQueue"]

_PENDING = QueueState.PENDING.value
_CLAIMED = QueueState.CLAIMED.value
_FAILED = QueueState.FAILED.value
_STATES = frozenset(s.value for s in QueueState)


def _entry(row: Row[Any], lease_ms: int) -> QueueEntry:
    claimed = row.state == _CLAIMED
    return QueueEntry(
        entry_id=row.entry_id,
        session_id=row.session_id,
        state=row.state,
        attempts=row.attempts,
        enqueued_at_ms=row.enqueued_at_ms,
        claimed_at_ms=row.claimed_at_ms,
        claimed_by=row.claimed_by,
        lease_expires_at_ms=row.claimed_at_ms + lease_ms if claimed else None,
        finished_at_ms=row.finished_at_ms,
        error=row.error,
    )


class SqlQueue:
    def __init__(self, db: _Database) -> None:
        self._db = db

    def enqueue(self, session_id: str, now: int, lease_ms: int) -> QueueEntry:
        """Queue a session once: while an entry for it is pending or claimed, answer that one."""
        q = improvement_queue

        def work(conn: Connection) -> QueueEntry:
            # The session row is the lock that keeps two concurrent enqueues from both inserting.
            found = conn.execute(
                select(sessions.c.session_number)
                .where(sessions.c.session_id == session_id)
                .with_for_update(key_share=True)
            ).scalar()
            if found is None:
                raise SessionNotFound(session_id)
            open_entry = conn.execute(
                select(q)
                .where(q.c.session_id == session_id, q.c.state.in_((_PENDING, _CLAIMED)))
                .order_by(q.c.entry_id)
                .limit(1)
            ).first()
            if open_entry is not None:
                return _entry(open_entry, lease_ms)
            entry_id = conn.execute(
                q.insert()
                .values(session_id=session_id, state=_PENDING, attempts=0, enqueued_at_ms=now)
                .returning(q.c.entry_id)
            ).scalar_one()
            return _entry(conn.execute(select(q).where(q.c.entry_id == entry_id)).one(), lease_ms)

        return self._db.write(work)

    def claim(
        self, worker: str | None, limit: int, now: int, lease_ms: int, max_attempts: int
    ) -> list[QueueEntry]:
        """Hand out up to ``limit`` entries, oldest first, each to one claimer only.

        Selecting and marking happen in one write transaction (on PostgreSQL with
        ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take different rows). An entry
        whose lease expired is handed out again, unless it used up ``max_attempts``.
        """
        q = improvement_queue
        expired = and_(q.c.state == _CLAIMED, q.c.claimed_at_ms <= now - lease_ms)

        def work(conn: Connection) -> list[QueueEntry]:
            conn.execute(
                update(q)
                .where(expired, q.c.attempts >= max_attempts)
                .values(
                    state=_FAILED,
                    finished_at_ms=now,
                    error=f"lease expired on each of {max_attempts} claims",
                )
            )
            ids = (
                conn.execute(
                    select(q.c.entry_id)
                    .where(or_(q.c.state == _PENDING, expired))
                    .order_by(q.c.entry_id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                update(q)
                .where(q.c.entry_id.in_(ids))
                .values(
                    state=_CLAIMED,
                    claimed_at_ms=now,
                    claimed_by=worker,
                    attempts=q.c.attempts + 1,
                )
            )
            claimed = conn.execute(select(q).where(q.c.entry_id.in_(ids)).order_by(q.c.entry_id))
            return [_entry(r, lease_ms) for r in claimed]

        return self._db.write(work)

    def finish(
        self,
        entry_id: int,
        attempt: int,
        state: QueueState | str,
        error: str | None,
        now: int,
        lease_ms: int,
    ) -> QueueEntry:
        """Acknowledge a claim as done or failed; repeating the same acknowledgement is a no-op."""
        q = improvement_queue
        state = str(state)

        def work(conn: Connection) -> QueueEntry:
            row = conn.execute(select(q).where(q.c.entry_id == entry_id).with_for_update()).first()
            if row is None:
                raise QueueEntryNotFound(entry_id)
            if row.state == state and row.attempts == attempt:
                return _entry(row, lease_ms)
            if row.state != _CLAIMED:
                raise Conflict(
                    f"Improvement queue entry {entry_id} is {row.state}, not claimed; "
                    "only a claimed entry can be acknowledged"
                )
            if row.attempts != attempt:
                raise Conflict(
                    f"Improvement queue entry {entry_id} was claimed again (attempt "
                    f"{row.attempts}) after the lease of attempt {attempt} expired"
                )
            conn.execute(
                update(q)
                .where(q.c.entry_id == entry_id)
                .values(state=state, finished_at_ms=now, error=error)
            )
            return _entry(conn.execute(select(q).where(q.c.entry_id == entry_id)).one(), lease_ms)

        return self._db.write(work)

    def counts(self) -> QueueCounts:
        q = improvement_queue
        with self._db.read() as conn:
            rows = conn.execute(select(q.c.state, func.count().label("n")).group_by(q.c.state))
            return QueueCounts(**{r.state: r.n for r in rows if r.state in _STATES})
