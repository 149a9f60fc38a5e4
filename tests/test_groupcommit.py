"""Group commit: writers queued together share one commit, and each gets its own answer.

The commit lock is held by the test while the writers queue up, so the group is
deterministic: every writer below lands in the same transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import ProgrammingError

from searchtrail import Clickstream
from searchtrail.errors import SessionFull, SessionNotFound, Unavailable
from searchtrail.settings import Settings
from searchtrail.storage.sql._groupcommit import GroupCommit
from tests.support import postgres_only, sqlite_only


def _group(cs: Clickstream) -> GroupCommit:
    group = cs.storage.db.group
    assert group is not None
    return group


def _queued(group: GroupCommit, count: int) -> None:
    """Wait, blocking, until ``count`` writes are queued (30 s at most)."""
    deadline = time.monotonic() + 30
    while len(group._queue) < count:
        assert time.monotonic() < deadline
        time.sleep(0.01)


async def _queued_async(group: GroupCommit, count: int) -> None:
    """``_queued`` inside an event loop: the loop must run to queue its writes."""
    deadline = time.monotonic() + 30
    while len(group._queue) < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def _run_grouped(cs: Clickstream, calls: list[Callable[[], Any]]) -> list[Any]:
    """Queue the calls in order behind the held commit lock, then let one leader commit them."""
    group = _group(cs)
    answers: list[Any] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            answers[i] = calls[i]()
        except Exception as exc:
            answers[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    with group._commit_lock:
        for i, t in enumerate(threads):
            t.start()
            _queued(group, i + 1)  # in the order of the calls
    for t in threads:
        t.join(timeout=30)
    return answers


def _refused(conn: Connection) -> None:
    """A piece the database refuses: on SQLite an OperationalError, on PostgreSQL not."""
    conn.execute(text("SELECT * FROM no_such_table"))


def _count_commits(cs: Clickstream) -> list[int]:
    commits: list[int] = []
    event.listen(cs.storage.db.writer, "commit", lambda _conn: commits.append(1))
    return commits


def test_a_group_commits_once_and_a_failed_member_stores_nothing(cs: Clickstream) -> None:
    cs.create_session(session_id="known")
    commits = _count_commits(cs)
    calls: list[Callable[[], Any]] = [
        *(lambda i=i: cs.create_session(session_id=f"s{i}") for i in range(8)),
        lambda: cs.push_events("unknown", [{"event_id": "e1"}]),
        lambda: cs.push_events("known", [{"event_id": "a"}, {"event_id": "b"}]),
        lambda: cs.push_events("known", [{"event_id": "b"}, {"event_id": "c"}]),
    ]
    answers = _run_grouped(cs, calls)
    assert len(commits) == 1
    assert [a.session_id for a in answers[:8]] == [f"s{i}" for i in range(8)]
    assert len({a.session_number for a in answers[:8]}) == 8
    assert isinstance(answers[8], SessionNotFound)
    # Members see each other's writes in queue order: the second push finds "b" stored.
    assert (answers[9].stored, answers[10].stored, answers[10].duplicates) == (2, 1, 1)
    assert cs.storage.count("sessions") == 9
    assert sorted(e.event_id for e in cs.get_session("known").events) == ["a", "b", "c"]


@sqlite_only  # PostgreSQL reports no such table as the query's own failure
def test_a_database_failure_fails_the_whole_group_and_stores_nothing(cs: Clickstream) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: cs.create_session(session_id="a"),
        lambda: cs.storage.db.write(_refused),
        lambda: cs.create_session(session_id="b"),
    ]
    answers = _run_grouped(cs, calls)
    assert all(isinstance(a, Unavailable) for a in answers), answers
    assert cs.storage.count("sessions") == 0
    # The store keeps working after the failed group.
    assert cs.create_session(session_id="a").session_id == "a"


def test_writes_one_at_a_time_each_commit_alone(cs: Clickstream) -> None:
    commits = _count_commits(cs)
    for i in range(3):
        cs.create_session(session_id=f"s{i}")
    assert len(commits) == 3


@pytest.mark.parametrize("writers", [2, 16])
def test_concurrent_writers_each_get_their_answer(cs: Clickstream, writers: int) -> None:
    cs.create_session(session_id="s")
    answers: dict[int, int] = {}

    def push(w: int) -> None:
        answers[w] = cs.push_events("s", [{"event_id": f"{w}-{k}"} for k in range(5)]).stored

    threads = [threading.Thread(target=push, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers == dict.fromkeys(range(writers), 5)
    assert len(cs.get_session("s", events_limit=10_000).events) == 5 * writers


def test_writes_share_one_connection_until_the_database_fails(tmp_path: Path) -> None:
    """SQLite's writes keep one connection; a locked database makes the next write reconnect."""
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    with Clickstream(settings=Settings(database_url=url, sqlite_busy_timeout_ms=50)) as cs:
        cs.create_session(session_id="a")
        kept = cs.storage.db.writer_conn
        assert kept is not None
        kept_driver = kept.connection.dbapi_connection
        cs.create_session(session_id="b")
        assert cs.storage.db.writer_conn is kept

        other = sqlite3.connect(tmp_path / "kept.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
        with pytest.raises(Unavailable):
            cs.create_session(session_id="c")
        assert cs.storage.db.writer_conn is None
        other.execute("ROLLBACK")
        other.close()

        assert cs.create_session(session_id="c").session_id == "c"
        assert cs.storage.db.writer_conn is not None
        assert cs.storage.db.writer_conn.connection.dbapi_connection is not kept_driver
        assert sorted(s for s in ("a", "b", "c") if cs.get_session(s)) == ["a", "b", "c"]


def test_close_waits_for_a_write_in_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'closing.db'}"
    cs = Clickstream(url)
    started = threading.Event()
    outcome: list[object] = []

    def slow(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE marker (x INTEGER)"))
        started.set()
        time.sleep(0.5)
        conn.execute(text("INSERT INTO marker VALUES (1)"))

    def write() -> None:
        try:
            outcome.append(cs.storage.db.write(slow))
        except Exception as exc:
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    assert started.wait(30)
    cs.close()  # must not pull the connection from under the write
    writer.join(30)
    assert outcome == [None]
    check = sqlite3.connect(tmp_path / "closing.db")
    assert check.execute("SELECT x FROM marker").fetchall() == [(1,)]
    check.close()


def test_the_event_loop_awaits_writes_the_writer_thread_commits(cs: Clickstream) -> None:
    """Writes awaited together land in one commit, made off the loop's thread."""
    cs.create_session(session_id="known")
    group = _group(cs)
    commits = _count_commits(cs)
    threads: list[str] = []
    event.listen(
        cs.storage.db.writer, "commit", lambda _c: threads.append(threading.current_thread().name)
    )

    async def main() -> list[Any]:
        calls = [
            *(cs.create_session_json_async(f'{{"session_id": "s{i}"}}') for i in range(4)),
            cs.push_events_json_async('{"session_id": "unknown", "events": [{"event_id": "x"}]}'),
            cs.push_events_json_async(
                '{"session_id": "known", "events": [{"event_id": "a"}, {"event_id": "a"}]}'
            ),
        ]
        with group._commit_lock:  # let every write queue before the thread commits
            tasks = [asyncio.ensure_future(c) for c in calls]
            await _queued_async(group, len(calls))
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(main())
    assert [a.session_id for a in answers[:4]] == [f"s{i}" for i in range(4)]
    assert isinstance(answers[4], SessionNotFound)
    assert (answers[5].stored, answers[5].duplicates) == (1, 1)
    assert len(commits) == 1
    assert threads == ["searchtrail-writer"]
    assert cs.storage.count("sessions") == 5


def test_a_blocking_writer_and_an_awaiting_one_share_a_group(cs: Clickstream) -> None:
    """Whoever commits answers everyone in its group, the loop's writes included."""
    group = _group(cs)
    commits = _count_commits(cs)
    blocking: list[Any] = []

    async def main() -> Any:
        with group._commit_lock:
            awaited = asyncio.ensure_future(cs.create_session_json_async('{"session_id": "a"}'))
            await asyncio.sleep(0)
            _queued(group, 1)
            writer = threading.Thread(
                target=lambda: blocking.append(cs.create_session(session_id="b"))
            )
            writer.start()
            _queued(group, 2)
        answer = await awaited
        writer.join(30)
        return answer

    assert asyncio.run(main()).session_id == "a"
    assert [s.session_id for s in blocking] == ["b"]
    assert len(commits) == 1


def test_a_cancelled_request_still_stores_its_write(cs: Clickstream) -> None:
    """A client that hangs up does not undo a write already queued; nothing is left unread."""
    group = _group(cs)

    async def main() -> None:
        with group._commit_lock:
            task = asyncio.ensure_future(cs.create_session_json_async('{"session_id": "gone"}'))
            await _queued_async(group, 1)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    deadline = time.monotonic() + 30
    while cs.storage.count("sessions") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert cs.get_session("gone").session_id == "gone"


def test_close_commits_what_the_loop_queued_then_refuses(tmp_path: Path) -> None:
    cs = Clickstream(f"sqlite:///{tmp_path / 'stop.db'}")
    group = _group(cs)
    closer = threading.Thread(target=cs.close)

    async def main() -> tuple[Any, BaseException]:
        with group._commit_lock:
            task = asyncio.ensure_future(cs.create_session_json_async('{"session_id": "last"}'))
            await _queued_async(group, 1)
            closer.start()
            while not group._stopping:
                await asyncio.sleep(0.01)
        stored = await task
        with pytest.raises(Unavailable) as refused:
            await cs.create_session_json_async('{"session_id": "late"}')
        return stored, refused.value

    stored, _ = asyncio.run(main())
    closer.join(30)
    assert stored.session_id == "last"
    check = sqlite3.connect(tmp_path / "stop.db")
    assert check.execute("SELECT session_id FROM sessions").fetchall() == [("last",)]
    check.close()


def _savepoints(cs: Clickstream) -> list[str]:
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SAVEPOINT"):
            seen.append(statement)

    event.listen(cs.storage.db.writer, "before_cursor_execute", watch)
    return seen


def test_a_member_that_failed_before_writing_costs_no_savepoint(cs: Clickstream) -> None:
    cs.create_session(session_id="known")
    savepoints = _savepoints(cs)
    answers = _run_grouped(
        cs,
        [
            lambda: cs.push_events("known", [{"event_id": "a"}]),
            lambda: cs.push_events("unknown", [{"event_id": "a"}]),
            lambda: cs.create_session(session_id="new"),
        ],
    )
    assert isinstance(answers[1], SessionNotFound)
    assert (answers[0].stored, answers[2].session_id) == (1, "new")
    assert savepoints == []


def test_a_member_that_failed_after_writing_is_undone_by_a_rerun_with_savepoints(
    cs: Clickstream,
) -> None:
    commits = _count_commits(cs)
    savepoints = _savepoints(cs)
    runs: list[str] = []

    def half_done(conn: Connection) -> None:
        runs.append("half")
        conn.execute(text("UPDATE sessions SET user_id = 'leaked' WHERE session_id = 'before'"))
        raise ValueError("failed after writing")

    answers = _run_grouped(
        cs,
        [
            lambda: cs.create_session(session_id="before"),
            lambda: cs.storage.db.write(half_done),
            lambda: cs.create_session(session_id="after"),
        ],
    )
    assert isinstance(answers[1], ValueError)
    assert [answers[0].session_id, answers[2].session_id] == ["before", "after"]
    assert runs == ["half", "half"]  # the plain run, then the run with savepoints
    assert len(savepoints) == 3
    assert len(commits) == 1
    assert cs.storage.count("sessions") == 2
    assert cs.get_session("before").user_id is None


def test_a_writer_thread_that_failed_to_start_is_started_by_the_next_write(
    cs: Clickstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread that could not start must not be taken for a running one: that hangs every write."""
    real_start = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def start(thread: threading.Thread) -> None:
        if thread.name == "searchtrail-writer" and failures:
            raise failures.pop()
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)

    async def main() -> Any:
        with pytest.raises(RuntimeError):
            await cs.create_session_json_async('{"session_id": "first"}')
        return await asyncio.wait_for(cs.create_session_json_async('{"session_id": "second"}'), 10)

    assert asyncio.run(main()).session_id == "second"


def test_an_awaited_write_after_close_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    """Refused by a closed store: a 503 to retry elsewhere, as the blocking path never 500s."""
    cs = Clickstream(f"sqlite:///{tmp_path / 'closed.db'}")
    cs.create_session(session_id="s")
    cs.close()
    with pytest.raises(Unavailable):
        asyncio.run(cs.create_session_json_async('{"session_id": "late"}'))
    with pytest.raises(Unavailable):
        asyncio.run(cs.push_events_json_async('{"session_id": "s", "events": [{"event_id": "a"}]}'))


def test_an_outcome_a_future_refuses_still_answers_its_group(cs: Clickstream) -> None:
    """A future will not take StopIteration; the requests resolved after it must still be."""
    group = _group(cs)

    def stops(_conn: Connection) -> None:
        raise StopIteration

    async def main() -> list[Any]:
        with group._commit_lock:
            cs.storage.db.write_ops["stops"] = lambda: stops
            tasks = [
                asyncio.ensure_future(cs.storage.db.write_async("stops")),
                asyncio.ensure_future(cs.create_session_json_async('{"session_id": "next"}')),
            ]
            await _queued_async(group, 2)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    refused, answered = asyncio.run(main())
    assert isinstance(refused, RuntimeError)
    assert answered.session_id == "next"


def _statements(cs: Clickstream) -> list[str]:
    seen: list[str] = []
    event.listen(
        cs.storage.db.writer, "before_cursor_execute", lambda _c, _cur, sql, *_a: seen.append(sql)
    )
    return seen


@postgres_only
def test_a_member_that_fails_in_postgresql_fails_alone(cs: Clickstream) -> None:
    """PostgreSQL ends a transaction at its first error: the group reruns with savepoints."""
    commits = _count_commits(cs)
    savepoints = _savepoints(cs)
    runs: list[str] = []

    def broken(conn: Connection) -> None:
        runs.append("broken")
        _refused(conn)

    answers = _run_grouped(
        cs,
        [
            lambda: cs.create_session(session_id="a"),
            lambda: cs.storage.db.write(broken),
            lambda: cs.create_session(session_id="b"),
        ],
    )
    assert isinstance(answers[1], ProgrammingError), answers
    assert [answers[0].session_id, answers[2].session_id] == ["a", "b"]
    assert runs == ["broken"]  # refused once, kept: not run again with the others
    assert len(savepoints) == 2
    assert len(commits) == 1
    assert cs.storage.count("sessions") == 2


@postgres_only
def test_a_postgresql_group_passes_the_batch_gate_once_and_pushes_never(cs: Clickstream) -> None:
    cs.create_session(session_id="opens the batch")
    statements = _statements(cs)
    answers = _run_grouped(
        cs,
        [
            lambda: cs.push_events("opens the batch", [{"event_id": "e1"}]),
            *(lambda i=i: cs.create_session(session_id=f"s{i}") for i in range(4)),
        ],
    )
    assert [a.session_id for a in answers[1:]] == ["s0", "s1", "s2", "s3"]
    gates = [sql for sql in statements if "pg_advisory_xact_lock" in sql]
    assert len(gates) == 1 and "pg_advisory_xact_lock_shared" in gates[0], statements
    statements.clear()
    _run_grouped(cs, [lambda i=i: cs.push_events("s0", [{"event_id": f"p{i}"}]) for i in range(3)])
    assert not [sql for sql in statements if "pg_advisory_xact_lock" in sql]


@postgres_only
def test_a_push_does_not_wait_behind_a_release_that_waits(cs: Clickstream) -> None:
    """A release waits for the registrations holding the gate; pushes do not queue behind it."""
    cs.create_session(session_id="s1")
    holder = cs.storage.engine.connect()  # a registration of another process, in flight
    cs.storage.db.dialect.batch_gate(holder, exclusive=False)
    try:
        released: list[Any] = []
        releaser = threading.Thread(target=lambda: released.append(cs.release_batch("r1")))
        releaser.start()
        _until_waiting_for_a_lock(cs, "advisory")
        pushed: list[Any] = []
        pusher = threading.Thread(
            target=lambda: pushed.append(cs.push_events("s1", [{"event_id": "e1"}]))
        )
        pusher.start()
        pusher.join(20)
        assert not pusher.is_alive(), "the push waited for the release"
        assert pushed[0].stored == 1 and not released
    finally:
        holder.rollback()
        holder.close()
    releaser.join(30)
    assert released[0].release_id == "r1"


def _until_waiting_for_a_lock(cs: Clickstream, locktype: str) -> None:
    deadline = time.monotonic() + 30
    query = text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = :t")
    with cs.storage.engine.connect() as conn:
        while not conn.execute(query, {"t": locktype}).scalar():
            assert time.monotonic() < deadline
            time.sleep(0.01)
            conn.rollback()


@postgres_only
def test_a_member_that_times_out_on_a_lock_fails_alone(database_url: str) -> None:
    """PostgreSQL's lock timeout is one statement's failure: the others of its group commit."""
    settings = Settings(database_url=database_url, sqlite_busy_timeout_ms=500)
    with Clickstream(settings=settings) as cs:
        cs.create_session(session_id="locked")
        statements = _statements(cs)
        holder = cs.storage.engine.connect()
        holder.execute(text("SELECT 1 FROM sessions WHERE session_id = 'locked' FOR UPDATE"))
        try:
            answers = _run_grouped(
                cs,
                [
                    lambda: cs.create_session(session_id="a"),
                    lambda: cs.mark_irrelevant("locked"),
                    lambda: cs.create_session(session_id="b"),
                ],
            )
        finally:
            holder.rollback()
            holder.close()
        assert isinstance(answers[1], Unavailable), answers
        assert [answers[0].session_id, answers[2].session_id] == ["a", "b"]
        assert cs.storage.count("sessions") == 3
        # The lock was waited for once: the rerun with savepoints keeps the timeout's answer.
        assert sum(sql.startswith("UPDATE sessions") for sql in statements) == 1


def test_a_member_that_changed_rows_through_a_cte_is_undone(cs: Clickstream) -> None:
    """Changed rows are counted by what ran (WITH ... UPDATE), not by how the SQL begins."""
    cs.create_session(session_id="before")

    def half_done(conn: Connection) -> None:
        conn.execute(
            text(
                "WITH target AS (SELECT 'before' AS id) UPDATE sessions SET user_id = 'leaked'"
                " WHERE session_id IN (SELECT id FROM target)"
            )
        )
        raise ValueError("failed after writing")

    answers = _run_grouped(
        cs, [lambda: cs.storage.db.write(half_done), lambda: cs.create_session(session_id="after")]
    )
    assert isinstance(answers[0], ValueError)
    assert answers[1].session_id == "after"
    assert cs.get_session("before").user_id is None


def test_a_push_refused_at_the_cap_leaves_nothing_behind_in_its_group(
    database_url: str,
) -> None:
    """On PostgreSQL a push is one statement that bumps its session's stats before the
    cap refuses it: its changed rows must be counted, or the group would commit them."""
    with Clickstream(settings=Settings(database_url=database_url, max_events_per_session=1)) as cs:
        cs.create_session(session_id="full")
        cs.push_events("full", [{"event_id": "a"}])
        cs.refresh_metrics()
        answers = _run_grouped(
            cs,
            [
                lambda: cs.push_events("full", [{"event_id": "b"}]),
                lambda: cs.create_session(session_id="new"),
            ],
        )
        assert isinstance(answers[0], SessionFull)
        assert answers[1].session_id == "new"
        assert cs.storage.metrics.stale() == 1  # the new session's row, not the full one's


@postgres_only
def test_a_postgresql_release_runs_outside_the_group(cs: Clickstream) -> None:
    """A release takes the gate exclusive: inside a group that holds it shared, two would wait
    for each other. It commits while the group commit is held."""
    cs.create_session(session_id="s1")
    answers: list[Any] = []
    with _group(cs)._commit_lock:
        releaser = threading.Thread(target=lambda: answers.append(cs.release_batch("r1")))
        releaser.start()
        releaser.join(30)
        assert not releaser.is_alive(), "the release waited for the group commit"
    assert answers[0].release_id == "r1"
    assert cs.create_session(session_id="s2").session_id == "s2"


@postgres_only
@pytest.mark.parametrize("savepoints", [False, True], ids=["plain", "in savepoints"])
def test_two_processes_groups_that_deadlock_are_run_again(
    cs: Clickstream, settings: Settings, savepoints: bool
) -> None:
    """Crossed pushes in two stores' groups: each holds the row of one session the other's
    next push locks (a push moves its session's stats version). PostgreSQL ends one,
    which commits on a rerun.

    In savepoints too: there the locks of the group's other pieces take part in the
    deadlock, so only rolling the whole group back breaks it.
    """
    cs.create_session(session_id="s")
    cs.create_session(session_id="t")

    def push(store: Any, session_id: str, event_id: str) -> Callable[[Connection], Any]:
        return store.sessions.store_events_write(
            session_id, [(event_id, "o", "click", 0, None, None)]
        )

    def first_then_wait(
        fn: Callable[[Connection], Any], reached: threading.Event, go: threading.Event
    ) -> Callable[[Connection], Any]:
        def run(conn: Connection) -> Any:
            stored = fn(conn)
            if not reached.is_set():  # the first run only: a rerun goes straight through
                reached.set()
                assert go.wait(30)
            return stored

        return run

    go = threading.Event()
    answers: dict[str, list[Any]] = {}
    with Clickstream(settings=settings) as other:
        reached = {"a": threading.Event(), "b": threading.Event()}
        first = [_refused] if savepoints else []  # which sends the group to savepoints
        groups = {
            "a": (
                cs,
                [
                    *first,
                    first_then_wait(push(cs.storage, "s", "x"), reached["a"], go),
                    push(cs.storage, "t", "y"),
                ],
            ),
            "b": (
                other,
                [
                    *first,
                    first_then_wait(push(other.storage, "t", "y"), reached["b"], go),
                    push(other.storage, "s", "x"),
                ],
            ),
        }

        def commit(name: str) -> None:
            store_of, fns = groups[name]
            answers[name] = _run_grouped(
                store_of, [lambda fn=fn: store_of.storage.db.write(fn) for fn in fns]
            )

        threads = [threading.Thread(target=commit, args=(name,)) for name in groups]
        for t in threads:
            t.start()
        assert reached["a"].wait(30) and reached["b"].wait(30)
        go.set()  # each group now pushes to the session whose row the other holds
        for t in threads:
            t.join(60)
    outcomes = [a for name in groups for a in answers[name][len(first) :]]
    assert not [a for a in outcomes if isinstance(a, BaseException)], outcomes
    assert sorted(stored for stored, _ in outcomes) == [0, 0, 1, 1]
    assert [e.event_id for e in cs.get_session("s").events] == ["x"]
    assert [e.event_id for e in cs.get_session("t").events] == ["y"]
