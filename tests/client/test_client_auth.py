"""The client's auth errors come from a real server with keys, not from built answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchtrail import Clickstream, Client, Settings
from searchtrail.errors import Forbidden, RateLimited, Unauthorized
from tests.support import serve

pytestmark = pytest.mark.slow  # starts its own `searchtrail serve` with keys


def test_no_key_wrong_scope_and_rate_limit_raise_typed_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    with Clickstream(settings=Settings(database_url=url)) as cs:
        ingest = cs.keys.create("backend", ["ingest"]).key
        admin = cs.keys.create("ops", ["admin"]).key
    env = {"SEARCHTRAIL_RATE_LIMIT_PER_SEC": "0.000001", "SEARCHTRAIL_RATE_LIMIT_BURST": "2"}
    with serve(url, tmp_path, env=env) as server:
        with Client(server.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.create_session(session_id="s1", search_query="q")
        with Client(server.url, api_key=ingest) as backend:
            backend.create_session(session_id="s1", search_query="q")
            with pytest.raises(Forbidden):
                backend.release_batch("r1")
            backend.push_events("s1", [{"event_id": "e1", "object_id": "a"}])
            with pytest.raises(RateLimited) as limited:  # a burst of 2, no refill in a test
                backend.push_events("s1", [{"event_id": "e1", "object_id": "a"}])
        assert limited.value.retry_after is not None and limited.value.retry_after >= 1
        with Client(server.url, api_key=admin) as ops:
            assert ops.release_batch("r1").batch_id == 1
