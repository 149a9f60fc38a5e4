"""``AsyncClient``: ``Client`` for asyncio, one awaitable method per endpoint of the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from searchtrail.client._calls import (
    CLIENT_PREFIX,
    Call,
    ConnectionFailed,
    Endpoints,
    ServerError,
    body,
    check_page_size,
    error_from_response,
)
from searchtrail.client.sync import build_headers
from searchtrail.models import (
    AckRequest,
    BatchInfo,
    BatchSessionsPage,
    BatchStateName,
    ClaimRequest,
    PushResult,
    QueueCounts,
    QueueEntry,
    ReleaseResult,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    StoredEvent,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """Talk to a searchtrail service from asyncio; errors are ``searchtrail.errors`` exceptions.

    A network failure raises ``ConnectionFailed`` (an ``Unavailable``): every write of the
    contract is idempotent (session replays, event ids, release ids), so retrying is safe.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        prefix: str = CLIENT_PREFIX,
        internal_prefix: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoints = Endpoints(prefix, internal_prefix)
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=build_headers(api_key, headers)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, json=call.json, params=call.params
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{call.method} {call.path}: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"{call.method} {call.path}: {exc!r}", 0) from exc
        if not response.is_success:
            raise error_from_response(response, call)
        try:
            return call.parse(response.content)
        except ValueError as exc:  # not the contract's answer: a wrong base_url or prefix?
            detail = f"{call.method} {call.path}: unexpected answer: {response.text[:200]!r}"
            raise ServerError(detail, response.status_code) from exc

    # -- client endpoints ---------------------------------------------------------

    async def create_session(
        self, request: SessionCreateRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Session:
        """Register a session (a model, a mapping, or keyword arguments); a replay answers it."""
        return await self.send(self.endpoints.create_session(body(request, fields)))

    async def get_session(
        self, session_id: str, *, events_limit: int | None = None, events_after: str | None = None
    ) -> Session:
        """A session with a page of its events: at most ``events_limit`` (server default
        100), after ``events_after`` (the ``events_cursor`` of the previous page)."""
        call = self.endpoints.get_session(session_id, events_limit, events_after)
        return await self.send(call)

    async def iter_session_events(
        self, session_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Every event of a session, oldest first, one page (``page_size`` events, server
        default 100) in memory at a time; each event once."""
        check_page_size(page_size)
        cursor: str | None = None
        while True:
            page = await self.get_session(session_id, events_limit=page_size, events_after=cursor)
            for event in page.events:
                yield event
            if page.events_cursor is None:
                return
            cursor = page.events_cursor

    async def push_events(
        self,
        request: SessionAddEventsRequest | Mapping[str, Any] | str,
        events: list[Any] | None = None,
    ) -> PushResult:
        """Push ``(session_id, events)`` or a whole request; repeated event ids are duplicates."""
        if isinstance(request, str):
            request = {"session_id": request, "events": list(events or [])}
        return await self.send(self.endpoints.push_events(body(request, {})))

    async def mark_irrelevant(self, session_id: str) -> None:
        await self.send(self.endpoints.mark_irrelevant(session_id))

    # -- internal endpoints -------------------------------------------------------

    async def use_for_improvement(self, session_id: str) -> QueueEntry:
        return await self.send(self.endpoints.use_for_improvement(session_id))

    async def release_batch(self, release_id: str) -> ReleaseResult:
        """Release the collecting batch; the same ``release_id`` again answers the same batch."""
        return await self.send(self.endpoints.release_batch(release_id))

    async def batch_sessions(
        self,
        batch_id: int,
        after_number: int = 0,
        limit: int | None = None,
        events_limit: int | None = None,
    ) -> BatchSessionsPage:
        call = self.endpoints.batch_sessions(batch_id, after_number, limit, events_limit)
        return await self.send(call)

    async def iter_batch_sessions(
        self, batch_id: int, page_size: int | None = None, events_limit: int | None = None
    ) -> AsyncIterator[Session]:
        """Every session of a batch, one page in memory at a time."""
        after = 0
        while True:
            page = await self.batch_sessions(batch_id, after, page_size, events_limit)
            if page.last_number is None:
                return
            for session in page.sessions:
                yield session
            after = page.last_number

    async def list_batches(self, state: BatchStateName | None = None) -> list[BatchInfo]:
        return await self.send(self.endpoints.list_batches(state))

    async def get_batch(self, batch_id: int) -> BatchInfo:
        return await self.send(self.endpoints.get_batch(batch_id))

    async def set_batch_state(self, batch_id: int, state: BatchStateName) -> BatchInfo:
        return await self.send(self.endpoints.set_batch_state(batch_id, state))

    async def claim_improvements(
        self, request: ClaimRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> list[QueueEntry]:
        """Claim pending entries (``worker=``, ``limit=``); each goes to one claimer per lease."""
        return await self.send(self.endpoints.claim_improvements(body(request, fields)))

    async def ack_improvement(
        self, request: AckRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> QueueEntry:
        """Acknowledge a claim (``entry_id=``, ``attempt=``, ``status=``, ``error=``)."""
        return await self.send(self.endpoints.ack_improvement(body(request, fields)))

    async def improvement_counts(self) -> QueueCounts:
        return await self.send(self.endpoints.improvement_counts())
