"""The metrics stay exact while the data changes under them, on both dialects.

Late events after a refresh, an event pushed days after its session, a session marked
irrelevant after its stats were computed, an imported history, a database upgraded from
revision 0004 (the 0005 backfill), pushes from several threads racing refreshes, a push
landing inside a refresh, and a new ``metrics_ranker_key``. Each is checked against the
brute-force reference (tests/metrics_reference.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, create_engine

import searchtrail.storage.sql.metrics as sql_metrics
from searchtrail import Clickstream, Settings
from searchtrail.models import MetricsGroups, MetricsSummary, MetricValues
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.migrate import head_revision, schema_status, upgrade
from searchtrail.storage.sql.schema import batches, events, sessions
from searchtrail.timestamps import now_ms
from tests.metrics_reference import (
    BY,
    DAY_MS,
    HOUR_MS,
    assert_same_metrics,
    check,
    day_start,
    read_all,
    record_history,
)
from tests.pg import PgServer

WINDOW_S = 8 * 86_400


def settings_of(url: str, **more: Any) -> Settings:
    return Settings(database_url=url, time_max_delta_minus_sec=WINDOW_S, **more)


@pytest.fixture
def cs(database_url: str) -> Iterator[Clickstream]:
    with Clickstream(settings=settings_of(database_url)) as clickstream:
        yield clickstream


@pytest.fixture
def other_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Another database of the same dialect: ``"empty"`` has no tables, ``"head"`` the schema."""

    def make(kind: str) -> str:
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / f'{kind}.db'}"
        server: PgServer = request.getfixturevalue("pg_server")
        return server.new_database("template0") if kind == "empty" else server.new_database()

    return make


def register(cs: Clickstream, sid: str, at: int, shown: str, **more: Any) -> None:
    cs.create_session(
        session_id=sid,
        search_query=more.pop("query", "shoes"),
        search_results=[{"object_id": o} for o in shown],
        created_at=at,
        **more,
    )


def push(cs: Clickstream, sid: str, *evs: tuple[str | None, str, int | None]) -> int:
    """Events ``(object_id, type, created_at)``, their ids from their content."""
    return cs.push_events(
        sid, [{"object_id": o, "event_type": t, "created_at": ms} for o, t, ms in evs]
    ).stored


def summary(cs: Clickstream, **scope: Any) -> MetricsSummary:
    answer = cs.metrics(**scope)
    assert isinstance(answer, MetricsSummary)
    return answer


# -- late events and irrelevant sessions --------------------------------------------------------


def test_events_pushed_after_a_refresh_are_counted(cs: Clickstream) -> None:
    t = now_ms() - 3 * HOUR_MS
    register(cs, "s1", t, "abc")
    register(cs, "s2", t + 1, "abc")
    push(cs, "s1", ("c", "click", t + 500))
    before = check(cs).summaries[0]
    assert (before.ctr, before.conversion_rate) == (0.5, 0.0)
    assert before.mrr == pytest.approx(1 / 6)
    cs.release_batch("r1")  # a late event to a session of a released batch, too
    register(cs, "s3", t + 2, "")
    push(cs, "s1", ("a", "purchase", t + 900), ("zz", "view", t + 950))
    push(cs, "s2", ("b", "add_to_cart", None))
    after = check(cs).summaries[0]
    assert (after.ctr, after.conversion_rate, after.mrr) == (1.0, 0.5, 0.75)
    assert (after.sessions, after.interactions, after.unshown_events) == (3, 3, 1)


def test_an_event_pushed_days_after_its_session_counts_on_the_session_day(
    cs: Clickstream,
) -> None:
    day = day_start(now_ms()) - 2 * DAY_MS
    register(cs, "old", day + 10 * HOUR_MS, "ab")
    first = check(cs, by=["day", "hour"])
    assert [g.key for g in first.groups["day"].groups] == [first.groups["day"].groups[0].key]
    push(cs, "old", ("b", "click", None))  # stamped now, two days later
    push(cs, "old", ("a", "purchase", day + 11 * HOUR_MS))  # of its day, pushed now
    later = check(cs, by=["day", "hour"])
    (group,) = later.groups["day"].groups
    assert group.key == first.groups["day"].groups[0].key  # no group for today
    assert (group.sessions_with_interaction, group.sessions_with_purchase, group.mrr) == (1, 1, 1.0)
    assert group.time_to_first_interaction_ms.median == HOUR_MS


def test_marking_a_session_irrelevant_after_a_refresh_takes_it_out_at_once(
    cs: Clickstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = now_ms() - HOUR_MS
    register(cs, "kept", t, "ab", query="hats")
    register(cs, "bot", t + 1, "ab", query="hats", search_meta={"ranker": "R"})
    push(cs, "bot", ("a", "purchase", t + 10))
    assert check(cs).summaries[0].sessions_with_purchase == 1
    cs.mark_irrelevant("bot")
    # Marking changes no stats: the row follows is_irrelevant by its trigger, so nothing
    # is stale and the next answer needs no refresh at all.
    assert cs.storage.metrics.stale() == 0
    monkeypatch.setattr(cs, "refresh_metrics", lambda limit=None: 0)
    assert check(cs).summaries[0].sessions == 1
    assert check(cs, include_irrelevant=True).summaries[0].sessions_with_purchase == 1
    monkeypatch.undo()
    push(cs, "bot", ("b", "click", t + 20))  # an irrelevant session still takes events
    check(cs)
    check(cs, include_irrelevant=True)


# -- an imported history, an upgraded database ------------------------------------------------


def assert_same_answers(got: Clickstream, want: Clickstream, includes: tuple[bool, ...]) -> None:
    for include in includes:
        a, b = summary(got, include_irrelevant=include), summary(want, include_irrelevant=include)
        assert_same_metrics(a, b.model_dump(include=set(MetricValues.model_fields)))
        for by in BY:
            ga = got.metrics(by=by, include_irrelevant=include)  # type: ignore[arg-type]
            gb = want.metrics(by=by, include_irrelevant=include)  # type: ignore[arg-type]
            assert isinstance(ga, MetricsGroups) and isinstance(gb, MetricsGroups)
            assert [g.key for g in ga.groups] == [g.key for g in gb.groups], by
            for x, y in zip(ga.groups, gb.groups, strict=True):
                assert_same_metrics(x, y.model_dump(exclude={"key"}), f"by {by} {x.key!r}")


def test_an_imported_history_has_the_same_metrics(
    cs: Clickstream, other_url: Callable[[str], str], tmp_path: Path
) -> None:
    base = day_start(now_ms()) - 3 * DAY_MS
    record_history(cs, base)
    cs.metrics()  # the source's stats are computed; the dump leaves them out
    cs.export_all(tmp_path / "dump")
    with Clickstream(settings=settings_of(other_url("head"))) as target:
        assert target.import_from(tmp_path / "dump").exit_code == 0
        assert_same_answers(target, cs, (False, True))
        check(target, by=["batch"])
        # A second dump with late events on imported sessions and a new session: the
        # import marks the sessions it adds events to stale, as a push does.
        push(cs, "twice", ("y", "purchase", base + HOUR_MS + 50_000))
        push(cs, "nothing", ("q", "view", None))
        register(cs, "after", base + 2 * DAY_MS + 7, "pq", query="Socks")
        cs.export_all(tmp_path / "dump2")
        assert target.import_from(tmp_path / "dump2").exit_code == 0
        assert_same_answers(target, cs, (False,))
        check(target, by=["query"])


def test_a_database_upgraded_from_0004_has_exact_metrics(
    other_url: Callable[[str], str],
) -> None:
    """Rows written at revision 0004, then ``upgrade`` to head: 0005 backfills a stale stats
    row per session, and the first metrics call computes them all."""
    url = other_url("empty")
    upgrade(url, "0004")
    t = day_start(now_ms()) - DAY_MS
    # sessions, events and batches are the same at 0004 as at head (0005 adds tables only),
    # so today's table objects write exactly the columns that revision has.
    rows: dict[Table, list[dict[str, Any]]] = {
        batches: [
            {"batch_id": 1, "state": "released", "collecting": None, "release_id": "r1",
             "created_at_ms": t, "released_at_ms": t + 5, "updated_at_ms": t + 5},
            {"batch_id": 2, "state": "collecting", "collecting": 1, "release_id": None,
             "created_at_ms": t + 5, "released_at_ms": None, "updated_at_ms": t + 5},
        ],
        sessions: [
            {"session_number": n, "session_id": f"s{n}", "batch_id": 1 + n // 3,
             "search_query": q, "search_results": [{"object_id": o} for o in shown],
             "search_meta": meta, "created_at_ms": t + n * HOUR_MS, "created_at_given": True,
             "is_irrelevant": n == 4, "registered_at_ms": t + n * HOUR_MS}
            for n, q, shown, meta in [
                (1, "Red shoes", "abcd", {"ranker": "A"}),
                (2, "red  shoes", "aab", {"ranker": "B"}),
                (3, {"q": 1}, "", None),
                (4, "hat", "a", {"ranker": "A"}),
                (5, "hat", "xyz", {"ranker": 7}),
            ]
        ],
        events: [
            {"session_number": n, "event_id": f"e{i}", "object_id": o, "event_type": kind,
             "created_at_ms": t + n * HOUR_MS + 1000 * (i + 1)}
            for i, (n, o, kind) in enumerate([
                (1, "c", "click"), (1, "a", "purchase"), (1, "q", "view"), (2, "a", "click"),
                (2, None, "click"), (3, "a", "click"), (4, "a", "purchase"), (5, "z", "click"),
            ])
        ],
    }  # fmt: skip
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            for table, values in rows.items():
                conn.execute(table.insert(), values)
    finally:
        engine.dispose()
    upgrade(url)
    with Clickstream(settings=settings_of(url)) as cs:
        assert schema_status(cs.storage.engine).current == head_revision()  # type: ignore[attr-defined]
        assert cs.storage.metrics.stale() == 5  # backfilled, none computed yet
        seen = read_all(cs)
        assert len(seen) == 5 and sum(len(s.events) for s in seen) == 8
        check(cs, seen)
        check(cs, seen, include_irrelevant=True)
        assert cs.storage.metrics.stale() == 0
        push(cs, "s2", ("b", "purchase", t + 2 * HOUR_MS + 9_000))
        check(cs)


# -- concurrency: the optimistic refresh ----------------------------------------------------


def test_a_push_inside_a_refresh_leaves_its_row_stale_for_the_next(
    cs: Clickstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh reads a session, then a push lands before it writes the stats: the row
    is written only where its version did not move, so it stays stale and the next
    refresh counts the push. (Written anyway, the purchase would never be counted.)"""
    t = now_ms() - HOUR_MS
    register(cs, "s", t, "ab")
    cs.metrics()
    push(cs, "s", ("b", "click", t + 10))
    compute = vars(sql_metrics)["session_stats"]  # as the refresh calls it
    landed: list[int] = []

    def with_a_push_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not landed:
            landed.append(push(cs, "s", ("a", "purchase", t + 20)))
        return compute(*args, **kwargs)

    monkeypatch.setattr(sql_metrics, "session_stats", with_a_push_meanwhile)
    cs.refresh_metrics()
    monkeypatch.undo()
    assert landed == [1]
    assert cs.storage.metrics.stale() == 1
    done = check(cs).summaries[0]
    assert (done.sessions_with_purchase, done.mrr, done.interactions) == (1, 1.0, 2)
    assert cs.storage.metrics.stale() == 0


@pytest.mark.parametrize(
    ("threads", "pushes"), [(4, 15), pytest.param(8, 120, marks=pytest.mark.slow)]
)
def test_pushes_from_threads_racing_refreshes_end_exact(
    database_url: str, threads: int, pushes: int
) -> None:
    """Threads push (and now and then register) through one Clickstream while another, as
    a second process would, refreshes and reads metrics in a loop."""
    t = now_ms() - 2 * HOUR_MS
    with (
        Clickstream(settings=settings_of(database_url)) as writer,
        Clickstream(settings=settings_of(database_url)) as reader,
    ):
        for i in range(6):
            register(writer, f"s{i}", t + i, "abcdef"[: i + 1], search_meta={"ranker": f"r{i % 2}"})
        failures: list[BaseException] = []
        stored: list[int] = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for n in range(pushes):
                    if n % 5 == 4:
                        register(writer, f"w{seed}-{n}", t + n, "ab")
                    sid = f"s{rng.randrange(6)}"
                    kinds = ("click", "purchase", "view", "add_to_cart")
                    done = writer.push_events(
                        sid,
                        [
                            {"event_id": f"{seed}-{n}-{k}", "object_id": rng.choice("abcdefz"),
                             "event_type": rng.choice(kinds),
                             "created_at": t + rng.randrange(10**6)}
                            for k in range(rng.randrange(1, 4))
                        ],
                    )  # fmt: skip
                    stored.append(done.stored)
            except BaseException as exc:
                failures.append(exc)

        running = [threading.Thread(target=work, args=(seed,)) for seed in range(threads)]
        for thread in running:
            thread.start()
        refreshed = 0
        while any(thread.is_alive() for thread in running):
            refreshed += reader.refresh_metrics()
            reader.metrics(by="ranker")
            time.sleep(0.002)  # the writers' threads get the GIL between two rounds
        for thread in running:
            thread.join()
        assert failures == []
        assert refreshed > 0
        seen = read_all(reader)
        assert len(seen) == 6 + threads * (pushes // 5)
        assert sum(len(s.events) for s in seen) == sum(stored) >= threads * pushes
        check(reader, seen)
        assert reader.storage.metrics.stale() == 0


def test_a_session_registered_during_a_metrics_call_is_not_half_counted(
    cs: Clickstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metrics call refreshes, then sums. A session registered between the two has a
    stats row that was never computed (its columns NULL), which the sums still count as a
    session: without results, without a query. The answer then matches no state the
    database was ever in. (Left out, or counted as computed, either would be exact.)"""
    t = now_ms() - HOUR_MS
    register(cs, "s1", t, "ab", query="hats")
    refresh = cs.refresh_metrics

    def refresh_then_register(limit: int | None = None) -> int:
        done = refresh(limit)
        register(cs, f"s{now_ms()}", t + 1, "ab", query="hats")
        return done

    monkeypatch.setattr(cs, "refresh_metrics", refresh_then_register)
    answer = summary(cs)  # answers sessions 2, sessions_with_results 1
    assert answer.sessions == answer.sessions_with_results
    assert answer.zero_result_rate == 0.0
    by_query = cs.metrics(by="query")
    assert isinstance(by_query, MetricsGroups)
    assert [g.key for g in by_query.groups] == ["hats"]  # answers ["hats", None]


# -- another ranker key ----------------------------------------------------------------------


def test_a_new_ranker_key_regroups_every_session(cs: Clickstream, database_url: str) -> None:
    t = now_ms() - 2 * HOUR_MS
    for i, meta in enumerate(
        [{"ranker": "A", "model": "m1"}, {"ranker": "A", "model": "m2"}, {"ranker": "B"},
         {"model": 3}, None]
    ):  # fmt: skip
        register(cs, f"s{i}", t + i, "abc", search_meta=meta)
        push(cs, f"s{i}", ("abc"[i % 3], "click", t + 100 * i))
    keys = check(cs, by=["ranker"]).groups["ranker"]
    assert [g.key for g in keys.groups] == ["A", "B", None]
    with Clickstream(settings=settings_of(database_url, metrics_ranker_key="model")) as other:
        by_model = check(other, ranker_key="model").groups["ranker"]
        assert [(g.key, g.sessions) for g in by_model.groups] == [
            ("3", 1), ("m1", 1), ("m2", 1), (None, 2),
        ]  # fmt: skip
        # Back under the first key (a process still configured so): regrouped again.
        check(cs, by=["ranker"])


def test_a_key_change_while_an_old_refresh_runs_is_not_lost(
    cs: Clickstream, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with the old key is computing stats when one with a new key starts and
    recomputes every row. The old process's write must not then mark its rows computed:
    the new key's process would group those sessions by the old key for good."""
    t = now_ms() - HOUR_MS
    register(cs, "s", t, "ab", search_meta={"ranker": "A", "model": "m2"})
    with Clickstream(settings=settings_of(database_url, metrics_ranker_key="model")) as other:
        compute = vars(sql_metrics)["session_stats"]  # as the refresh calls it
        started: list[int] = []

        def with_a_new_key_meanwhile(*args: Any, **kwargs: Any) -> Any:
            if not started:
                started.append(0)  # before: the other's refresh computes through here too
                started[0] = other.refresh_metrics()
            return compute(*args, **kwargs)

        monkeypatch.setattr(sql_metrics, "session_stats", with_a_new_key_meanwhile)
        cs.refresh_metrics()
        monkeypatch.undo()
        assert started == [1]
        check(other, ranker_key="model", by=["ranker"])
