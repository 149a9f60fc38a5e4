"""The `searchtrail` command's non-server subcommands, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from searchtrail import Clickstream
from tests.support import clean_env, free_port, sqlite_only


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=cwd,
        timeout=120,
    )


def test_insert_replays_history_idempotently(database_url: str) -> None:
    lines = [
        {"session_id": "old", "search_query": "q", "created_at": "2020-01-01T00:00:00Z",
         "events": [{"event_id": "e1", "created_at": 1_577_836_900}, {"event_id": "e2"}]},
        {"session_id": "new", "search_results": [{"object_id": "a"}]},
    ]  # fmt: skip
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    first = run("insert", "-", "--database-url", database_url, "--any-age", stdin=text)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"sessions": 2, "events_stored": 2, "events_duplicate": 0}
    again = run("insert", "-", "--database-url", database_url, "--any-age", stdin=text)
    assert json.loads(again.stdout) == {"sessions": 2, "events_stored": 0, "events_duplicate": 2}
    with Clickstream(database_url) as cs:
        assert cs.get_session("old").created_at == 1_577_836_800
        assert [e.event_id for e in cs.get_session("old").events] == ["e1", "e2"]


@sqlite_only  # reading and judging lines; storing them runs on both in the replay test above
def test_insert_names_the_bad_line_and_keeps_the_window(database_url: str) -> None:
    text = '{"session_id": "a"}\n{"session_id": "b", "created_at": "2020-01-01T00:00:00Z"}\n'
    proc = run("insert", "-", "--database-url", database_url, stdin=text)
    assert proc.returncode == 1
    assert "line 2: Invalid utc timestamp" in proc.stderr
    bad = run("insert", "-", "--database-url", database_url, stdin='{"session_id": 5}\n')
    assert (
        bad.returncode == 1 and "line 1: session_id: Input should be a valid string" in bad.stderr
    )


# A process each: the fast set keeps `db check` and `insert`, the slow set the others.
UNREACHABLE_COMMANDS = [
    pytest.param(("db", "current"), marks=pytest.mark.slow),
    ("db", "check"),
    pytest.param(("db", "upgrade"), marks=pytest.mark.slow),
    pytest.param(("keys", "list"), marks=pytest.mark.slow),
    pytest.param(("keys", "create", "--name", "n", "--scope", "read"), marks=pytest.mark.slow),
    pytest.param(("keys", "revoke", "1"), marks=pytest.mark.slow),
    pytest.param(("export", "--batch", "1", "--out", "out.jsonl"), marks=pytest.mark.slow),
    ("insert", "-"),
]


@pytest.mark.parametrize("args", UNREACHABLE_COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line_and_exit_1(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    url = f"postgresql://nobody:x@127.0.0.1:{free_port()}/none"  # nothing listens there
    done = run(*args, "--database-url", url, stdin="{}\n", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert lines[0].startswith(f"searchtrail {args[0]}"), lines[0]
    assert "the database is unavailable" in lines[0], lines[0]
