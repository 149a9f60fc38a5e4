"""export --all and import: a dump reproduces the database exactly, and imports are safe.

Every test runs on both dialects (the source and the target database are of the same
dialect), with real databases and a handful of rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from searchtrail import Clickstream, Settings
from searchtrail.cli import main
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.partitions import month_base, month_of
from searchtrail.storage.sql.schema import metadata
from searchtrail.timestamps import now_ms
from searchtrail.transfer.importer import EXIT_REJECTED

DAY_MS = 86_400_000


def table_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table, every column, in primary-key order."""
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            return {
                t.name: [
                    dict(r._mapping)
                    for r in conn.execute(select(t).order_by(*t.primary_key.columns))
                ]
                for t in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def populate(cs: Clickstream) -> None:
    """Two batches (one released, one collecting), odd JSON, events, a queue entry, a key."""
    t0 = now_ms() - 3_600_000
    for i in range(6):
        cs.create_session(
            session_id=f"s{i}",
            search_query=[{"text": "boots", "size": 42}, 1.0, "red shoes", 2**70][i % 4],
            search_results=[
                {"object_id": f"o{j}", "rank": j / 2, "meta": {"price": j, "tags": ["a"]}}
                for j in range(4)
            ],
            search_meta={"latency_ms": 12.5} if i % 2 else None,
            user_id=f"u{i}" if i % 3 else None,
            created_at=t0 + i * 1000,
        )
        cs.push_events(
            f"s{i}",
            [
                {"event_id": f"e{j}", "object_id": f"o{j}", "created_at": t0 + j, "meta": {"k": j}}
                for j in range(3)
            ],
        )
    cs.mark_irrelevant("s1")
    cs.release_batch("release-1")
    cs.create_session(session_id="open-1", search_query="socks")
    cs.push_events("open-1", [{"object_id": "o1", "event_type": "purchase"}])
    cs.use_for_improvement("s2")
    cs.keys.create("trainer", ["read", "admin"])


@pytest.fixture
def target(second_url: str) -> Iterator[Clickstream]:
    with Clickstream(settings=Settings(database_url=second_url)) as clickstream:
        yield clickstream


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_dump_then_import_reproduces_every_row(
    cs: Clickstream,
    target: Clickstream,
    database_url: str,
    second_url: str,
    tmp_path: Path,
    fmt: str,
) -> None:
    populate(cs)
    dumped = cs.export_all(tmp_path / "dump", format=fmt)  # type: ignore[arg-type]
    assert dumped.rows == {
        "batches": 2, "sessions": 7, "events": 19, "improvement_queue": 1, "api_keys": 1,
    }  # fmt: skip
    manifest = json.loads((tmp_path / "dump" / "manifest.json").read_text())
    assert manifest["format"] == "searchtrail-dump" and manifest["tables"]["events"]["rows"] == 19
    assert not list((tmp_path / "dump").glob("*.partial"))

    summary = target.import_from(tmp_path / "dump")
    assert summary.exit_code == 0, summary
    assert summary.new == 30 and summary.already_there == 0
    assert table_rows(second_url) == table_rows(database_url)
    # The identity sequences moved past the imported ids (PostgreSQL: they start at this
    # month's base already, storage/sql/partitions.py), and one batch collects.
    later = target.create_session(session_id="after-import", search_query="hat")
    first = 8 if target.storage.dialect == "sqlite" else month_base(month_of(now_ms()))
    assert later.session_number == first and later.batch_id == 2
    assert target.push_events("after-import", [{"event_id": "x"}]).stored == 1
    assert [b.state for b in target.list_batches()] == ["released", "collecting"]


def test_a_second_run_stores_nothing_new(
    cs: Clickstream, target: Clickstream, second_url: str, tmp_path: Path
) -> None:
    populate(cs)
    cs.export_all(tmp_path / "dump")
    first = target.import_from(tmp_path / "dump")
    before = table_rows(second_url)
    again = target.import_from(tmp_path / "dump")
    assert again.exit_code == 0
    assert again.new == 0 and again.already_there == first.new == 30
    assert again.message == "nothing new: every row was already there"
    assert table_rows(second_url) == before


def test_a_contradicting_session_is_a_conflict_and_not_overwritten(
    cs: Clickstream, target: Clickstream, tmp_path: Path
) -> None:
    populate(cs)
    cs.export_all(tmp_path / "dump")
    target.import_from(tmp_path / "dump")
    path = tmp_path / "dump" / "sessions.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[3]["session_id"] == "s3"
    rows[3]["search_query"] = "something else"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    summary = target.import_from(tmp_path / "dump", rejects=tmp_path / "rejects.jsonl")
    assert summary.exit_code == EXIT_REJECTED
    assert summary.tables["sessions"].conflicts == 1
    assert summary.tables["sessions"].already_there == 6
    assert target.get_session("s3").search_query == 2**70
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejects[0]["conflict"] is True
    assert rejects[0]["reason"] == (
        "session_id: 's3' is stored with a different search_query; the stored session is kept"
    )
    # Its events are not matched against the stored s3's: they are refused, naming why.
    assert summary.tables["events"].rejected == 3
    assert {r["raw"]["session_id"] for r in rejects[1:]} == {"s3"}
    assert rejects[1]["reason"] == "session_id: session 's3' was not imported"


def test_a_bad_row_goes_to_the_rejects_file_and_the_rest_is_imported(
    cs: Clickstream, target: Clickstream, tmp_path: Path
) -> None:
    populate(cs)
    cs.export_all(tmp_path / "dump")
    path = tmp_path / "dump" / "sessions.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["search_results"][1]["object_id"] = "x" * 500
    lines[2] = json.dumps(bad)
    lines.insert(4, "{not json")
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        main,
        [
            "import", str(tmp_path / "dump"),
            "--database-url", target.settings.database_url,
            "--rejects", str(tmp_path / "rejects.jsonl"),
        ],
    )  # fmt: skip
    assert result.exit_code == EXIT_REJECTED, result.output
    summary = json.loads(result.stdout)
    assert summary["tables"]["sessions"]["rejected"] == 2
    assert summary["tables"]["sessions"]["new"] == 6
    assert summary["tables"]["events"]["rejected"] == 3  # the bad session's events
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    first, second = sorted(rejects[:2], key=lambda r: int(r["line"]))
    assert (first["source"], first["line"]) == ("sessions.jsonl", 3)
    assert first["reason"].startswith("search_results.1.object_id: ")
    assert first["raw"]["session_id"] == "s2"
    assert (second["line"], second["raw"]) == (5, "{not json")
    assert target.get_session("s4").session_number == 5


def test_months_old_history_imports(cs: Clickstream, target: Clickstream, tmp_path: Path) -> None:
    populate(cs)
    cs.export_all(tmp_path / "dump")
    old = now_ms() - 180 * DAY_MS
    for name in ("sessions", "events"):
        path = tmp_path / "dump" / f"{name}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for r in rows:
            r["created_at_ms"] = old
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = target.import_from(tmp_path / "dump")
    assert summary.exit_code == 0, summary.first_rejects
    assert target.get_session("s0").created_at_ms == old
    assert {e.created_at_ms for e in target.get_session("s0").events} == {old}


def test_a_collecting_batch_joins_the_targets_collecting_batch(
    cs: Clickstream, target: Clickstream, tmp_path: Path
) -> None:
    populate(cs)
    cs.export_all(tmp_path / "dump")
    target.create_session(session_id="there-first", search_query="q")
    target.create_session(session_id="and-again", search_query="q")
    summary = target.import_from(tmp_path / "dump")
    # Batch 1 (released) is free in the target; batch 2 collected in the source, and the
    # target's batch 1 collects: the rule of one collecting batch keeps it, so batch 1 of
    # the dump is in conflict and the collecting one merges.
    assert summary.tables["batches"].conflicts == 1
    assert summary.tables["batches"].merged == 1
    collecting = [b for b in target.list_batches() if b.state == "collecting"]
    assert len(collecting) == 1
    assert target.get_session("open-1").batch_id == collecting[0].batch_id


def test_the_fast_path_stores_what_the_records_path_stores(
    cs: Clickstream,
    second_url: str,
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """A JSONL dump's chunks are validated from their lines at once; rows that only the
    API's own checks accept (ids not ASCII, times in seconds, results' extra) must end up
    stored exactly as the records' path (Parquet's, any other source's) stores them."""
    from searchtrail.transfer.dump import DumpSource

    populate(cs)
    cs.export_all(tmp_path / "dump")

    def edit(name: str, change: Any) -> None:
        path = tmp_path / "dump" / f"{name}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        change(rows)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def sessions(rows: list[dict[str, Any]]) -> None:
        rows[0]["user_id"] = "usér-ü"
        rows[1]["created_at_ms"] //= 1000  # epoch seconds, as a client may send
        rows[2]["search_results"][0]["extra"] = {"item_info": {"price": 10.5}}
        rows[3]["search_meta"] = {"nested": [1, {"x": "y"}], "t": "é\\u0000"}
        rows[4]["search_query"] = "größe 42"

    def events(rows: list[dict[str, Any]]) -> None:
        rows[0]["object_id"] = "объект-1"
        rows[1]["created_at_ms"] = "2024-05-01T12:00:00Z"
        rows[2]["meta"] = {"a": [1, 2.5, None, True]}
        rows[3]["extra"] = {"item_info": {"k": "v"}}

    edit("sessions", sessions)
    edit("events", events)
    fast = Clickstream(settings=Settings(database_url=second_url))
    with fast:
        first = fast.import_from(tmp_path / "dump")
    if dialect == "sqlite":
        third_url = f"sqlite:///{tmp_path / 'third.db'}"
    else:
        third_url = request.getfixturevalue("pg_server").new_database()
    monkeypatch.setattr(DumpSource, "jsonl_file", lambda self, table: None)
    with Clickstream(settings=Settings(database_url=third_url)) as slow:
        second = slow.import_from(tmp_path / "dump")
    assert first.exit_code == second.exit_code == 0, (first.first_rejects, second.first_rejects)
    assert first.tables == second.tables
    assert table_rows(second_url) == table_rows(third_url)


def test_a_chunk_with_a_bad_row_is_validated_row_by_row(
    cs: Clickstream, target: Clickstream, tmp_path: Path
) -> None:
    """One bad event refuses its chunk's fast validation; the chunk's other rows are
    imported all the same, and the bad one is named."""
    populate(cs)
    cs.export_all(tmp_path / "dump")
    path = tmp_path / "dump" / "events.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[5]["event_type"] = "t" * 65
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = target.import_from(tmp_path / "dump")
    assert summary.tables["events"].rejected == 1
    assert summary.tables["events"].new == len(rows) - 1
    assert summary.first_rejects[0]["line"] == 6
    assert summary.first_rejects[0]["reason"].startswith("event_type: an event type must be")
