"""``Clickstream``: the library object that does the work; HTTP and the CLI are faces of it.

It applies the contract's rules (validation under the configured limits, the timestamp
window, idempotent replays) and leaves storage to the store, so a Python program can
embed the service with no HTTP at all::

    with Clickstream("sqlite:///searchtrail.db") as cs:
        cs.create_session(session_id="s1", search_query="red shoes",
                          search_results=[{"object_id": "sku-1"}])
        cs.push_events("s1", [{"event_id": "e1", "object_id": "sku-1"}])
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from searchtrail.errors import SessionConflict, TimestampOutOfWindow
from searchtrail.models import (
    NewSessionEvent,
    PushResult,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    SessionIdRequest,
    parse,
)
from searchtrail.settings import Settings
from searchtrail.store import Store
from searchtrail.timestamps import ms_to_iso, now_ms

__all__ = ["Clickstream"]

# Compared on a replayed registration; created_at only when both sides were given by a client.
_REPLAY_FIELDS = (
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "user_id",
)


class Clickstream:
    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        create_schema: bool = True,
    ) -> None:
        if settings is None:
            settings = Settings() if database_url is None else Settings(database_url=database_url)
        elif database_url is not None:
            settings = settings.model_copy(update={"database_url": database_url})
        self.settings = settings
        self.limits = settings.limits
        self.window = settings.time_window
        self.store = Store(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
            pool_size=settings.pool_size,
        )
        if create_schema:
            self.store.create_schema()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Clickstream:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    # -- rules --------------------------------------------------------------------

    def _stamp(self, value_ms: int | None, field: str, now: int) -> int:
        if value_ms is None:
            return now
        if not self.window.contains(value_ms, now):
            raise TimestampOutOfWindow(field, ms_to_iso(value_ms), self.window.describe(now))
        return value_ms

    # -- the four client operations -----------------------------------------------

    def create_session(
        self, request: SessionCreateRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Session:
        """Register a session; a replay of the same registration answers the stored one."""
        req = parse(SessionCreateRequest, request if request is not None else fields, self.limits)
        now = now_ms()
        created_at = self._stamp(req.created_at, "created_at", now)
        session_id = req.session_id or uuid.uuid4().hex
        row = {
            "session_id": session_id,
            "search_query": req.search_query,
            "search_results": [r.model_dump() for r in req.search_results],
            "search_meta": req.search_meta,
            "payload_filter": req.payload_filter,
            "sort_by": req.sort_by,
            "user_id": req.user_id,
            "created_at_ms": created_at,
            "created_at_given": req.created_at is not None,
            "is_irrelevant": False,
        }
        stored, created, given_before = self.store.create_session(row, now)
        if not created:
            self._check_replay(stored, row, given_before)
        return stored

    @staticmethod
    def _check_replay(stored: Session, row: Mapping[str, Any], given_before: bool) -> None:
        dumped = stored.model_dump()
        differ = [f for f in _REPLAY_FIELDS if dumped[f] != row[f]]
        if (
            row["created_at_given"]
            and given_before
            and stored.created_at_ms != row["created_at_ms"]
        ):
            differ.append("created_at")
        if differ:
            raise SessionConflict(stored.session_id, differ)

    def get_session(self, session_id: str) -> Session:
        sid = parse(SessionIdRequest, {"session_id": session_id}, self.limits).session_id
        return self.store.get_session(sid)

    def push_events(
        self,
        request: SessionAddEventsRequest | Mapping[str, Any] | str,
        events: Sequence[NewSessionEvent | Mapping[str, Any]] | None = None,
    ) -> PushResult:
        """Store a push whole or not at all; events already in the session count as duplicates."""
        data = (
            {"session_id": request, "events": events or []} if isinstance(request, str) else request
        )
        req = parse(SessionAddEventsRequest, data, self.limits)
        now = now_ms()
        rows: dict[str, dict[str, Any]] = {}
        for i, ev in enumerate(req.events):
            created_at = self._stamp(ev.created_at, f"events[{i}].created_at", now)
            rows.setdefault(
                ev.event_id,
                {
                    "event_id": ev.event_id,
                    "object_id": ev.object_id,
                    "event_type": ev.event_type,
                    "created_at_ms": created_at,
                    "meta": ev.meta,
                },
            )
        stored, _ = self.store.insert_events(req.session_id, list(rows.values()))
        return PushResult(
            session_id=req.session_id, stored=stored, duplicates=len(req.events) - stored
        )

    def mark_irrelevant(self, session_id: str) -> None:
        sid = parse(SessionIdRequest, {"session_id": session_id}, self.limits).session_id
        self.store.mark_irrelevant(sid)
