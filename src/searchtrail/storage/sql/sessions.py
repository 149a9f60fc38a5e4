"""Sessions and their events: registrations, gets and pushes, the hot path.

Its statements are built once (building a Core statement costs more than running it).
A registration is one statement in the common case; a push is one statement that finds
its session and counts its events, then one bulk insert handed to the driver (the
dialect's); a get is one statement. ``register_write`` and ``store_events_write`` are the
named writes of the registry (``WRITE_OPS``) that the event loop hands over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pydantic_core
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    tuple_,
    update,
)

from searchtrail.errors import SessionFull, SessionNotFound
from searchtrail.limits import DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_SESSION_EVENTS_LIMIT
from searchtrail.models import Session
from searchtrail.storage.api import EventRow, Registration, SessionRow
from searchtrail.storage.sql._database import WriteBuilder, _Database
from searchtrail.storage.sql._loopreads import Rows
from searchtrail.storage.sql._rows import (
    EVENT_FIELDS,
    SESSION_JSON,
    events_page,
    get_params,
)
from searchtrail.storage.sql._rows import session as _session
from searchtrail.storage.sql.batches import collecting_batch_id
from searchtrail.storage.sql.engine import unavailable_on_db_outage
from searchtrail.storage.sql.schema import STALE_BUMP, batches, events, session_stats, sessions

__all__ = ["SqlSessions", "write_ops"]

# What a registration's write answers: of a session it created, the columns the database
# chose (number, batch) and its JSON columns as stored, as text (``_CREATED``: the caller
# holds the rest as it sent them); of a session that existed, the stored row. Then whether
# this call created it, and whether the stored created_at was given by a client. Plain
# dicts: from the writer process they are pickled back, where a model pickles several
# times slower and text faster than the values it holds. The JSON comes back as stored,
# not as sent: PostgreSQL's JSONB writes some numbers otherwise (1e300, -0.0), and an
# answer must show what a get will.
_Stored = tuple[dict[str, Any], bool, bool]
_CREATED = (
    sessions.c.session_number,
    sessions.c.batch_id,
    *(cast(sessions.c[name], Text).label(name) for name in SESSION_JSON),
)


def write_ops(s: SqlSessions) -> dict[str, WriteBuilder]:
    """The registry of named writes the event loop hands over (``_Database.write_async``);
    the writer process builds these and no others."""
    return {"register_session": s.register_write, "store_events": s.store_events_write}


class SqlSessions:
    def __init__(
        self, db: _Database, max_events_per_session: int = DEFAULT_MAX_EVENTS_PER_SESSION
    ) -> None:
        self._db = db
        self._gate = db.dialect.batch_gate
        self.max_events_per_session = max_events_per_session
        self._insert_events = db.dialect.events_insert(events, db.engine.dialect)
        self._session_by_id = select(sessions).where(
            sessions.c.session_id == bindparam("session_id")
        )
        # A push's target and the events it holds, in the one statement a push needs
        # anyway: the count bounds the push's new events from above without another
        # round trip (see store_events_write). It is an UPDATE so that the push moves its
        # session's stats version in its own transaction (schema.session_stats): the
        # metrics' refresh then knows the session changed, at no extra statement. The
        # count is written out: SQLAlchemy drops the table names inside a SQLite RETURNING,
        # and "WHERE session_number = session_number" counted every event of the database.
        self._push_target = (
            update(session_stats)
            .where(
                session_stats.c.session_number
                == select(sessions.c.session_number)
                .where(sessions.c.session_id == bindparam("session_id"))
                .scalar_subquery()
            )
            .values(STALE_BUMP)
            .returning(
                session_stats.c.session_number,
                literal_column(
                    "(SELECT count(*) FROM events "
                    "WHERE events.session_number = session_stats.session_number)",
                    Integer,
                ).label("held"),
            )
        )
        self._whole_push = db.dialect.whole_push(self._push_target, events)
        # One page of a session's events, keyset on (created_at_ms, id). The keyset
        # condition is in the join, not in WHERE, so a session with no events left is
        # still one row (of NULL event fields); it reads one event more than it answers.
        after = tuple_(events.c.created_at_ms, events.c.id) > tuple_(
            bindparam("after_ms", type_=BigInteger), bindparam("after_id", type_=BigInteger)
        )
        self._session_with_events = (
            select(
                *(cast(c, Text).label(c.name) if c.name in SESSION_JSON else c for c in sessions.c),
                events.c.id.label("event_row_id"),
                *EVENT_FIELDS,
            )
            .outerjoin(events, and_(events.c.session_number == sessions.c.session_number, after))
            .where(sessions.c.session_id == bindparam("session_id"))
            .order_by(events.c.created_at_ms, events.c.id)
            .limit(bindparam("rows_limit", type_=Integer))
        )
        self._session_keys = list(self._session_with_events.selected_columns.keys())
        db.read_on_loop(self._session_with_events)
        self._register_into = sessions.insert().returning(*_CREATED)
        given = [c for c in sessions.c if c.name not in ("session_number", "batch_id")]
        self._register_into_collecting = (
            db.dialect.insert(sessions)
            .from_select(
                [*given, sessions.c.batch_id],
                select(*(bindparam(c.name, type_=c.type) for c in given), batches.c.batch_id).where(
                    batches.c.collecting == 1
                ),
            )
            .on_conflict_do_nothing(index_elements=["session_id"])
            .returning(*_CREATED)
        )

    # -- registration ---------------------------------------------------------------------

    def register(self, row: SessionRow, now: int) -> Registration:
        return self._as_session(row, now, self._db.write(self.register_write(row, now)))

    async def register_async(self, row: SessionRow, now: int) -> Registration:
        outcome = await self._db.write_async("register_session", row, now)
        return self._as_session(row, now, outcome)

    def register_write(self, row: SessionRow, now: int) -> Callable[[Connection], _Stored]:
        """The write that inserts a session unless its id exists.

        The common case is one statement: insert into the collecting batch, or nothing
        when the id exists (``ON CONFLICT DO NOTHING``) or no batch collects. Only then
        does it read the stored session, or open a batch and insert again.
        """
        params = {**row, "registered_at_ms": now}

        def work(conn: Connection) -> _Stored:
            self._gate(conn, exclusive=False)
            stored = conn.execute(self._register_into_collecting, params).first()
            if stored is None:
                existing = conn.execute(
                    self._session_by_id, {"session_id": row["session_id"]}
                ).first()
                if existing is not None:
                    return dict(existing._mapping), False, bool(existing.created_at_given)
                batch_id = collecting_batch_id(conn, self._db.dialect, now)
                stored = conn.execute(self._register_into, {**params, "batch_id": batch_id}).one()
            return dict(stored._mapping), True, bool(row["created_at_given"])

        return work

    @staticmethod
    def _as_session(row: SessionRow, now: int, outcome: _Stored) -> Registration:
        stored, created, given = outcome
        if created:
            stored = {**row, "registered_at_ms": now, **stored}
            for name in SESSION_JSON:
                if stored[name] is not None:
                    stored[name] = pydantic_core.from_json(stored[name])
        return _session(stored, []), created, given

    # -- gets -----------------------------------------------------------------------------

    def get(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session:
        params = get_params(session_id, events_limit, after)
        with self._db.read(snapshot=False) as conn:
            rows = conn.execute(self._session_with_events, params).all()
        return self._session_of(session_id, rows, events_limit)

    async def get_async(
        self,
        session_id: str,
        events_limit: int = DEFAULT_SESSION_EVENTS_LIMIT,
        after: tuple[int, int] | None = None,
    ) -> Session:
        reader = self._db.loop_reader
        if reader is not None:
            with unavailable_on_db_outage():
                rows = await reader.rows(get_params(session_id, events_limit, after))
            if rows is not None:
                return self._session_of(session_id, rows, events_limit)
        return await self._db.read_async(self.get, session_id, events_limit, after)

    def _session_of(self, session_id: str, rows: Rows, events_limit: int) -> Session:
        """The session of a get's rows: its columns on each, then one event's (or NULLs).

        The rows hold up to ``events_limit + 1`` events; one past the limit means more
        follow, and the cursor is where the next page starts reading after.
        """
        if not rows:
            raise SessionNotFound(session_id)
        first = dict(zip(self._session_keys, rows[0], strict=True))
        for k in SESSION_JSON:
            if first[k] is not None:
                first[k] = pydantic_core.from_json(first[k])
        event_id = -len(EVENT_FIELDS)
        evs, cursor = events_page([r for r in rows if r[event_id] is not None], events_limit)
        return _session(first, evs, events_cursor=cursor)

    def mark_irrelevant(self, session_id: str) -> None:
        def work(conn: Connection) -> None:
            result = conn.execute(
                update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(is_irrelevant=True)
            )
            if result.rowcount == 0:
                raise SessionNotFound(session_id)

        self._db.write(work)

    # -- pushes ---------------------------------------------------------------------------

    def push(self, session_id: str, rows: Sequence[EventRow]) -> tuple[int, int]:
        """Store a push in one transaction and one bulk statement: (stored, duplicates)."""
        return self._db.write(self.store_events_write(session_id, rows))

    async def push_async(self, session_id: str, rows: Sequence[EventRow]) -> tuple[int, int]:
        result: tuple[int, int] = await self._db.write_async("store_events", session_id, rows)
        return result

    def store_events_write(
        self, session_id: str, rows: Sequence[EventRow]
    ) -> Callable[[Connection], tuple[int, int]]:
        """The write that stores a push whole or not at all: (stored, duplicates)."""
        cap = self.max_events_per_session

        def work(conn: Connection) -> tuple[int, int]:
            if self._whole_push is not None and rows:
                whole = self._whole_push(conn, session_id, rows, cap)
                if whole is None:
                    raise SessionNotFound(session_id)
                number, held, stored = whole
                if held + len(rows) <= cap:
                    return stored, len(rows) - stored
                # Not inserted: whether the new ones fit is decided below, as without it.
            else:
                target = conn.execute(self._push_target, {"session_id": session_id}).first()
                if target is None:
                    raise SessionNotFound(session_id)
                number, held = target
                if not rows:
                    return 0, 0
            # The cap's count is exact where this transaction sees every committed push
            # to the session: on SQLite (one writer at a time) and within one process's
            # group commit. On PostgreSQL two processes' pushes to one session committing
            # at the same instant each count without the other's, and may pass it together.
            if held + len(rows) > cap:
                # Only here can the push pass the cap: count its ids the session holds
                # (duplicates are not new). It raises before writing, so nothing is stored.
                _check_room(conn, session_id, number, held, rows, cap)
            # The database counts the rows it inserted; a conflict inserts none.
            stored = self._insert_events(conn, number, rows)
            return stored, len(rows) - stored

        return work

    # -- bulk -----------------------------------------------------------------------------

    def bulk_register(
        self, rows: Sequence[SessionRow], event_rows: Sequence[dict[str, Any]], now: int
    ) -> None:
        """Load many sessions (``register`` rows) and their events in one transaction.

        No validation, no replay checks: for fixtures, benchmarks and imports of data that
        is already clean. Each event row names its session by ``session_id``.
        """
        dialect = self._db.dialect

        def work(conn: Connection) -> None:
            if not rows:
                return
            dialect.batch_gate(conn, exclusive=False)
            batch_id = collecting_batch_id(conn, dialect, now)
            inserted = conn.execute(
                sessions.insert().returning(
                    sessions.c.session_id, sessions.c.session_number, sort_by_parameter_order=True
                ),
                [{**r, "batch_id": batch_id, "registered_at_ms": now} for r in rows],
            )
            numbers = {r.session_id: r.session_number for r in inserted}
            if event_rows:
                conn.execute(
                    events.insert(),
                    [
                        {k: v for k, v in e.items() if k != "session_id"}
                        | {"session_number": numbers[e["session_id"]]}
                        for e in event_rows
                    ],
                )

        self._db.write(work)


def _check_room(
    conn: Connection,
    session_id: str,
    number: int,
    held: int,
    rows: Sequence[EventRow],
    cap: int,
) -> None:
    """Raise ``SessionFull`` if the push's new events would take the session past ``cap``."""
    ids = list({r[0] for r in rows})
    known = conn.execute(
        select(func.count()).where(events.c.session_number == number, events.c.event_id.in_(ids))
    ).scalar_one()
    new = len(ids) - int(known)
    if held + new > cap:
        raise SessionFull(session_id, held, new, cap)
