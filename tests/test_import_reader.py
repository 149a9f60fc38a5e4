"""The import's reader of a dump's JSONL lines: a child process answers exactly the
chunks the in-process reader answers, and a failure of the child fails the import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchtrail import Clickstream
from searchtrail.limits import DEFAULT_LIMITS
from searchtrail.transfer._pipeline import validated_chunks
from tests.test_dump_import import populate


def test_the_child_process_reads_what_the_thread_reads(cs: Clickstream, tmp_path: Path) -> None:
    """Valid chunks, a chunk refused (one bad row), line numbers past a blank line."""
    populate(cs)
    cs.export_all(tmp_path / "dump")
    path = tmp_path / "dump" / "events.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[7]["event_type"] = "t" * 65
    lines = [json.dumps(r) + "\n" for r in rows]
    path.write_text("".join(lines[:3]) + "\n" + "".join(lines[3:]))
    found = {}
    for table, file in (("events", path), ("sessions", tmp_path / "dump" / "sessions.jsonl")):
        thread = list(validated_chunks(file, table, 4, DEFAULT_LIMITS, process=False))
        child = list(validated_chunks(file, table, 4, DEFAULT_LIMITS, process=True))
        assert child == thread
        found[table] = thread
    events = found["events"]
    assert [valid is None for _, valid in events] == [False, True, False, False, False]
    assert [line for line, _ in events[0][0]] == [1, 2, 3, 5]
    assert all(valid is not None for _, valid in found["sessions"])


def test_a_failed_child_fails_the_import(tmp_path: Path) -> None:
    missing = tmp_path / "events.jsonl"
    with pytest.raises(RuntimeError, match=r"reader of events\.jsonl failed: FileNotFoundError"):
        list(validated_chunks(missing, "events", 4, DEFAULT_LIMITS, process=True))
