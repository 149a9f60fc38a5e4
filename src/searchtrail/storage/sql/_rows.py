"""Rows to models: sessions and their pages of events, as the aggregates read them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select

from searchtrail.models import INT64_MIN, Session, StoredEvent, encode_events_cursor
from searchtrail.storage.sql.schema import events

__all__ = ["EVENT_FIELDS", "SESSION_JSON", "events_of", "events_page", "get_params", "session"]


def event_fields(cols: Any) -> list[Any]:
    """An event's answered fields, in the order ``stored_event`` reads them: the last
    columns of every query that reads events (of ``events`` or of a subquery of it)."""
    return [
        cols.event_id,
        cols.object_id,
        cols.event_type,
        cols.created_at_ms.label("event_created_at_ms"),  # a session has a created_at_ms too
        cols.meta,
        cols.extra.label("event_extra"),  # a session has an extra too
    ]


EVENT_FIELDS = event_fields(events.c)
# In a get's rows: the event's id (its keyset tiebreak), then EVENT_FIELDS.
_ROW_ID = -len(EVENT_FIELDS) - 1
_EVENT_CREATED_AT = [c.key for c in EVENT_FIELDS].index("event_created_at_ms") - len(EVENT_FIELDS)

# A session's JSON columns, which a get reads as text: the join repeats them on every
# event's row, and the driver would otherwise decode them once per row.
SESSION_JSON = (
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "extra",
)


def get_params(session_id: str, events_limit: int, after: tuple[int, int] | None) -> dict[str, Any]:
    """A get's parameters; no ``after`` reads from before any event (ids are positive)."""
    after_ms, after_id = (INT64_MIN, 0) if after is None else after
    return {
        "session_id": session_id,
        "after_ms": after_ms,
        "after_id": after_id,
        "rows_limit": events_limit + 1,
    }


def stored_event(r: Sequence[Any]) -> StoredEvent:
    event_id, object_id, event_type, created_at_ms, meta, extra = r[-len(EVENT_FIELDS) :]
    return StoredEvent(
        event_id=event_id,
        object_id=object_id,
        event_type=event_type,
        created_at=created_at_ms // 1000,
        created_at_ms=created_at_ms,
        meta=meta,
        extra=extra,
    )


def events_page(
    found: Sequence[Sequence[Any]], limit: int | None
) -> tuple[list[StoredEvent], str | None]:
    """A page of one session's event rows (its id, then ``EVENT_FIELDS``, last), read in
    keyset order up to one past ``limit``: the events answered and the cursor to the rest."""
    if limit is None or len(found) <= limit:
        return [stored_event(r) for r in found], None
    answered = found[:limit]
    # After the last event answered; with none answered (limit 0), just before the first
    # event left: ids are integers, so no event sorts between that position and it.
    last = answered[-1] if answered else found[0]
    tiebreak = last[_ROW_ID] if answered else last[_ROW_ID] - 1
    cursor = encode_events_cursor(last[_EVENT_CREATED_AT], tiebreak)
    return [stored_event(r) for r in answered], cursor


def events_of(
    conn: Connection, numbers: Sequence[int], limit: int | None
) -> dict[int, tuple[list[StoredEvent], str | None]]:
    """The events of many sessions in one query, at most ``limit`` each (oldest first),
    each with the ``events_cursor`` to the rest (``None`` when none are left out).

    ``ROW_NUMBER()`` numbers each session's events in the database, so a page of
    sessions costs one query however many events they hold. One event past the limit
    is read, to know whether more follow.
    """
    found: dict[int, list[Sequence[Any]]] = {n: [] for n in numbers}
    if numbers:
        order = (events.c.created_at_ms, events.c.id)
        if limit is None:
            query = (
                select(events.c.session_number, events.c.id, *EVENT_FIELDS)
                .where(events.c.session_number.in_(numbers))
                .order_by(events.c.session_number, *order)
            )
        else:
            position = (
                func.row_number()
                .over(partition_by=events.c.session_number, order_by=order)
                .label("position")
            )
            ranked = select(events, position).where(events.c.session_number.in_(numbers)).subquery()
            query = (
                select(ranked.c.session_number, ranked.c.id, *event_fields(ranked.c))
                .where(ranked.c.position <= limit + 1)
                .order_by(ranked.c.session_number, ranked.c.created_at_ms, ranked.c.id)
            )
        for r in conn.execute(query):
            found[r.session_number].append(r)
    return {n: events_page(rows, limit) for n, rows in found.items()}


def session(
    row: Row[Any] | Mapping[str, Any],
    evs: list[StoredEvent],
    *,
    events_cursor: str | None = None,
) -> Session:
    m = row._mapping if isinstance(row, Row) else row
    return Session(
        session_id=m["session_id"],
        search_query=m["search_query"],
        search_results=m["search_results"],
        search_meta=m["search_meta"],
        payload_filter=m["payload_filter"],
        sort_by=m["sort_by"],
        user_id=m["user_id"],
        created_at=m["created_at_ms"] // 1000,
        created_at_ms=m["created_at_ms"],
        is_irrelevant=bool(m["is_irrelevant"]),
        batch_id=m["batch_id"],
        session_number=m["session_number"],
        extra=m["extra"],
        events=evs,
        has_more_events=events_cursor is not None,
        events_cursor=events_cursor,
    )
