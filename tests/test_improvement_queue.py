"""The improvement queue: enqueue once, claim once per lease, acknowledge, survive restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import Conflict, QueueEntryNotFound, SessionNotFound
from searchtrail.http.app import INTERNAL_PREFIX
from tests.bulk import bulk_sessions
from tests.support import clean_env

LEASE_MS = 600_000


@pytest.fixture
def fast_settings(database_url: str) -> Settings:
    """NORMAL sync: hundreds of small commits stay cheap; durability is tested elsewhere."""
    return Settings(database_url=database_url, sqlite_synchronous="NORMAL")


def queued(cs: Clickstream, n: int) -> list[int]:
    bulk_sessions(cs, n, prefix="q")
    return [cs.use_for_improvement(f"q{i}").entry_id for i in range(n)]


def test_a_session_is_queued_once_while_its_entry_is_open(cs: Clickstream) -> None:
    cs.create_session(session_id="s1", search_query="q")
    first = cs.use_for_improvement("s1")
    assert (first.state, first.attempts, first.session_id) == ("pending", 0, "s1")
    assert cs.use_for_improvement("s1") == first

    [claimed] = cs.claim_improvements(worker="w1")
    assert claimed.entry_id == first.entry_id
    assert cs.use_for_improvement("s1") == claimed

    cs.ack_improvement(entry_id=claimed.entry_id, attempt=claimed.attempts, status="done")
    second = cs.use_for_improvement("s1")
    assert second.entry_id != first.entry_id
    assert second.state == "pending"
    assert cs.improvement_counts().model_dump() == {
        "pending": 1,
        "claimed": 0,
        "done": 1,
        "failed": 0,
    }


def test_an_unknown_session_is_404_and_queues_nothing(cs: Clickstream, client: TestClient) -> None:
    r = client.post(f"{INTERNAL_PREFIX}/session/use-for-improvement", json={"session_id": "nope"})
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "Session with id=nope not found", "code": "not_found"},
    )
    with pytest.raises(SessionNotFound):
        cs.use_for_improvement("nope")
    assert cs.improvement_counts().pending == 0
    r = client.post(f"{INTERNAL_PREFIX}/session/use-for-improvement", json={})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "session_id"


def test_the_worker_flow_over_http(client: TestClient) -> None:
    for sid in ("s1", "s2", "s3"):
        assert client.post("/session", json={"session_id": sid}).is_success
        r = client.post(f"{INTERNAL_PREFIX}/session/use-for-improvement", json={"session_id": sid})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "pending"

    r = client.post(f"{INTERNAL_PREFIX}/improvement/claim", json={"worker": "w1", "limit": 2})
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [e["session_id"] for e in entries] == ["s1", "s2"]
    assert all(e["state"] == "claimed" and e["claimed_by"] == "w1" for e in entries)
    assert all(e["lease_expires_at_ms"] == e["claimed_at_ms"] + LEASE_MS for e in entries)

    done = {"entry_id": entries[0]["entry_id"], "attempt": 1, "status": "done"}
    r = client.post(f"{INTERNAL_PREFIX}/improvement/ack", json=done)
    assert (r.status_code, r.json()["state"]) == (200, "done")
    assert client.post(f"{INTERNAL_PREFIX}/improvement/ack", json=done).json() == r.json()
    failed = {**done, "entry_id": entries[1]["entry_id"], "status": "failed", "error": "boom"}
    r = client.post(f"{INTERNAL_PREFIX}/improvement/ack", json=failed)
    assert (r.json()["state"], r.json()["error"]) == ("failed", "boom")

    counts = client.get(f"{INTERNAL_PREFIX}/improvement/counts").json()
    assert counts == {"pending": 1, "claimed": 0, "done": 1, "failed": 1}


def test_bad_acknowledgements_are_clear_4xx(cs: Clickstream, client: TestClient) -> None:
    cs.create_session(session_id="s1", search_query="q")
    entry = cs.use_for_improvement("s1")
    ack = f"{INTERNAL_PREFIX}/improvement/ack"
    r = client.post(ack, json={"entry_id": 999, "attempt": 1, "status": "done"})
    assert (r.status_code, r.json()["detail"]) == (
        404,
        "Improvement queue entry with id=999 not found",
    )
    r = client.post(ack, json={"entry_id": entry.entry_id, "attempt": 1, "status": "done"})
    assert r.status_code == 409
    assert "is pending, not claimed" in r.json()["detail"]
    for body, field in (
        ({"entry_id": entry.entry_id, "attempt": 1, "status": "finished"}, "status"),
        ({"entry_id": entry.entry_id, "attempt": 0, "status": "done"}, "attempt"),
        ({"entry_id": entry.entry_id, "status": "done"}, "attempt"),
    ):
        r = client.post(ack, json=body)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["detail"]] == [field]
    r = client.post(f"{INTERNAL_PREFIX}/improvement/claim", json={"limit": 1001})
    assert r.status_code == 422
    assert "max_page_size" in r.json()["detail"][0]["msg"]
    assert cs.improvement_counts().pending == 1


def test_entries_survive_a_restart(fast_settings: Settings) -> None:
    with Clickstream(settings=fast_settings) as cs:
        ids = queued(cs, 3)
        [held] = cs.claim_improvements(worker="crashed", limit=1)
    assert held.entry_id == ids[0]

    with Clickstream(settings=fast_settings) as cs:
        assert cs.improvement_counts().model_dump() == {
            "pending": 2,
            "claimed": 1,
            "done": 0,
            "failed": 0,
        }
        # The first claim's lease still runs: the entry is not handed out again.
        assert [e.entry_id for e in cs.claim_improvements(worker="w2")] == ids[1:]
        assert cs.claim_improvements(worker="w2") == []


def test_an_expired_lease_hands_the_entry_out_again_and_the_stale_ack_is_refused(
    cs: Clickstream,
) -> None:
    store = cs.storage.queue
    cs.create_session(session_id="s1", search_query="q")
    entry = cs.use_for_improvement("s1")
    t0 = 1_000_000
    [first] = store.claim("w1", 10, t0, LEASE_MS, 5)
    assert store.claim("w2", 10, t0 + LEASE_MS - 1, LEASE_MS, 5) == []
    [second] = store.claim("w2", 10, t0 + LEASE_MS, LEASE_MS, 5)
    assert (second.entry_id, second.attempts, second.claimed_by) == (entry.entry_id, 2, "w2")

    with pytest.raises(Conflict, match="claimed again"):
        cs.ack_improvement(entry_id=entry.entry_id, attempt=first.attempts, status="done")
    done = cs.ack_improvement(entry_id=entry.entry_id, attempt=2, status="done")
    assert done.state == "done"
    assert cs.ack_improvement(entry_id=entry.entry_id, attempt=2, status="done") == done
    with pytest.raises(Conflict, match="is done, not claimed"):
        cs.ack_improvement(entry_id=entry.entry_id, attempt=2, status="failed")
    with pytest.raises(QueueEntryNotFound):
        cs.ack_improvement(entry_id=entry.entry_id + 1, attempt=1, status="done")


def test_an_entry_whose_lease_keeps_expiring_fails_after_max_attempts(cs: Clickstream) -> None:
    store = cs.storage.queue
    cs.create_session(session_id="s1", search_query="q")
    entry = cs.use_for_improvement("s1")
    now = 1_000_000
    for attempt in (1, 2, 3):
        [claimed] = store.claim("w", 10, now, LEASE_MS, 3)
        assert claimed.attempts == attempt
        now += LEASE_MS
    assert store.claim("w", 10, now, LEASE_MS, 3) == []
    counts = cs.improvement_counts()
    assert (counts.failed, counts.claimed, counts.pending) == (1, 0, 0)
    # The session can be queued again: the failed entry is closed.
    assert cs.use_for_improvement("s1").entry_id != entry.entry_id


def test_concurrent_claimers_never_get_the_same_entry(fast_settings: Settings) -> None:
    with Clickstream(settings=fast_settings) as cs:
        ids = queued(cs, 300)
    got: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(name: str) -> None:
        mine: list[int] = []
        got.append(mine)
        try:
            # Its own Clickstream: claimers meet only at the database, as processes would.
            with Clickstream(settings=fast_settings, create_schema=False) as own:
                start.wait()
                while len(mine) < 50 and (entries := own.claim_improvements(worker=name, limit=5)):
                    for e in entries:
                        mine.append(e.entry_id)
                        own.ack_improvement(entry_id=e.entry_id, attempt=e.attempts, status="done")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    flat = [i for mine in got for i in mine]
    assert sorted(flat) == ids
    assert all(got)  # each stops at 50 to 54 of 300: five cannot take them all
    with Clickstream(settings=fast_settings, create_schema=False) as cs:
        assert cs.improvement_counts().done == 300


CLAIMER = """
import json, sys
from searchtrail import Clickstream, Settings
settings = Settings(database_url=sys.argv[1], sqlite_synchronous="NORMAL")
with Clickstream(settings=settings, create_schema=False) as cs:
    print("ready", flush=True)
    sys.stdin.readline()
    got = []
    while len(got) < 160 and (entries := cs.claim_improvements(worker=sys.argv[2], limit=3)):
        got.extend(e.entry_id for e in entries)
print(json.dumps(got), flush=True)
"""


@pytest.mark.slow  # a stress run of claimer processes; threads claim in the fast set
def test_claimer_processes_never_get_the_same_entry(
    fast_settings: Settings, tmp_path: Path
) -> None:
    with Clickstream(settings=fast_settings) as cs:
        ids = queued(cs, 400)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, fast_settings.database_url, f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=clean_env(),
            text=True,
        )
        for i in range(3)
    ]
    results = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # all start claiming at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.close()
        for p in procs:
            assert p.stdout is not None
            out = p.stdout.read()
            assert p.wait(timeout=120) == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            assert p.stdout is not None
            p.stdout.close()
    flat = [i for got in results for i in got]
    print("claimed per process:", [len(got) for got in results])
    assert sorted(flat) == ids
    # Each stops at about 160, so all three took part however the scheduler ran them.
    assert all(results)
    with Clickstream(settings=fast_settings, create_schema=False) as cs:
        assert cs.improvement_counts().claimed == 400
