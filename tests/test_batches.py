"""Batches: release under an idempotency key, the state machine, the listing with counts."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.errors import BadRequest, BatchNotFound, InvalidInput, NoCollectingBatch
from searchtrail.http.app import INTERNAL_PREFIX
from searchtrail.models import Session
from tests.support import sqlite_only

STATES = ("collecting", "released", "fine_tuning", "archiving", "archived")
# Written out by hand, not read from the code: the moves set_batch_state must allow.
ALLOWED = {
    ("released", "fine_tuning"),
    ("released", "archiving"),
    ("released", "archived"),
    ("fine_tuning", "released"),
    ("fine_tuning", "archiving"),
    ("fine_tuning", "archived"),
    ("archiving", "archived"),
}


def register(cs: Clickstream, sid: str) -> Session:
    return cs.create_session(session_id=sid, search_query="q", search_results=[{"object_id": "a"}])


def test_release_with_a_new_key_closes_the_batch_and_the_next_session_opens_another(
    cs: Clickstream,
) -> None:
    first, second = register(cs, "s1"), register(cs, "s2")
    assert first.batch_id == second.batch_id
    assert first.session_number is not None
    assert second.session_number is not None
    assert first.session_number < second.session_number

    released = cs.release_batch("r1")
    assert released.batch_id == first.batch_id
    assert released.released_at == released.released_at_ms // 1000
    info = cs.get_batch(released.batch_id)
    assert (info.state, info.release_id, info.sessions) == ("released", "r1", 2)
    assert info.released_at_ms == released.released_at_ms

    third = register(cs, "s3")
    assert third.batch_id != first.batch_id
    assert [(b.batch_id, b.state) for b in cs.list_batches()] == [
        (first.batch_id, "released"),
        (third.batch_id, "collecting"),
    ]
    # A registration replayed after the release stays in its own batch.
    assert register(cs, "s1").batch_id == first.batch_id


def test_release_with_a_repeated_key_answers_the_same_batch_and_releases_nothing_new(
    cs: Clickstream,
) -> None:
    register(cs, "s1")
    first = cs.release_batch("same-key")
    collecting = register(cs, "s2").batch_id

    again = cs.release_batch("same-key")
    assert again == first
    assert cs.get_batch(collecting).state == "collecting"
    assert cs.get_batch(first.batch_id).sessions == 1


def test_release_with_nothing_collecting_is_404_with_the_contract_detail(
    cs: Clickstream, client: TestClient
) -> None:
    with pytest.raises(NoCollectingBatch):
        cs.release_batch("r1")
    r = client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "r1"})
    assert r.status_code == 404
    assert r.json() == {"detail": "There is no collecting batch", "code": "not_found"}

    register(cs, "s1")
    assert client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "r1"}).is_success
    # Released and nothing registered since: nothing collects.
    r = client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "r2"})
    assert (r.status_code, r.json()["detail"]) == (404, "There is no collecting batch")
    assert cs.list_batches()[0].release_id == "r1"


def test_release_over_http_answers_the_contract_shape_and_is_idempotent(
    client: TestClient,
) -> None:
    assert client.post("/session", json={"session_id": "s1"}).is_success
    r = client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "nightly-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"release_id", "batch_id", "released_at", "released_at_ms"}
    assert body["release_id"] == "nightly-1"
    again = client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "nightly-1"})
    assert again.json() == body


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "release_id"), ({"release_id": ""}, "release_id"), ({"release_id": 5}, "release_id")],
)
@sqlite_only  # request validation, before any storage
def test_a_malformed_release_is_422_naming_release_id(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    client.post("/session", json={"session_id": "s1"})
    r = client.post(f"{INTERNAL_PREFIX}/batch/release", json=body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["detail"]] == [field]
    assert client.get(f"{INTERNAL_PREFIX}/batches").json()["batches"][0]["state"] == "collecting"


def test_sessions_registered_during_releases_each_land_in_exactly_one_batch(
    database_url: str,
) -> None:
    # Separate Clickstream objects: each has its own in-process lock, so they meet only at
    # the database, like separate processes. NORMAL sync keeps the many commits cheap.
    settings = Settings(database_url=database_url, sqlite_synchronous="NORMAL")
    Clickstream(settings=settings).close()
    registered: dict[str, tuple[int, int]] = {}
    frozen: dict[int, int] = {}
    done = threading.Event()
    # Halfway, each registrar waits for a release that took sessions, so releases and
    # registrations interleave however the threads are scheduled.
    released_some = threading.Event()
    errors: list[BaseException] = []

    def registrar(worker: int) -> None:
        try:
            with Clickstream(settings=settings, create_schema=False) as mine:
                for i in range(80):
                    if i == 40:
                        assert released_some.wait(60), "no release took a session"
                    s = register(mine, f"w{worker}-{i}")
                    assert s.batch_id is not None
                    assert s.session_number is not None
                    registered[s.session_id] = (s.batch_id, s.session_number)
        except BaseException as exc:
            errors.append(exc)

    def releaser() -> None:
        try:
            with Clickstream(settings=settings, create_schema=False) as mine:
                for n in itertools.count():
                    finished = done.is_set()
                    try:
                        released = mine.release_batch(f"r{n}")
                    except NoCollectingBatch:
                        released = None
                    if released is not None:
                        # What the batch holds once its release is answered is final.
                        frozen[released.batch_id] = mine.get_batch(released.batch_id).sessions
                        if frozen[released.batch_id]:
                            released_some.set()
                    if finished:
                        return
                    time.sleep(0.002)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=registrar, args=(w,)) for w in range(4)]
    release_thread = threading.Thread(target=releaser)
    release_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    release_thread.join()
    assert errors == []

    with Clickstream(settings=settings, create_schema=False) as cs:
        seen: dict[str, tuple[int, int]] = {}
        for batch in cs.list_batches():
            assert batch.state == "released"
            assert batch.sessions == frozen[batch.batch_id]
            numbers = []
            for s in cs.iter_batch_sessions(batch.batch_id, page_size=50):
                assert s.session_id not in seen
                assert s.session_number is not None
                seen[s.session_id] = (batch.batch_id, s.session_number)
                numbers.append(s.session_number)
            assert numbers == sorted(set(numbers))
    assert seen == registered
    assert len(registered) == 320
    assert sum(1 for n in frozen.values() if n) >= 2, "releases never interleaved"


def _batch_in(cs: Clickstream, state: str, key: str) -> int:
    """A fresh batch in ``state``, reached by allowed moves only."""
    batch_id = register(cs, f"s-{key}").batch_id
    assert batch_id is not None
    if state == "collecting":
        return batch_id
    cs.release_batch(key)
    path = {"fine_tuning": ["fine_tuning"], "archiving": ["archiving"], "archived": ["archived"]}
    for step in path.get(state, []):
        cs.set_batch_state(batch_id, step)  # type: ignore[arg-type]
    return batch_id


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATES, STATES)))
def test_every_state_change_is_allowed_or_refused_with_400_as_documented(
    cs: Clickstream, current: str, target: str
) -> None:
    batch_id = _batch_in(cs, current, "k")
    before = cs.get_batch(batch_id)
    if current == target or (current, target) in ALLOWED:
        after = cs.set_batch_state(batch_id, target)  # type: ignore[arg-type]
        assert after.state == target
        assert cs.get_batch(batch_id).state == target
    else:
        with pytest.raises(BadRequest, match=f"Batch {batch_id}"):
            cs.set_batch_state(batch_id, target)  # type: ignore[arg-type]
        assert cs.get_batch(batch_id) == before


def test_a_failed_fine_tuning_run_goes_back_to_released_then_on_to_archived(
    client: TestClient,
) -> None:
    client.post("/session", json={"session_id": "s1"})
    batch_id = client.post(f"{INTERNAL_PREFIX}/batch/release", json={"release_id": "r"}).json()[
        "batch_id"
    ]
    for state in ("fine_tuning", "released", "fine_tuning", "archiving", "archived", "archived"):
        r = client.post(
            f"{INTERNAL_PREFIX}/batch/state", json={"batch_id": batch_id, "state": state}
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state
    r = client.post(
        f"{INTERNAL_PREFIX}/batch/state", json={"batch_id": batch_id, "state": "released"}
    )
    assert r.status_code == 400
    assert r.json() == {
        "detail": f"Batch {batch_id} cannot go from archived to released; "
        "from archived it can go to no other state",
        "code": "bad_request",
    }


def test_releasing_by_state_change_is_refused_pointing_at_the_release_endpoint(
    client: TestClient,
) -> None:
    batch_id = client.post("/session", json={"session_id": "s1"}).json()["batch_id"]
    r = client.post(
        f"{INTERNAL_PREFIX}/batch/state", json={"batch_id": batch_id, "state": "released"}
    )
    assert r.status_code == 400
    assert "POST /batch/release" in r.json()["detail"]


def test_an_unknown_state_is_422_naming_state(cs: Clickstream, client: TestClient) -> None:
    batch_id = register(cs, "s1").batch_id
    r = client.post(f"{INTERNAL_PREFIX}/batch/state", json={"batch_id": batch_id, "state": "done"})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["field"] == "state"
    assert "fine_tuning" in error["msg"]
    with pytest.raises(InvalidInput, match="state"):
        cs.set_batch_state(batch_id or 0, "frozen")  # type: ignore[arg-type]
    assert client.get(f"{INTERNAL_PREFIX}/batches", params={"state": "frozen"}).status_code == 422


def test_an_unknown_batch_is_404_everywhere(cs: Clickstream, client: TestClient) -> None:
    with pytest.raises(BatchNotFound):
        cs.set_batch_state(42, "archived")
    with pytest.raises(BatchNotFound):
        cs.get_batch(42)
    expected = {"detail": "Batch with id=42 not found", "code": "not_found"}
    r = client.post(f"{INTERNAL_PREFIX}/batch/state", json={"batch_id": 42, "state": "archived"})
    assert (r.status_code, r.json()) == (404, expected)
    r = client.get(f"{INTERNAL_PREFIX}/batch", params={"batch_id": 42})
    assert (r.status_code, r.json()) == (404, expected)


# Found by schemathesis: on SQLite these reached the driver, which raised OverflowError (500).
OUT_OF_RANGE = [0, -1, 2**63, 2**64 + 1, -(2**64)]


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_an_id_outside_64_bits_or_below_1_is_422_naming_it_everywhere(
    cs: Clickstream, client: TestClient, tmp_path: Path, bad: int
) -> None:
    batch_id = register(cs, "s1").batch_id
    assert batch_id is not None
    cs.release_batch("r1")
    calls: list[Callable[[], object]] = [
        lambda: cs.get_batch(bad),
        lambda: cs.set_batch_state(bad, "archived"),
        lambda: cs.batch_sessions(bad),
        lambda: cs.export(bad, tmp_path / "out.jsonl"),
        lambda: cs.ack_improvement(entry_id=bad, attempt=1, status="done"),
        lambda: cs.ack_improvement(entry_id=1, attempt=bad, status="done"),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    http = [
        ("get", "/batch", {"batch_id": bad}, "batch_id"),
        ("get", "/batch/sessions", {"batch_id": bad}, "batch_id"),
        ("post", "/batch/state", {"batch_id": bad, "state": "archived"}, "batch_id"),
        ("post", "/improvement/ack", {"entry_id": bad, "attempt": 1, "status": "done"}, "entry_id"),
    ]
    if bad != 0:  # after_number 0 is the first page
        http.append(
            (
                "get",
                "/batch/sessions",
                {"batch_id": batch_id, "after_number": bad},
                "after_number",
            )
        )
    for method, path, data, field in http:
        sent = {"params": data} if method == "get" else {"json": data}
        r = client.request(method, f"{INTERNAL_PREFIX}{path}", **sent)  # type: ignore[arg-type]
        assert r.status_code == 422, (path, r.text)
        assert [e["field"] for e in r.json()["detail"]] == [field]
    assert cs.get_batch(batch_id).state == "released"


def test_the_largest_64_bit_id_is_simply_not_found(cs: Clickstream, client: TestClient) -> None:
    top = 2**63 - 1
    with pytest.raises(BatchNotFound):
        cs.get_batch(top)
    r = client.get(
        f"{INTERNAL_PREFIX}/batch/sessions", params={"batch_id": top, "after_number": top}
    )
    assert r.status_code == 404, r.text


def test_batches_are_listed_with_their_session_and_event_counts(
    cs: Clickstream, client: TestClient
) -> None:
    for sid in ("a1", "a2", "a3"):
        register(cs, sid)
    cs.push_events("a1", [{"event_id": "e1", "object_id": "a"}, {"event_id": "e2"}])
    cs.push_events("a3", [{"event_id": "e1", "object_id": "a"}])
    first = cs.release_batch("r1").batch_id
    register(cs, "b1")
    second = register(cs, "b2").batch_id

    listed = client.get(f"{INTERNAL_PREFIX}/batches").json()["batches"]
    assert [(b["batch_id"], b["state"], b["sessions"], b["events"]) for b in listed] == [
        (first, "released", 3, 3),
        (second, "collecting", 2, 0),
    ]
    released = client.get(f"{INTERNAL_PREFIX}/batches", params={"state": "released"}).json()
    assert [b["batch_id"] for b in released["batches"]] == [first]
    assert [b.batch_id for b in cs.list_batches("collecting")] == [second]
    one = client.get(f"{INTERNAL_PREFIX}/batch", params={"batch_id": first}).json()
    assert one == listed[0]


def test_batch_sizes_count_states_and_the_collecting_batchs_sessions(cs: Clickstream) -> None:
    """What /metrics reads on every scrape (http/telemetry.py)."""
    assert (cs.batch_sizes().batches, cs.batch_sizes().collecting_sessions) == ({}, 0)
    for sid in ("s1", "s2", "s3"):
        register(cs, sid)
    cs.release_batch("r1")
    register(cs, "s4")
    sizes = cs.batch_sizes()
    assert sizes.batches == {"released": 1, "collecting": 1}
    assert sizes.collecting_sessions == 1
    cs.release_batch("r2")
    assert (cs.batch_sizes().batches, cs.batch_sizes().collecting_sessions) == ({"released": 2}, 0)
