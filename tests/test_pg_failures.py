"""PostgreSQL in trouble, on a server of the test's own: stopped (503
database_unavailable, readiness 503), and its events on a tablespace that fills (507)."""

from __future__ import annotations

import contextlib
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from tests.pg import PgServer, start_server
from tests.smalldisk import resize, small_disk
from tests.test_storage_failures import push_until_full, stored_ids

pytestmark = pytest.mark.slow  # a PostgreSQL server of its own, stopped or filled


@pytest.fixture
def own_pg(pg_server: PgServer) -> Iterator[PgServer]:
    """A server to stop or fill, apart from the one every other test shares."""
    server = start_server(pg_server.bindir)
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped by the test
            server.stop()


def test_a_stopped_server_is_503_database_unavailable_and_not_ready(own_pg: PgServer) -> None:
    url = own_pg.fresh_database()
    with Clickstream(url) as cs, TestClient(create_app(clickstream=cs)) as client:
        assert client.post("/session", json={"session_id": "s1"}).status_code == 200
        assert client.get("/health/ready").status_code == 200
        own_pg.run(str(own_pg.bindir / "pg_ctl"), "stop", "-D", str(own_pg.datadir), "-m", "fast")
        push = {"session_id": "s1", "events": [{"event_id": "e1"}]}
        r = client.post("/session/events", json=push)
        assert (r.status_code, r.json()["code"]) == (503, "database_unavailable"), r.text
        assert r.headers["retry-after"] == "1"
        ready = client.get("/health/ready")
        assert (ready.status_code, ready.json()["code"]) == (503, "not_ready")
        assert "(database_unavailable)" in ready.json()["detail"]
        assert client.get("/health").status_code == 200


def test_events_on_a_full_tablespace_are_507_and_nothing_acknowledged_is_lost(
    own_pg: PgServer, tmp_path: Path
) -> None:
    """The events table and its indexes live on a 3 MB tmpfs; the WAL stays on the data
    directory's disk (a full WAL disk makes PostgreSQL stop, which is database_unavailable)."""
    assert own_pg.user is not None  # root runs the tests here and in CI
    owner = pwd.getpwnam(own_pg.user)
    # Not under pytest's tmp folder: that one is private to root, and the server is not.
    where = own_pg.root / "small"
    with small_disk(where, "3m", options=f"uid={owner.pw_uid},gid={owner.pw_gid},mode=0700"):
        url = own_pg.fresh_database()
        own_pg.admin(f"CREATE TABLESPACE small LOCATION '{where}'")
        _move_events(own_pg, url)
        settings = Settings(database_url=url)
        with Clickstream(settings=settings) as cs, TestClient(create_app(clickstream=cs)) as client:
            assert client.post("/session", json={"session_id": "s1"}).status_code == 200
            acknowledged, refusal = push_until_full(client, "s1")
            assert refusal["status"] == 507, refusal
            assert refusal["body"] == {"detail": "the database's disk is full", "code": "disk_full"}
            assert refusal["headers"]["retry-after"] == "30"  # type: ignore[index]
            assert sorted(stored_ids(client, "s1")) == sorted(acknowledged)
            resize(where, "16m")
            r = client.post(
                "/session/events", json={"session_id": "s1", "events": [{"event_id": "after"}]}
            )
            assert r.status_code == 200 and r.json()["stored"] == 1
        with Clickstream(settings=settings) as cs:
            stored = {e.event_id for e in cs.iter_session_events("s1", page_size=5000)}
        assert stored == {*acknowledged, "after"}


def _move_events(server: PgServer, url: str) -> None:
    import psycopg

    # events is partitioned by month (storage/sql/partitions.py): the parent's tablespace
    # only names where new partitions go, so each partition and its indexes move too.
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("ALTER TABLE events SET TABLESPACE small")
        parts = c.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass"
        ).fetchall()
        for table in ["events", *(name for (name,) in parts)]:
            if table != "events":
                c.execute(f'ALTER TABLE "{table}" SET TABLESPACE small')
            for (name,) in c.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
            ).fetchall():
                c.execute(f'ALTER INDEX "{name}" SET TABLESPACE small')
