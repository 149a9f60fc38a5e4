"""Erasing a user and pruning old sessions (the ``Privacy`` protocol).

Both remove whole sessions the same way (``_remove``), in this order, each step a
statement of its own:

1. ``session_stats``: its delete trigger takes the rows out of the hourly sums, so the
   metrics of what remains stay exact. On PostgreSQL a push to one of these sessions
   updates this row first, so the delete waits for a push in flight, and a push after it
   finds no row (404): no event lands on a session being removed.
2. ``events`` (read in a statement after 1, it sees the events of that push).
3. ``sessions``.
4. ``improvement_queue``: after the sessions, because an enqueue holds its session's row
   while it inserts; an entry enqueued meanwhile is committed before this runs.

Every removal first takes the metrics refresh's lock (``serialize_refresh``): deletes
update the hourly sums as a refresh's writes do, and two writers taking those rows in
turn could deadlock. It also makes two pruners (two ``serve`` workers) take turns: each
chunk is read after the other's commit, so a session is counted by one of them only.

Retention: ``prune`` removes at most ``PRUNE_CHUNK`` sessions per transaction, oldest
first, found by ``session_stats``' index on ``created_at_ms`` (every session has its
row: schema.session_stats), so live writes wait for one chunk at most. On PostgreSQL
``prune`` first drops the whole months that have expired (``_drop_months``); the rows
left (a partial month, sessions kept) then go as here.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, select

from searchtrail.storage.api import PruneResult, Removed, UserRecord
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql._rows import events_of, session
from searchtrail.storage.sql.schema import (
    batches,
    events,
    improvement_queue,
    privacy_audit,
    session_stats,
    sessions,
)

__all__ = ["PRUNE_CHUNK", "SqlPrivacy"]

# Sessions one prune transaction removes: a chunk holds the write lock (SQLite) or its
# rows and the refresh lock (PostgreSQL) for a bounded time, not for the whole backlog;
# what one costs is in the commit that set it.
PRUNE_CHUNK = 1000
# Values bound in one IN list: under SQLite's limit of bound parameters.
_IN_LIST = 500
_ARCHIVED = "archived"


class SqlPrivacy:
    def __init__(self, db: _Database) -> None:
        self._db = db
        self.prune_chunk = PRUNE_CHUNK

    # -- erase ----------------------------------------------------------------------------

    def erase(self, user_ids: Sequence[str], path: str, now_ms: int) -> Removed:
        wanted = sorted(set(user_ids))

        def work(conn: Connection) -> Removed:
            self._db.dialect.serialize_refresh(conn)
            found: list[tuple[int, str]] = []
            for part in _parts(wanted):
                query = select(sessions.c.session_number, sessions.c.session_id).where(
                    sessions.c.user_id.in_(part)
                )
                found.extend((int(n), str(i)) for n, i in conn.execute(query))
            removed = _remove(conn, found)
            _audit(conn, "erase", path, now_ms, removed)
            return removed

        return self._db.write(work)

    def user_sessions(
        self, user_ids: Sequence[str], after_number: int, limit: int
    ) -> builtins.list[tuple[int, UserRecord]]:
        wanted = sorted(set(user_ids))
        with self._db.read() as conn:
            rows = conn.execute(
                select(sessions)
                .where(sessions.c.user_id.in_(wanted), sessions.c.session_number > after_number)
                .order_by(sessions.c.session_number)
                .limit(limit)
            ).all()
            numbers = [r.session_number for r in rows]
            evs = events_of(conn, numbers, None)
            queue: dict[str, list[dict[str, Any]]] = {r.session_id: [] for r in rows}
            if rows:
                entries = conn.execute(
                    select(improvement_queue)
                    .where(improvement_queue.c.session_id.in_(list(queue)))
                    .order_by(improvement_queue.c.entry_id)
                )
                for e in entries:
                    queue[e.session_id].append(dict(e._mapping))
        return [
            (
                r.session_number,
                UserRecord(session(r, evs[r.session_number][0]), queue[r.session_id]),
            )
            for r in rows
        ]

    # -- retention ------------------------------------------------------------------------

    def prune(
        self,
        cutoff_ms: int,
        keep_unarchived: bool,
        dry_run: bool,
        path: str,
        now_ms: int,
        max_chunks: int | None = None,
    ) -> PruneResult:
        if dry_run:
            # Every session a month's drop would take is one the rows' count finds.
            return PruneResult(cutoff_ms, self._count(cutoff_ms, keep_unarchived), True)
        dropped = self._drop_months(cutoff_ms, keep_unarchived, path, now_ms)
        rows = self._prune_rows(cutoff_ms, keep_unarchived, path, now_ms, max_chunks)
        return PruneResult(cutoff_ms, dropped + rows.removed, False, rows.chunks, rows.more)

    def _drop_months(
        self, cutoff_ms: int, keep_unarchived: bool, path: str, now_ms: int
    ) -> Removed:
        """PostgreSQL: drop the whole months that have expired (storage/sql/partitions.py),
        one transaction; elsewhere, and for what a month leaves, the row deletes follow."""
        dialect = self._db.dialect
        if not dialect.partitioned:
            return Removed()  # no transaction: on SQLite it would be a commit, for nothing

        def work(conn: Connection) -> Removed:
            dialect.serialize_refresh(conn)  # it rewrites the hourly sums, as deletes do
            dialect.maintain(conn, now_ms)  # a month still numbered is never dropped
            _parts, n, e, q = dialect.drop_expired(
                conn, cutoff_ms, keep_unarchived=keep_unarchived, dry_run=False
            )
            removed = Removed(n, e, q)
            _audit(conn, "prune", path, now_ms, removed)  # nothing removed: no row
            return removed

        return self._db.write(work, alone=True)

    def _prune_rows(
        self,
        cutoff_ms: int,
        keep_unarchived: bool,
        path: str,
        now_ms: int,
        max_chunks: int | None,
    ) -> PruneResult:
        """Remove the old sessions a chunk per transaction until a chunk finds fewer than
        a chunk's worth: a pruner in another process may have taken some of them."""
        total, chunks = Removed(), 0
        chunk = self.prune_chunk

        def work(conn: Connection) -> tuple[int, Removed]:
            self._db.dialect.serialize_refresh(conn)
            query = (
                _old(cutoff_ms, keep_unarchived)
                .with_only_columns(sessions.c.session_number, sessions.c.session_id)
                # The index's order alone: a tiebreak would sort every old session per chunk.
                .order_by(session_stats.c.created_at_ms)
                .limit(chunk)
            )
            found = [(int(n), str(i)) for n, i in conn.execute(query)]
            removed = _remove(conn, found)
            _audit(conn, "prune", path, now_ms, removed)
            return len(found), removed

        while True:
            # alone: on PostgreSQL outside the group commit, so that the pushes of this
            # process do not wait behind another process's chunk holding the lock.
            seen, removed = self._db.write(work, alone=True)
            if seen:
                chunks += 1
            total += removed
            if seen < chunk:
                return PruneResult(cutoff_ms, total, False, chunks)
            if max_chunks is not None and chunks >= max_chunks:
                return PruneResult(cutoff_ms, total, False, chunks, more=True)

    def _count(self, cutoff_ms: int, keep_unarchived: bool) -> Removed:
        old = _old(cutoff_ms, keep_unarchived)
        numbers = old.with_only_columns(sessions.c.session_number)
        ids = old.with_only_columns(sessions.c.session_id)
        with self._db.read() as conn:
            n = conn.execute(old.with_only_columns(func.count())).scalar_one()
            e = conn.execute(
                select(func.count()).where(events.c.session_number.in_(numbers.scalar_subquery()))
            ).scalar_one()
            q = conn.execute(
                select(func.count()).where(
                    improvement_queue.c.session_id.in_(ids.scalar_subquery())
                )
            ).scalar_one()
        return Removed(int(n), int(e), int(q))


def _old(cutoff_ms: int, keep_unarchived: bool) -> Select[Any]:
    """The sessions a prune removes (columns to be chosen), found by session_stats'
    index on created_at_ms."""
    query = (
        select(session_stats.c.session_number)
        .join(sessions, sessions.c.session_number == session_stats.c.session_number)
        .where(session_stats.c.created_at_ms < cutoff_ms)
    )
    if keep_unarchived:
        archived = select(batches.c.batch_id).where(batches.c.state == _ARCHIVED)
        query = query.where(session_stats.c.batch_id.in_(archived.scalar_subquery()))
    return query


def _parts(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _IN_LIST] for i in range(0, len(values), _IN_LIST)]


def _remove(conn: Connection, found: Sequence[tuple[int, str]]) -> Removed:
    """Delete these sessions (number, id) whole, in the order the module docstring gives."""
    numbers = [n for n, _ in found]
    ids = [i for _, i in found]
    removed_events = removed_sessions = removed_entries = 0
    for part in _parts(numbers):
        conn.execute(session_stats.delete().where(session_stats.c.session_number.in_(part)))
    for part in _parts(numbers):
        removed_events += conn.execute(
            events.delete().where(events.c.session_number.in_(part))
        ).rowcount
    for part in _parts(numbers):
        removed_sessions += conn.execute(
            sessions.delete().where(sessions.c.session_number.in_(part))
        ).rowcount
    for part in _parts(ids):
        removed_entries += conn.execute(
            improvement_queue.delete().where(improvement_queue.c.session_id.in_(part))
        ).rowcount
    return Removed(removed_sessions, removed_events, removed_entries)


def _audit(conn: Connection, action: str, path: str, now_ms: int, removed: Removed) -> None:
    """The audit row of a removal, in its transaction. Every erase is recorded (a request
    that found nothing was still made); a prune chunk only when it removed something."""
    if action == "prune" and removed == Removed():
        return
    conn.execute(
        privacy_audit.insert().values(
            at_ms=now_ms,
            action=action,
            path=path,
            sessions=removed.sessions,
            events=removed.events,
            queue_entries=removed.queue_entries,
        )
    )
