"""Several processes writing one SQLite file at once: every acknowledged event exactly once."""

from __future__ import annotations

import multiprocessing as mp

from searchtrail import Clickstream

PROCESSES = 4
SESSIONS = 10
ROUNDS = 15


def _writer(database_url: str, worker: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    acknowledged: list[tuple[str, str]] = []
    with Clickstream(database_url) as cs:
        for s in range(SESSIONS):
            # Every worker registers the same sessions: replays must be harmless.
            cs.create_session(session_id=f"s{s}", search_query="q")
        for r in range(ROUNDS):
            for s in range(SESSIONS):
                # Overlapping ids across workers and rounds: duplicates, never errors.
                events = [{"event_id": f"e{r}-{k}"} for k in range(worker, worker + 3)]
                cs.push_events(f"s{s}", events)
                acknowledged.extend((f"s{s}", e["event_id"]) for e in events)
    out.put(acknowledged)


def test_processes_share_one_file(database_url: str) -> None:
    Clickstream(database_url).close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(database_url, w, out)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    acknowledged = set()
    for _ in procs:
        acknowledged.update(out.get(timeout=120))
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with Clickstream(database_url) as cs:
        stored = [
            (f"s{s}", e.event_id) for s in range(SESSIONS) for e in cs.get_session(f"s{s}").events
        ]
        assert cs.store.count("sessions") == SESSIONS
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) == acknowledged
