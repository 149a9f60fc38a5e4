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

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel

from searchtrail.errors import (
    FieldError,
    InvalidInput,
    SearchtrailError,
    SessionConflict,
    TimestampOutOfWindow,
)
from searchtrail.keys import KeyRing
from searchtrail.models import (
    NewSessionEvent,
    PushResult,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    SessionGetQuery,
    ShownResult,
    StoredEvent,
    parse,
    parse_json,
)
from searchtrail.service.batches import BatchOperations
from searchtrail.service.clickmodels import ClickModelOperations, FitCache
from searchtrail.service.metrics import MetricsOperations
from searchtrail.service.observer import Observer, events_sent, refusal_reason
from searchtrail.service.privacy import PrivacyOperations, pseudonymiser
from searchtrail.service.queue import QueueOperations
from searchtrail.service.training import TrainingOperations
from searchtrail.settings import Settings
from searchtrail.storage import EventRow, StorageOptions, open_storage
from searchtrail.timestamps import ms_to_iso, now_ms

__all__ = ["Clickstream"]

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

log = logging.getLogger("searchtrail")

# Bodies up to this size are validated in the event loop (see Clickstream._parse_in_loop).
_PARSE_IN_LOOP_BYTES = 64 * 1024

# Compared on a replayed registration; created_at only when both sides were given by a client.
_REPLAY_FIELDS = (
    "search_query",
    "search_results",
    "search_meta",
    "payload_filter",
    "sort_by",
    "user_id",
    "extra",
)


class _UnknownKeyLog:
    """Logs each unknown key name (its path without indices) once per process.

    The set is bounded: a client sending a new random key on every request must not grow
    the server's memory or flood its log; past the bound, names are no longer logged.
    """

    LIMIT = 1000

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def note(self, paths: Sequence[str]) -> None:
        for path in paths:
            name = _strip_indices(path)
            if name in self._seen or len(self._seen) >= self.LIMIT:
                continue
            with self._lock:
                if name in self._seen:
                    continue
                self._seen.add(name)
            log.warning(
                "unknown field %s accepted and kept under extra (the contract does not name "
                "it; strict_fields would refuse it); logged once",
                name,
            )


_INDEX = re.compile(r"\[\d+\]")


async def _in_loop_or_thread(size: int, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` on a body of ``size`` bytes: in the loop, or in a pool thread when
    the body is large enough to hold the loop for milliseconds."""
    if size > _PARSE_IN_LOOP_BYTES:
        return await anyio.to_thread.run_sync(fn, *args)
    return fn(*args)


def _strip_indices(path: str) -> str:
    """``events[2].evnt_type`` -> ``events[].evnt_type``."""
    return _INDEX.sub("[]", path)


class Clickstream(
    BatchOperations,
    QueueOperations,
    TrainingOperations,
    MetricsOperations,
    ClickModelOperations,
    PrivacyOperations,
):
    """The service: sessions and events here; batches, the improvement queue and training
    data, metrics, click models, erasure and retention in the operations it inherits
    (``service/batches.py``, ``queue.py``, ``training.py``, ``metrics.py``,
    ``clickmodels.py``, ``privacy.py``). It talks to storage only through
    ``searchtrail.storage``'s protocols.
    """

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
        # What a session's user id is stored as, on every path that stores one.
        self.pseudonyms = pseudonymiser(settings.user_id_key, settings.user_id_previous_keys)
        self.storage = open_storage(
            StorageOptions(
                settings.database_url,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                synchronous=settings.sqlite_synchronous,
                pool_size=settings.pool_size,
                writer_process=settings.writer == "process",
                max_events_per_session=settings.max_events_per_session,
            )
        )
        if create_schema:
            try:
                self.storage.create_schema()
            except BaseException:
                self.storage.close()
                raise
        # API keys: create, list, revoke, verify (searchtrail.keys).
        self.keys = KeyRing(self.storage.keys, cache_sec=settings.auth_cache_sec)
        self._unknown_log = _UnknownKeyLog()
        self._fit_cache = FitCache()
        # Told of every registration and push outcome (service/observer.py); the HTTP
        # app installs one that counts them for /metrics.
        self.observer = Observer()

    def close(self) -> None:
        self.storage.close()

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
        """Register a session; a replay of the same registration answers the stored one.

        Keys the contract does not name are kept under ``extra`` and listed in the answer's
        ``unknown_fields`` (refused instead under ``strict_fields``).
        """
        req = parse(SessionCreateRequest, request if request is not None else fields, self.limits)
        return self._create_session(req)

    async def create_session_json_async(self, raw: bytes | str) -> Session:
        """``create_session`` from a JSON body (the HTTP path): validated once, in the loop."""
        req = await self._parse_in_loop(SessionCreateRequest, raw)
        row, now = self._registration(req)
        return self._registered(req, row, await self.storage.sessions.register_async(row, now))

    async def _parse_in_loop(self, model: type[M], raw: bytes | str) -> M:
        """Validate a body in the event loop, or in a pool thread when it is large.

        A push of 100 events validates in well under a millisecond, less than a hop to a
        thread; a body near the size limit would hold the loop for many milliseconds.
        """
        return await _in_loop_or_thread(len(raw), parse_json, model, raw, self.limits)

    def _create_session(self, req: SessionCreateRequest) -> Session:
        row, now = self._registration(req)
        return self._registered(req, row, self.storage.sessions.register(row, now))

    def _registration(self, req: SessionCreateRequest) -> tuple[dict[str, Any], int]:
        """The row to store for a registration, and the time it is registered at."""
        now = now_ms()
        created_at = self._stamp(req.created_at, "created_at", now)
        session_id = req.session_id or uuid.uuid4().hex
        row = {
            "session_id": session_id,
            "search_query": req.search_query,
            "search_results": req.results_as_stored(),
            "search_meta": req.search_meta,
            "payload_filter": req.payload_filter,
            "sort_by": req.sort_by,
            "user_id": self.pseudonyms.stored(req.user_id),
            "created_at_ms": created_at,
            "created_at_given": req.created_at is not None,
            "is_irrelevant": False,
            "extra": req.extra,
        }
        return row, now

    def _registered(
        self,
        req: SessionCreateRequest,
        row: Mapping[str, Any],
        outcome: tuple[Session, bool, bool],
    ) -> Session:
        """The store's answer to a registration; a replay must match what is stored."""
        stored, created, given_before = outcome
        if not created:
            # Stored under a previous key of a rotation, the same user is the same.
            same_user = req.user_id is not None and stored.user_id in self.pseudonyms.candidates(
                req.user_id
            )
            self._check_replay(
                stored, {**row, "user_id": stored.user_id} if same_user else row, given_before
            )
        unknown = req.unknown_fields
        self.observer.registered(created, len(unknown))
        if not unknown:
            return stored
        self._unknown_log.note(unknown)
        return stored.model_copy(update={"unknown_fields": unknown})

    @staticmethod
    def _check_replay(stored: Session, row: Mapping[str, Any], given_before: bool) -> None:
        dumped = stored.model_dump()
        # Compared as answered: a stored result without unknown keys answers extra=None.
        sent = {
            **row,
            "search_results": [ShownResult(**r).model_dump() for r in row["search_results"]],
        }
        differ = [f for f in _REPLAY_FIELDS if dumped[f] != sent[f]]
        if (
            row["created_at_given"]
            and given_before
            and stored.created_at_ms != row["created_at_ms"]
        ):
            differ.append("created_at")
        if differ:
            raise SessionConflict(stored.session_id, differ)

    def get_session(
        self, session_id: str, *, events_limit: int | None = None, events_after: str | None = None
    ) -> Session:
        """A session with at most ``events_limit`` of its events (default 100, at most
        10,000), oldest first, after the cursor ``events_after`` (an ``events_cursor`` of
        an earlier answer; omitted, from the first event)."""
        q = self._get_query(session_id, events_limit, events_after)
        assert q.events_limit is not None  # the validator fills the default
        return self.storage.sessions.get(q.session_id, q.events_limit, q.after)

    async def get_session_async(
        self, session_id: str, *, events_limit: int | None = None, events_after: str | None = None
    ) -> Session:
        """``get_session`` for the event loop: read on the loop itself where the store can
        where storage can, otherwise in its reader threads."""
        q = self._get_query(session_id, events_limit, events_after)
        assert q.events_limit is not None
        return await self.storage.sessions.get_async(q.session_id, q.events_limit, q.after)

    def iter_session_events(
        self, session_id: str, *, page_size: int | None = None
    ) -> Iterator[StoredEvent]:
        """Every event of a session, page by page (``page_size`` events a page, default
        100), each once; events pushed meanwhile come too if they sort after the page read
        last."""
        if page_size == 0:  # a page of no events would never move the cursor on
            raise InvalidInput([FieldError(("page_size",), "page_size must be at least 1")])
        cursor: str | None = None
        while True:
            page = self.get_session(session_id, events_limit=page_size, events_after=cursor)
            yield from page.events
            if page.events_cursor is None:
                return
            cursor = page.events_cursor

    def _get_query(
        self, session_id: str, events_limit: int | None, events_after: str | None
    ) -> SessionGetQuery:
        data = {
            "session_id": session_id,
            "events_limit": events_limit,
            "events_after": events_after,
        }
        return parse(SessionGetQuery, data, self.limits)

    def push_events(
        self,
        request: SessionAddEventsRequest | Mapping[str, Any] | str,
        events: Sequence[NewSessionEvent | Mapping[str, Any]] | None = None,
    ) -> PushResult:
        """Store a push whole or not at all; events already in the session count as duplicates."""
        data = (
            {"session_id": request, "events": events or []} if isinstance(request, str) else request
        )
        try:
            req = parse(SessionAddEventsRequest, data, self.limits)
        except InvalidInput:
            self.observer.refused("invalid", events_sent(data))
            raise
        return self._push_events(req)

    async def push_events_json_async(self, raw: bytes | str) -> PushResult:
        """``push_events`` from a JSON body (the HTTP path): validated once, in the loop."""
        try:
            req = await self._parse_in_loop(SessionAddEventsRequest, raw)
        except InvalidInput:
            sent = await _in_loop_or_thread(len(raw), events_sent, raw)
            self.observer.refused("invalid", sent)
            raise
        try:
            stored, _ = await self.storage.sessions.push_async(
                req.session_id, self._event_rows(req)
            )
        except SearchtrailError as exc:
            self._refused(exc, req)
            raise
        return self._pushed(req, stored)

    def _push_events(self, req: SessionAddEventsRequest) -> PushResult:
        try:
            stored, _ = self.storage.sessions.push(req.session_id, self._event_rows(req))
        except SearchtrailError as exc:
            self._refused(exc, req)
            raise
        return self._pushed(req, stored)

    def _refused(self, exc: SearchtrailError, req: SessionAddEventsRequest) -> None:
        reason = refusal_reason(exc)
        if reason is not None:
            self.observer.refused(reason, len(req.events))

    def _pushed(self, req: SessionAddEventsRequest, stored: int) -> PushResult:
        """Every event of the push not stored now was stored before: a duplicate."""
        unknown = req.unknown_fields
        if unknown:
            self._unknown_log.note(unknown)
        duplicates = len(req.events) - stored
        self.observer.pushed(stored, duplicates, len(unknown))
        return PushResult(
            session_id=req.session_id,
            stored=stored,
            duplicates=duplicates,
            unknown_fields=unknown,
        )

    def _event_rows(self, req: SessionAddEventsRequest) -> list[EventRow]:
        """One row per distinct event id (the first wins), timestamps checked and filled.

        ``_stamp``'s rule, inlined: a push runs it for up to a thousand events in the loop.
        Rows are tuples: under ``serve`` they are pickled to the writer process, and a
        tuple pickles in about half the time of a dict.
        """
        now = now_ms()
        earliest, latest = self.window.bounds(now)
        rows: dict[str, EventRow] = {}
        for i, ev in enumerate(req.events):
            created_at = ev.created_at
            if created_at is None:
                created_at = now
            elif not earliest <= created_at <= latest:
                self._stamp(created_at, f"events[{i}].created_at", now)
            if ev.event_id not in rows:
                rows[ev.event_id] = (
                    ev.event_id,
                    ev.object_id,
                    ev.event_type,
                    created_at,
                    ev.meta,
                    ev.__pydantic_extra__ or None,
                )
        return list(rows.values())

    def mark_irrelevant(self, session_id: str) -> None:
        sid = self._session_id(session_id)
        self.storage.sessions.mark_irrelevant(sid)
