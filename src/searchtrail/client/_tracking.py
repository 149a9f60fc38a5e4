"""What ``Tracker`` and ``AsyncTracker`` share: the queue, the send plan, retry policy, counters.

The plan is a generator that yields the ``Call`` to make next and is sent back its final
outcome (the answer, or the error that ended retrying), so the sync and asyncio workers
differ only in how they wait. Items stay raw dicts until the worker touches them: the
caller's thread pays for an append, never for validation or serialization.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from searchtrail.client._calls import Call, ConnectionFailed, Endpoints, ServerError
from searchtrail.errors import (
    NotFound,
    RateLimited,
    SchemaOutdated,
    SearchtrailError,
    Unavailable,
)
from searchtrail.models import PushResult

__all__ = ["Rejection", "TrackerCore", "TrackerStats", "TrackingFront"]

log = logging.getLogger("searchtrail.client")

SESSION = 0
EVENT = 1
# (kind, session_id, body): a session registration or one event of a session.
Item = tuple[int, str, dict[str, Any]]
Plan = Generator[Call[Any], object, None]


@dataclass(frozen=True)
class Rejection:
    """Something the server refused for good (a 4xx other than 429), and why."""

    kind: str
    session_id: str
    event_id: str | None
    status: int
    reason: str


@dataclass(frozen=True)
class TrackerStats:
    """Counters since the tracker started; ``rejections`` holds the most recent ones."""

    accepted: int = 0
    """Items (sessions and events) taken onto the queue."""
    dropped: int = 0
    """Items refused because the queue was full or the tracker closed."""
    sessions_sent: int = 0
    events_sent: int = 0
    """Events the server acknowledged, including duplicates of earlier retries."""
    duplicates: int = 0
    rejected: int = 0
    retries: int = 0
    unsent: int = 0
    """Items given up when ``close`` ran out of time."""
    pending: int = 0
    """Items on the queue or in flight now."""
    rejections: tuple[Rejection, ...] = ()


@dataclass
class _Counters:
    taken: int = 0
    dropped: int = 0
    sessions_sent: int = 0
    events_sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    retries: int = 0
    unsent: int = 0
    in_flight: int = 0
    reported_drops: int = 0
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=100))


def _normalize_results(results: Any) -> list[Any]:
    if not results:
        return []
    out = []
    for r in results:
        if isinstance(r, str):
            out.append({"object_id": r})
        elif isinstance(r, BaseModel):
            out.append(r.model_dump(mode="json", exclude_none=True))
        else:
            out.append(r)
    return out


class TrackerCore:
    """The queue and the bookkeeping; the worker (thread or task) drives ``plan``."""

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        max_queue: int,
        flush_at: int,
        max_events_per_push: int,
        max_batch: int,
        backoff_base: float,
        backoff_max: float,
        max_retries: int,
    ) -> None:
        if max_queue < 1 or flush_at < 1 or max_events_per_push < 1 or max_batch < 1:
            raise ValueError("max_queue, flush_at, max_events_per_push, max_batch must be >= 1")
        self.endpoints = endpoints
        self.queue: deque[Item] = deque()
        self.max_queue = max_queue
        self.flush_at = flush_at
        self.max_events_per_push = max_events_per_push
        self.max_batch = max_batch
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retries = max_retries
        self.closed = False
        self.lock = threading.Lock()
        self.counters = _Counters()
        # Unique across processes and restarts, cheap per call: a random prefix and a counter.
        self.id_prefix = uuid.uuid4().hex[:16] + "-"
        self.sequence = itertools.count()

    # -- the caller's side ----------------------------------------------------------

    def drop(self) -> None:
        with self.lock:
            self.counters.dropped += 1

    # -- the worker's side ----------------------------------------------------------

    def take(self) -> list[Item]:
        """Up to ``max_batch`` items off the queue, oldest first."""
        q = self.queue
        n = min(len(q), self.max_batch)
        items = [q.popleft() for _ in range(n)]
        with self.lock:
            self.counters.taken += n
            self.counters.in_flight += n
        return items

    def lanes(self, items: list[Item]) -> list[Plan]:
        """One plan per session: its registrations, then its events grouped into pushes.

        Lanes of one round are independent and may run side by side; the next round
        starts when all are done, so a session registered in one round exists before
        events of a later round reach it. Events whose registration was refused are
        refused with it instead of being sent to a 404.
        """
        sessions: dict[str, list[dict[str, Any]]] = {}
        events: dict[str, list[dict[str, Any]]] = {}
        for kind, sid, payload in items:
            (sessions if kind == SESSION else events).setdefault(sid, []).append(payload)
        order = dict.fromkeys([*sessions, *events])
        return [self._lane(sid, sessions.get(sid, []), events.get(sid, [])) for sid in order]

    def _lane(self, sid: str, bodies: list[dict[str, Any]], evs: list[dict[str, Any]]) -> Plan:
        refused: str | None = None
        registered = False
        for payload in bodies:
            payload["search_results"] = _normalize_results(payload.get("search_results"))
            outcome = yield self.endpoints.create_session(payload)
            if isinstance(outcome, SearchtrailError):
                refused = outcome.detail
                self._reject("session", sid, None, outcome)
            else:
                registered = True
                with self.lock:
                    self.counters.sessions_sent += 1
            self._done(1)
        if refused is not None and not registered:
            for ev in evs:
                self._reject_event(sid, ev, 0, f"its session was refused: {refused}")
            self._done(len(evs))
            return
        size = self.max_events_per_push
        for start in range(0, len(evs), size):
            yield from self._push(sid, evs[start : start + size])

    def _push(self, sid: str, chunk: list[dict[str, Any]]) -> Plan:
        outcome = yield self.endpoints.push_events({"session_id": sid, "events": chunk})
        if isinstance(outcome, PushResult):
            with self.lock:
                self.counters.events_sent += len(chunk)
                self.counters.duplicates += outcome.duplicates
        elif isinstance(outcome, SearchtrailError):
            if len(chunk) > 1 and not isinstance(outcome, NotFound):
                # One bad event refuses the whole push: halve until it is found, so the
                # good ones still land (event ids make the resend of any half harmless).
                mid = len(chunk) // 2
                yield from self._push(sid, chunk[:mid])
                yield from self._push(sid, chunk[mid:])
                return
            for ev in chunk:
                self._reject_event(sid, ev, outcome.status, outcome.detail)
        self._done(len(chunk))

    def _done(self, n: int) -> None:
        with self.lock:
            self.counters.in_flight -= n

    def _reject_event(self, sid: str, ev: dict[str, Any], status: int, reason: str) -> None:
        event_id = ev.get("event_id")
        self._record(
            Rejection("event", sid, event_id if isinstance(event_id, str) else None, status, reason)
        )

    def _reject(self, kind: str, sid: str, event_id: str | None, exc: SearchtrailError) -> None:
        self._record(Rejection(kind, sid, event_id, _status(exc), exc.detail))

    def _record(self, rejection: Rejection) -> None:
        with self.lock:
            self.counters.rejected += 1
            self.counters.rejections.append(rejection)
        log.warning(
            "searchtrail tracker: the server refused %s %s%s (%s): %s",
            rejection.kind,
            rejection.session_id,
            f"/{rejection.event_id}" if rejection.event_id else "",
            rejection.status,
            rejection.reason,
        )

    # -- retry policy ---------------------------------------------------------------

    def retryable(self, exc: SearchtrailError, attempt: int) -> bool:
        """Network errors, 503 and 429 until the tracker gives up; other 5xx a few times."""
        if isinstance(exc, Unavailable | RateLimited | SchemaOutdated):
            return True
        transient = isinstance(exc, ServerError) and exc.status_code >= 500
        return transient and attempt < self.max_retries

    def delay(self, attempt: int, exc: SearchtrailError) -> float:
        """Full jitter on an exponential cap, never sooner than the server's Retry-After."""
        cap = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30))
        wait = random.uniform(0, cap)
        if isinstance(exc, RateLimited | Unavailable) and not isinstance(exc, ConnectionFailed):
            wait = max(wait, float(exc.retry_after))
        return wait

    def retried(self) -> None:
        with self.lock:
            self.counters.retries += 1

    def give_up(self) -> int:
        """Count what is still queued or in flight as unsent; closing ran out of time."""
        n = len(self.queue)
        self.queue.clear()
        with self.lock:
            self.counters.taken += n
            lost = n + self.counters.in_flight
            self.counters.unsent += lost
            self.counters.in_flight = 0
        if lost:
            log.warning("searchtrail tracker: closing timed out; %d items were not sent", lost)
        return lost

    def report_drops(self) -> None:
        with self.lock:
            new = self.counters.dropped - self.counters.reported_drops
            self.counters.reported_drops = self.counters.dropped
            total = self.counters.dropped
        if new:
            log.warning(
                "searchtrail tracker: dropped %d items (%d in total): %s",
                new,
                total,
                "the tracker is closed" if self.closed else f"the queue is full ({self.max_queue})",
            )

    def idle(self) -> bool:
        return not self.queue and self.counters.in_flight == 0

    def stats(self) -> TrackerStats:
        with self.lock:
            c = self.counters
            queued = len(self.queue)
            return TrackerStats(
                accepted=c.taken + queued,
                dropped=c.dropped,
                sessions_sent=c.sessions_sent,
                events_sent=c.events_sent,
                duplicates=c.duplicates,
                rejected=c.rejected,
                retries=c.retries,
                unsent=c.unsent,
                pending=max(0, queued + c.in_flight),
                rejections=tuple(c.rejections),
            )


def _status(exc: SearchtrailError) -> int:
    return exc.status_code if isinstance(exc, ServerError) else exc.status


def now_ms() -> int:
    return int(time.time() * 1000)


class _Wake(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...


class TrackingFront:
    """The hot path both trackers share: build an item, append it, maybe wake the sender.

    No I/O and no validation here (the server validates against its own limits); a
    subclass sets the attributes in ``__init__`` and ``_start`` when its sender is lazy.
    """

    _core: TrackerCore
    _queue: deque[Any]
    _max_queue: int
    _flush_at: int
    _prefix: str
    _wake: _Wake
    _lazy_start = False

    def _bind(self, core: TrackerCore, max_queue: int, flush_at: int) -> None:
        self._core = core
        self._queue = core.queue
        self._append = core.queue.append
        self._max_queue = max_queue
        self._flush_at = flush_at
        self._prefix = core.id_prefix
        self._next = core.sequence.__next__

    def _start(self) -> None:
        raise NotImplementedError

    def track_session(
        self,
        session_id: str | None = None,
        search_query: Any = None,
        search_results: list[Any] | None = None,
        *,
        user_id: str | None = None,
        search_meta: dict[str, Any] | None = None,
        payload_filter: dict[str, Any] | None = None,
        sort_by: dict[str, Any] | None = None,
        created_at: int | float | str | None = None,
    ) -> str:
        """Queue a session's registration and return its id (generated when not given).

        ``search_results`` may be object ids, dicts or ``SearchResultItem``s, first = top.
        """
        if session_id is None:
            session_id = self._prefix + format(self._next(), "x")
        item = {
            "session_id": session_id,
            "search_query": search_query,
            "search_results": search_results,
            "search_meta": search_meta,
            "payload_filter": payload_filter,
            "sort_by": sort_by,
            "user_id": user_id,
            "created_at": int(time.time() * 1000) if created_at is None else created_at,
        }
        self._put(SESSION, session_id, item)
        return session_id

    def track_event(
        self,
        session_id: str,
        object_id: str | None = None,
        event_type: str = "click",
        *,
        event_id: str | None = None,
        meta: dict[str, Any] | None = None,
        created_at: int | float | str | None = None,
    ) -> str:
        """Queue one event of a session and return its ``event_id`` (generated when not given)."""
        if event_id is None:
            event_id = self._prefix + format(self._next(), "x")
        item = {
            "event_id": event_id,
            "object_id": object_id,
            "event_type": event_type,
            "created_at": int(time.time() * 1000) if created_at is None else created_at,
            "meta": meta,
        }
        self._put(EVENT, session_id, item)
        return event_id

    def _put(self, kind: int, session_id: str, item: dict[str, Any]) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue or self._core.closed:
            self._core.drop()
            return
        if self._lazy_start:
            self._start()
        self._append((kind, session_id, item))
        if len(queue) >= self._flush_at and not self._wake.is_set():
            self._wake.set()
