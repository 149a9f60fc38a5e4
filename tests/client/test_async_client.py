"""``AsyncClient`` against a real `searchtrail serve` process: every endpoint, errors mapped."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from searchtrail import AsyncClient
from searchtrail.client import ConnectionFailed
from searchtrail.errors import (
    BatchNotFound,
    InvalidInput,
    QueueEntryNotFound,
    SessionConflict,
    SessionNotFound,
    TimestampOutOfWindow,
)
from tests.support import Server, free_port


def test_every_endpoint(server: Server) -> None:
    ids = [f"a-{uuid.uuid4().hex[:12]}" for _ in range(3)]

    async def main() -> None:
        async with AsyncClient(server.url, "key") as c:
            for n, s in enumerate(ids):
                assert (await c.create_session(session_id=s, search_query="q")).session_id == s
                pushed = await c.push_events(s, [{"event_id": f"e{k}"} for k in range(n + 1)])
                assert pushed.stored == n + 1
            await c.mark_irrelevant(ids[0])
            assert (await c.get_session(ids[0])).is_irrelevant
            [collecting] = await c.list_batches("collecting")
            released = await c.release_batch(uuid.uuid4().hex)
            assert released.batch_id == collecting.batch_id
            assert (await c.get_batch(released.batch_id)).state == "released"
            page = await c.batch_sessions(released.batch_id, limit=1)
            assert len(page.sessions) == 1
            every = [s async for s in c.iter_batch_sessions(released.batch_id, page_size=1)]
            assert [s.session_id for s in every if s.session_id in ids] == ids
            state = await c.set_batch_state(released.batch_id, "archived")
            assert state.state == "archived"
            entry = await c.use_for_improvement(ids[1])
            claimed = await c.claim_improvements({"worker": "w", "limit": 1000})
            [mine] = [e for e in claimed if e.entry_id == entry.entry_id]
            failed = await c.ack_improvement(
                entry_id=mine.entry_id, attempt=mine.attempts, status="failed", error="boom"
            )
            assert failed.state == "failed" and failed.error == "boom"
            assert (await c.improvement_counts()).failed >= 1

    asyncio.run(main())


def test_errors(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url) as c:
            with pytest.raises(SessionNotFound):
                await c.get_session("nope")
            with pytest.raises(SessionNotFound):
                await c.push_events("nope", [{"event_id": "e"}])
            with pytest.raises(BatchNotFound):
                await c.get_batch(424242)
            with pytest.raises(QueueEntryNotFound):
                await c.ack_improvement(entry_id=424242, attempt=1, status="done")
            with pytest.raises(InvalidInput) as info:
                await c.push_events("nope", [{"event_id": ""}])
            assert [e.field for e in info.value.errors] == ["events[0].event_id"]
            with pytest.raises(TimestampOutOfWindow):
                await c.create_session(session_id="t1", created_at="2001-01-01T00:00:00")
            s = f"c-{uuid.uuid4().hex[:12]}"
            await c.create_session(session_id=s, user_id="u1")
            with pytest.raises(SessionConflict):
                await c.create_session(session_id=s, user_id="u2")
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=2) as dead:
            with pytest.raises(ConnectionFailed):
                await dead.improvement_counts()

    asyncio.run(main())
