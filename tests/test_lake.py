"""export --lake: the Parquet lake read back with pyarrow equals the database, row for row.

Every test runs on both dialects with real databases. History is loaded through
``Sessions.bulk_register`` (no time window), spread over several UTC dates, with events
dated apart from their sessions so the two partitionings differ.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select

from searchtrail import Clickstream, Settings
from searchtrail.cli import main
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.schema import batches, sessions
from searchtrail.transfer import lake as lake_module
from searchtrail.transfer.lake import PAUSE_ENV, STATE_FILE
from tests.support import clean_env, postgres_only
from tests.test_dump_import import table_rows

DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
JSON_SESSION = ("search_query", "search_results", "search_meta", "payload_filter", "sort_by")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """History is welcome: no time window in the past."""
    return Settings(database_url=database_url, time_max_delta_minus_sec=10**11)


def load_history(cs: Clickstream, n: int, *, start: int = 0, days: int = 4) -> None:
    """``n`` sessions spread over ``days`` UTC dates, each with two events a day later
    (some odd JSON too), through the bulk path."""
    rows: list[dict[str, Any]] = []
    evs: list[dict[str, Any]] = []
    for i in range(start, start + n):
        at = T0 + (i % days) * DAY_MS + i
        sid = f"h{i}"
        rows.append(
            {
                "session_id": sid,
                "search_query": [{"text": "boots", "n": 42}, 1.0, "red shoes", 2**70][i % 4],
                "search_results": [{"object_id": f"o{j}", "rank": j / 2} for j in range(3)],
                "search_meta": {"latency_ms": 12.5} if i % 2 else None,
                "payload_filter": None,
                "sort_by": None,
                "user_id": f"u{i % 7}" if i % 3 else None,
                "created_at_ms": at,
                "created_at_given": True,
                "is_irrelevant": i % 5 == 0,
            }
        )
        for j in range(2):
            evs.append(
                {
                    "session_id": sid,
                    "event_id": f"e{j}",
                    "object_id": f"o{j}",
                    "event_type": "click",
                    "created_at_ms": at + DAY_MS + j,
                    "meta": {"k": j} if j else None,
                }
            )
    cs.storage.sessions.bulk_register(rows, evs, T0 + 10 * DAY_MS)


def lake_rows(lake: Path, name: str) -> list[dict[str, Any]]:
    """A table of the lake as pyarrow's hive-partitioned dataset reads it, JSON decoded,
    each row's ``date`` checked against its created_at_ms and then dropped."""
    table = ds.dataset(lake / name, format="parquet", partitioning="hive").to_table()
    rows = table.to_pylist()
    for row in rows:
        day = datetime.fromtimestamp(row["created_at_ms"] / 1000, UTC).date().isoformat()
        assert str(row.pop("date")) == day, row
        for column in (*JSON_SESSION, "extra", "meta"):
            if row.get(column) is not None:
                row[column] = json.loads(row[column])
    key = "session_number" if name == "sessions" else "id"
    return sorted(rows, key=lambda r: r[key])


def database_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """sessions, events (with their session_id, as the lake carries it) and batches."""
    rows = table_rows(url)
    ids = {s["session_number"]: s["session_id"] for s in rows["sessions"]}
    for event in rows["events"]:
        event["session_id"] = ids[event["session_number"]]
    return {"sessions": rows["sessions"], "events": rows["events"], "batches": rows["batches"]}


def assert_lake_is_database(lake: Path, url: str) -> None:
    expected = database_rows(url)
    assert lake_rows(lake, "sessions") == expected["sessions"]
    assert lake_rows(lake, "events") == expected["events"]
    assert pq.read_table(lake / "batches" / "part.parquet").to_pylist() == expected["batches"]


def files(lake: Path) -> dict[str, float]:
    return {
        str(p.relative_to(lake)): p.stat().st_mtime_ns
        for p in lake.rglob("*")
        if p.is_file() and not p.name.startswith((".", "_"))
    }


def test_export_reads_back_equal_and_a_rerun_writes_nothing(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    load_history(cs, 40)
    cs.mark_irrelevant("h1")
    lake = tmp_path / "lake"
    first = cs.export_lake(lake)
    assert (first.sessions, first.events, first.files) == (40, 80, 4 + 4 + 1)
    assert first.watermark == {"event_id": 80, "session_number": 40}
    assert_lake_is_database(lake, database_url)
    # Sessions by their date, events by theirs: a day apart, so 5 event dates.
    assert sorted(p.name for p in (lake / "sessions").iterdir()) == [
        "date=2023-11-14", "date=2023-11-15", "date=2023-11-16", "date=2023-11-17",
    ]  # fmt: skip
    assert [p.name for p in (lake / "events" / "date=2023-11-18").iterdir()] == [
        "part-000000000001-000000000080.parquet"
    ]
    state = json.loads((lake / STATE_FILE).read_text())
    assert state["pending"] is None and state["rows"] == {"sessions": 40, "events": 80}

    before = files(lake)
    again = cs.export_lake(lake)
    assert (again.files, again.sessions, again.events) == (0, 0, 0)
    assert again.message.startswith("nothing new")
    assert files(lake) == before


def test_new_rows_then_a_rerun_adds_only_them(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    load_history(cs, 12)
    cs.export_lake(lake)
    before = files(lake)
    load_history(cs, 6, start=12)
    cs.push_events("h0", [{"event_id": "late", "object_id": "o1", "created_at": T0 + 9 * DAY_MS}])
    second = cs.export_lake(lake)
    assert (second.sessions, second.events) == (6, 13)
    assert second.watermark == {"event_id": 37, "session_number": 18}
    new = {Path(f).name for f in set(files(lake)) - set(before)}
    assert new == {
        "part-000000000013-000000000018.parquet", "part-000000000025-000000000037.parquet",
    }  # fmt: skip
    assert {f: t for f, t in files(lake).items() if f in before} == before
    assert_lake_is_database(lake, database_url)


def test_batches_are_rewritten_when_their_state_changes(cs: Clickstream, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    load_history(cs, 3)
    cs.export_lake(lake)
    cs.release_batch("r1")
    rewritten = cs.export_lake(lake)
    assert (rewritten.files, rewritten.batches, rewritten.sessions) == (1, 1, 0)
    states = pq.read_table(lake / "batches" / "part.parquet").column("state").to_pylist()
    assert states == ["released"]


def test_ids_out_of_date_order_give_one_file_per_date(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    """Imported history may number sessions in any order of time: session i is on date
    i % 10 here, and each date still gets one file of the run, every row in it once."""
    load_history(cs, 50, days=10)
    lake = tmp_path / "lake"
    summary = cs.export_lake(lake)
    assert (summary.sessions, summary.files) == (50, 10 + 10 + 1)
    for name in ("sessions", "events"):
        dates = sorted((lake / name).iterdir())
        assert len(dates) == 10
        for directory in dates:
            assert [p.name for p in directory.iterdir()] == [
                "part-000000000001-" + ("000000000050" if name == "sessions" else "000000000100")
                + ".parquet"
            ]  # fmt: skip
    assert_lake_is_database(lake, database_url)


def test_a_temporary_file_of_a_run_that_died_unrecorded_is_removed(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    load_history(cs, 4)
    stray = lake / "sessions" / "date=2023-11-14" / "_part-000000000001.parquet.tmp"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half a file")
    cs.export_lake(lake)
    assert not stray.exists()
    assert_lake_is_database(lake, database_url)


def test_an_empty_database_gives_an_empty_lake(cs: Clickstream, tmp_path: Path) -> None:
    summary = cs.export_lake(tmp_path / "lake")
    assert (summary.sessions, summary.events) == (0, 0)
    assert summary.watermark == {"event_id": 0, "session_number": 0}


@postgres_only
def test_the_horizon_waits_for_an_insert_in_flight(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    """A session holds number 2 uncommitted while number 3 commits: a horizon read then
    as the largest number would pass 2 for ever. The export waits for it instead, without
    holding up the writes that come meanwhile."""
    cs.create_session(session_id="first", search_query="q")
    engine = create_engine(normalize_database_url(database_url))
    lake = tmp_path / "lake"
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            batch_id = conn.execute(select(batches.c.batch_id)).scalar_one()
            conn.execute(
                insert(sessions).values(
                    session_id="in-flight", batch_id=batch_id, search_results=[],
                    created_at_ms=T0, created_at_given=True, is_irrelevant=False,
                    registered_at_ms=T0,
                )
            )  # fmt: skip
            cs.create_session(session_id="later", search_query="q")
            done: list[Any] = []
            worker = threading.Thread(target=lambda: done.append(cs.export_lake(lake)))
            worker.start()
            time.sleep(0.5)
            assert worker.is_alive() and not done  # waiting for the insert in flight
            # ... in short tries: a write meanwhile is not queued behind the wait.
            started = time.monotonic()
            cs.create_session(session_id="during", search_query="q")
            assert time.monotonic() - started < 2
            tx.commit()
        worker.join(timeout=30)
    finally:
        engine.dispose()
    assert done[0].sessions == 4
    assert [r["session_id"] for r in lake_rows(lake, "sessions")] == [
        "first", "in-flight", "later", "during",
    ]  # fmt: skip


def _state(lake: Path) -> dict[str, Any]:
    path = lake / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.slow
def test_a_crash_mid_export_leaves_no_half_file_and_the_rerun_completes(
    cs: Clickstream, database_url: str, tmp_path: Path
) -> None:
    load_history(cs, 2000, days=6)
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "searchtrail.cli", "export", "--lake", str(lake)]
    env = clean_env(SEARCHTRAIL_DATABASE_URL=database_url, **{PAUSE_ENV: "0.3"})
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not files(lake) and time.monotonic() < deadline:
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    visible = [lake / f for f in files(lake)]
    assert visible, "the export never renamed a file"
    state = _state(lake)
    assert state["pending"] is not None  # killed between the renames of one step
    assert len(visible) < len(state["pending"]["files"])
    for path in visible:  # every visible file reads whole
        assert pq.read_table(path).num_rows > 0
    # Readers see the renamed files only, though the step's temporary ones are there.
    assert list(lake.rglob("_part-*.parquet.tmp"))
    for name in ("sessions", "events"):
        seen = ds.dataset(lake / name, format="parquet", partitioning="hive").files
        assert sorted(seen) == sorted(str(p) for p in visible if name in p.parts)

    rerun = subprocess.run(command, env=clean_env(SEARCHTRAIL_DATABASE_URL=database_url),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["completed_pending"] is True
    assert summary["watermark"] == {"event_id": 4000, "session_number": 2000}
    assert_lake_is_database(lake, database_url)
    assert not list(lake.rglob("*.tmp"))
    assert _state(lake)["pending"] is None
    assert cs.export_lake(lake).files == 0  # and a third run has nothing to do


def test_the_cli_takes_lake_alone(database_url: str, tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    for extra in (["--out", str(tmp_path / "x")], ["--all"], ["--batch", "1"]):
        result = CliRunner().invoke(
            main, ["export", "--lake", lake, "--database-url", database_url, *extra]
        )
        assert result.exit_code == 2, result.output
    result = CliRunner().invoke(main, ["export", "--lake", lake, "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["watermark"] == {"event_id": 0, "session_number": 0}


class Crash(BaseException):
    """Stands for the process dying: nothing in the run catches it."""


def crash_after_first_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: object) -> None:
        raise Crash

    monkeypatch.setattr(lake_module._Run, "after_rename", crash)


@pytest.mark.parametrize("lost", [False, True])
def test_a_pending_step_is_completed_under_the_same_names(
    cs: Clickstream,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lost: bool,
) -> None:
    """Stopped between two renames of a step: the rerun renames the rest or, when a
    temporary file is gone (``lost``), writes the step's ranges again under its names."""
    load_history(cs, 30)
    lake = tmp_path / "lake"
    with monkeypatch.context() as patch:
        crash_after_first_rename(patch)
        with pytest.raises(Crash):
            cs.export_lake(lake)
    pending = _state(lake)["pending"]
    assert len(files(lake)) == 1 and len(pending["files"]) == 8
    if lost:
        (lake / pending["files"][-1][0]).unlink()
    load_history(cs, 3, start=30)  # the next step's, after the pending one
    rerun = cs.export_lake(lake)
    assert rerun.completed_pending
    assert (rerun.sessions, rerun.events) == (33, 66)
    assert {Path(f).name for f in files(lake) if "sessions" in f} == {
        "part-000000000001-000000000030.parquet",
        "part-000000000031-000000000033.parquet",
    }
    assert_lake_is_database(lake, database_url)
    assert _state(lake)["rows"] == {"sessions": 33, "events": 66}
