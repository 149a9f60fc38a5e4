"""Training data: what a released batch turns into, checked by hand on a small fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from searchtrail import Clickstream
from searchtrail.cli import main
from searchtrail.errors import BadRequest, BatchNotFound, InvalidInput
from searchtrail.export import judge
from searchtrail.timestamps import now_ms
from tests.bulk import bulk_sessions
from tests.support import sqlite_only

WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


def _session(cs: Clickstream, sid: str, shown: str, at: int, query: Any = "red shoes") -> None:
    cs.create_session(
        session_id=sid,
        search_query=query,
        user_id=f"user-{sid}",
        created_at=at,
        search_results=[{"object_id": o} for o in shown],
    )


def _events(cs: Clickstream, sid: str, *pairs: tuple[str, str]) -> None:
    cs.push_events(sid, [{"object_id": o, "event_type": t} for o, t in pairs])


@pytest.fixture
def released(cs: Clickstream) -> int:
    """Six sessions, one of each kind the export tells apart; the batch released."""
    t0 = now_ms() - 600_000
    _session(cs, "funnel", "abcde", t0)
    _events(cs, "funnel", ("c", "click"), ("c", "add_to_cart"), ("e", "purchase"))
    _session(cs, "top-click", "abc", t0 + 1000)
    _events(cs, "top-click", ("a", "click"))
    _session(cs, "no-events", "abc", t0 + 2000)
    _session(cs, "unlisted", "abc", t0 + 3000)
    _events(cs, "unlisted", ("b", "hover"), ("zzz", "click"))
    _session(cs, "off-topic", "xyz", t0 + 4000)
    _events(cs, "off-topic", ("y", "click"))
    cs.mark_irrelevant("off-topic")
    _session(cs, "structured", "pq", t0 + 5000, query={"text": "boots", "size": 42})
    _events(cs, "structured", ("q", "purchase"), ("q", "click"))
    return cs.release_batch("r1").batch_id


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_positives_weights_and_skip_above_negatives_by_hand(
    cs: Clickstream, released: int, tmp_path: Path
) -> None:
    summary = cs.export(released, tmp_path / "train.jsonl")
    records = {r["session_id"]: r for r in _jsonl(tmp_path / "train.jsonl")}

    funnel = records["funnel"]
    assert funnel["query"] == "red shoes"
    assert funnel["user_id"] == "user-funnel"
    assert funnel["results"] == list("abcde")
    assert funnel["positives"] == ["c", "e"]
    assert funnel["positive_weights"] == [2.0, 3.0]  # the strongest event, not a sum
    assert funnel["negatives"] == ["a", "b", "d"]  # shown above e and not acted on

    assert records["top-click"]["positives"] == ["a"]
    assert records["top-click"]["negatives"] == []  # nothing shown above the click

    structured = records["structured"]
    assert json.loads(structured["query"]) == {"text": "boots", "size": 42}
    assert structured["positives"] == ["q"]
    assert structured["positive_weights"] == [3.0]
    assert structured["negatives"] == ["p"]

    assert set(records) == {"funnel", "top-click", "structured"}
    assert summary.sessions == 6
    assert summary.written == {"train": 3}
    assert summary.left_out == {
        "irrelevant": 1,
        "no_events": 1,
        "no_query": 0,
        "no_positives": 1,  # a hover and a click on something never shown
    }


def test_weights_are_configurable_and_zero_removes_a_type(
    cs: Clickstream, released: int, tmp_path: Path
) -> None:
    cs.export(released, tmp_path / "w.jsonl", weights={"click": 5.0, "purchase": 0.0})
    records = {r["session_id"]: r for r in _jsonl(tmp_path / "w.jsonl")}
    assert records["funnel"]["positives"] == ["c"]
    assert records["funnel"]["positive_weights"] == [5.0]
    assert records["funnel"]["negatives"] == ["a", "b"]
    assert records["structured"]["positive_weights"] == [5.0]


def test_the_irrelevant_split_and_a_time_split_never_share_a_session(
    cs: Clickstream, released: int, tmp_path: Path
) -> None:
    at = cs.get_session("structured").created_at_ms
    summary = cs.export(released, tmp_path / "out", include_irrelevant=True, split_at=at)
    train = [r["session_id"] for r in _jsonl(tmp_path / "out" / "train.jsonl")]
    test = [r["session_id"] for r in _jsonl(tmp_path / "out" / "test.jsonl")]
    irrelevant = _jsonl(tmp_path / "out" / "irrelevant.jsonl")
    assert train == ["funnel", "top-click"]
    assert test == ["structured"]
    assert [r["session_id"] for r in irrelevant] == ["off-topic"]
    assert irrelevant[0]["negatives"] == list("xyz")
    assert summary.written == {"train": 2, "test": 1, "irrelevant": 1}

    fraction = cs.export(released, tmp_path / "frac", test_fraction=0.3)
    train = [r["session_id"] for r in _jsonl(tmp_path / "frac" / "train.jsonl")]
    test = [r["session_id"] for r in _jsonl(tmp_path / "frac" / "test.jsonl")]
    assert not set(train) & set(test)
    assert set(train) | set(test) == {"funnel", "top-click", "structured"}
    assert test and train
    assert fraction.test_from_ms is not None


def test_parquet_holds_the_same_records_as_jsonl(
    cs: Clickstream, released: int, tmp_path: Path
) -> None:
    cs.export(released, tmp_path / "a.jsonl")
    cs.export(released, tmp_path / "a.parquet", format="parquet")
    assert pq.read_table(tmp_path / "a.parquet").to_pylist() == _jsonl(tmp_path / "a.jsonl")


def test_triplets_pair_every_positive_with_every_negative(
    cs: Clickstream, released: int, tmp_path: Path
) -> None:
    summary = cs.export(released, tmp_path / "t.parquet", format="parquet", layout="triplets")
    rows = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert pq.read_schema(tmp_path / "t.parquet").names == ["anchor", "positive", "negative"]
    funnel = [(r["positive"], r["negative"]) for r in rows if r["anchor"] == "red shoes"]
    assert sorted(funnel) == sorted((p, n) for p in "ce" for n in "abd")
    assert summary.left_out["no_negatives"] == 1  # top-click: nothing above its positive


@sqlite_only  # the written files loaded by `datasets`; the export runs on both above
def test_the_files_load_with_hugging_face_datasets(
    cs: Clickstream, released: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    cs.export(released, tmp_path / "s.jsonl")
    cs.export(released, tmp_path / "t.parquet", format="parquet", layout="triplets")
    code = f"""
import json
from datasets import load_dataset
s = load_dataset("json", data_files={str(tmp_path / "s.jsonl")!r}, split="train")
t = load_dataset("parquet", data_files={str(tmp_path / "t.parquet")!r}, split="train")
print(json.dumps([s.column_names, s.num_rows, t.column_names, t.num_rows]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    columns, rows, triplet_columns, triplet_rows = json.loads(out.stdout.splitlines()[-1])
    assert rows == 3
    assert "query" in columns and "positives" in columns and "negatives" in columns
    assert triplet_columns == ["anchor", "positive", "negative"]
    assert triplet_rows == 2 * 3 + 1  # funnel: 2x3 pairs; structured: 1x1


def test_a_collecting_or_unknown_batch_and_bad_options_are_refused(
    cs: Clickstream, tmp_path: Path
) -> None:
    _session(cs, "s1", "ab", now_ms())
    collecting = cs.get_session("s1").batch_id
    with pytest.raises(BadRequest, match="collecting; release it first"):
        cs.export(collecting, tmp_path / "x.jsonl")
    with pytest.raises(BatchNotFound):
        cs.export(999, tmp_path / "x.jsonl")
    cs.release_batch("r")
    with pytest.raises(InvalidInput, match="format"):
        cs.export(collecting, tmp_path / "x.csv", format="csv")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="test_fraction"):
        cs.export(collecting, tmp_path / "x", test_fraction=1.5)
    with pytest.raises(BadRequest, match="not both"):
        cs.export(collecting, tmp_path / "x", test_fraction=0.5, split_at=now_ms())
    assert list(tmp_path.iterdir()) == [tmp_path / "searchtrail.db"] or all(
        p.suffix in (".db", ".db-wal", ".db-shm") for p in tmp_path.iterdir()
    )


def test_judge_never_makes_a_result_both_positive_and_negative() -> None:
    j = judge(["a", "b", "a", "c"], [("c", "click"), ("a", "view"), (None, "click")], WEIGHTS)
    assert j.results == ["a", "b", "c"]
    assert j.positives == ["c"]
    assert j.negatives == ["a", "b"]


def test_the_cli_writes_the_file_and_prints_the_summary(
    cs: Clickstream, released: int, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "cli.jsonl"
    args = ["export", "--batch", str(released), "--out", str(out), "--database-url", database_url]
    result = CliRunner().invoke(main, [*args, "--weight", "click=4"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["written"] == {"train": 3}
    assert {r["session_id"]: r["positive_weights"] for r in _jsonl(out)}["top-click"] == [4.0]

    bad = CliRunner().invoke(main, [*args, "--weight", "click"])
    assert bad.exit_code == 2
    assert "TYPE=WEIGHT" in bad.output
    unknown = CliRunner().invoke(main, [*args[:1], "--batch", "77", *args[3:]])
    assert unknown.exit_code == 1
    assert "77" in unknown.output


@pytest.mark.slow  # memory measured over 100,000 sessions
def test_exporting_100000_sessions_keeps_memory_flat(cs: Clickstream, tmp_path: Path) -> None:
    """Peak memory of an export of 100,000 sessions against one of 10,000 (recorded in docs).

    Both run as fresh processes; a streaming export holds one page and one row group, so
    ten times the sessions must not mean ten times the memory.
    """
    bulk_sessions(cs, 100_000, prefix="big")
    big = cs.release_batch("big").batch_id
    bulk_sessions(cs, 10_000, prefix="small")
    small = cs.release_batch("small").batch_id
    url = cs.settings.database_url

    def peak_kb(batch: int) -> int:
        rss = tmp_path / f"rss-{batch}"
        out = tmp_path / f"b{batch}.parquet"
        cmd = [sys.executable, "-m", "tests.peak_rss", str(rss), "export", "--batch", str(batch)]
        cmd += ["--out", str(out), "--format", "parquet", "--database-url", url, "--no-progress"]
        subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).parent.parent)
        return int(rss.read_text())

    small_kb, big_kb = peak_kb(small), peak_kb(big)
    print(f"export peak RSS: 10,000 sessions {small_kb} kB; 100,000 sessions {big_kb} kB")
    assert big_kb < small_kb + 20_000, (small_kb, big_kb)
