"""Several processes writing one database at once, with releases in between.

Each process registers its own sessions and replays shared ones, pushes events whose
ids overlap with other processes' (duplicates), repeats some pushes and releases as
a client does after a lost answer (retries), and releases the collecting batch now
and then. Afterwards: every acknowledged event is stored exactly once, every session
sits in exactly one batch with a number unique in it, and no session registered after
a release was answered landed in the batch that release closed.

Eight processes on PostgreSQL, the production setup; four on one SQLite file, whose
writers take turns anyway. No call may fail: a deadlock or a lock timeout would surface
as ``Unavailable`` and fail the worker.
"""

from __future__ import annotations

import multiprocessing as mp

import pytest

from searchtrail import Clickstream
from searchtrail.errors import NoCollectingBatch

pytestmark = pytest.mark.slow  # a stress run of several writer processes

SESSIONS = 8
SHARED = 4
ROUNDS = 6


def _worker(database_url: str, worker: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    acknowledged: list[tuple[str, str]] = []
    answered: dict[str, int] = {}  # session -> batch its registration answered
    released: list[tuple[str, int]] = []
    late: list[tuple[str, int]] = []  # (session, newest batch released before it registered)
    newest_released = 0
    with Clickstream(database_url) as cs:
        for r in range(ROUNDS):
            for s in range(SESSIONS):
                sid = f"w{worker}-s{s}" if r == 0 else f"w{worker}-s{s}-r{r}"
                session = cs.create_session({"session_id": sid, "search_query": "q"})
                answered[sid] = session.batch_id
                late.append((sid, newest_released))
            for s in range(SHARED):
                # Every worker registers the same shared sessions: replays must be harmless.
                shared = cs.create_session({"session_id": f"shared{s}"})
                answered[shared.session_id] = shared.batch_id
            for s in range(SESSIONS):
                target = f"w{worker}-s{s}" if s % 2 else f"shared{s % SHARED}"
                # Ids overlap across workers and rounds: duplicates, never errors.
                events = [{"event_id": f"e{r % 3}-{k}"} for k in range(worker, worker + 3)]
                cs.push_events(target, events)
                if s % 3 == 0:
                    cs.push_events(target, events)  # the retry of a lost answer
                acknowledged.extend((target, e["event_id"]) for e in events)
            key = f"w{worker}-r{r}"
            try:
                result = cs.release_batch(key)
            except NoCollectingBatch:
                continue
            again = cs.release_batch(key)  # a retried release answers the same
            assert again.batch_id == result.batch_id
            released.append((key, result.batch_id))
            newest_released = max(newest_released, result.batch_id)
    out.put((acknowledged, answered, released, late))


def test_processes_share_one_database(database_url: str, dialect: str) -> None:
    processes = 8 if dialect == "postgresql" else 4
    Clickstream(database_url).close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(database_url, w, out)) for w in range(processes)]
    for p in procs:
        p.start()
    acknowledged: set[tuple[str, str]] = set()
    answered: dict[str, set[int]] = {}
    released: list[tuple[str, int]] = []
    late: list[tuple[str, int]] = []
    for _ in procs:
        acks, ans, rel, lt = out.get(timeout=300)
        acknowledged.update(acks)
        for sid, batch_id in ans.items():
            answered.setdefault(sid, set()).add(batch_id)
        released.extend(rel)
        late.extend(lt)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0

    with Clickstream(database_url) as cs:
        # Every session in exactly one batch, the one its registrations answered.
        where: dict[str, int] = {}
        for batch in cs.list_batches():
            numbers = []
            for s in cs.iter_batch_sessions(batch.batch_id, page_size=100):
                assert s.session_id not in where
                assert s.session_number is not None
                where[s.session_id] = batch.batch_id
                numbers.append(s.session_number)
            assert len(numbers) == len(set(numbers)) == batch.sessions
            assert numbers == sorted(numbers)
        assert set(where) == set(answered)
        assert all(answered[sid] == {where[sid]} for sid in where)
        # A session registered after a release was answered is never in that batch.
        assert all(where[sid] > newest for sid, newest in late)
        # Each release key closed one batch of its own.
        assert len({key for key, _ in released}) == len(released)
        assert len({batch_id for _, batch_id in released}) == len(released)
        states = {b.batch_id: b.state for b in cs.list_batches()}
        assert all(states[batch_id] == "released" for _, batch_id in released)
        assert list(states.values()).count("collecting") <= 1

        # Every acknowledged event stored exactly once.
        stored = [(sid, e.event_id) for sid in where for e in cs.iter_session_events(sid)]
    assert len(stored) == len(set(stored))
    assert set(stored) == acknowledged
    assert released, "no release happened alongside the writers"
