"""`searchtrail metrics` and its subcommands, run as real processes on a SQLite file.

The CLI's parsing and printing: the numbers themselves are the library's (one call each),
and tests/test_metrics_http.py checks them through library, HTTP and CLI on both dialects.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from searchtrail import Clickstream
from searchtrail.cli import main
from searchtrail.cli._metrics_output import FLAT_COLUMNS
from tests import metrics_data
from tests.metrics_data import cli

RANGED = ("--since", "2026-01-05", "--until", "1767657600000", "--include-irrelevant")
COMPARE = ("compare", "--ranker", "A", "--ranker", "B", "--resamples", "2000", "--seed", "7")
# The dataset's read-only runs. Those in PROCESSES start the real command, side by side
# (the fixture `printed`): about a second each, mostly imports and opening the database.
# The others check only how an answer prints, and run in this process (CliRunner).
RUNS: dict[str, tuple[str, ...]] = {
    "json": ("--format", "json"),
    "json ranged": (*RANGED, "--format", "json"),
    "by day json": ("--by", "day", "--format", "json"),
    "by day table": ("--by", "day"),
    "table": (),
    "csv": ("--format", "csv"),
    "by ranker csv": ("--by", "ranker", "--format", "csv"),
    "compare table": COMPARE,
    "compare json": (*COMPARE, "--format", "json"),
    "queries json": ("queries", "--limit", "2", "--format", "json"),
    # Options before the subcommand's name are the group's, and hold for it.
    "queries table": ("--include-irrelevant", "queries"),
    "sessions json": ("sessions", "--query", "socks", "--format", "json"),
    "sessions csv": ("sessions", "--query", "socks", "--format", "csv"),
}
PROCESSES = {"json", "json ranged", "by day json", "csv", "compare table", "queries table"}
BAD: list[Any] = [
    (("--since", "yesterday"), "Invalid value for '--since': 'yesterday' is not an ISO 8601"),
    (("queries", "--until", "2026-13-01"), "Invalid value for '--until'"),
    (("--until", "\u00b2"), "Invalid value for '--until'"),  # str.isdigit(), not int()
    (("compare", "--ranker", "A"), "Invalid value for --ranker: give it exactly twice"),
    (("compare", "--ranker", "A", "--ranker", "B", "--seed", "-1"), "Invalid value for '--seed'"),
    (("--by", "week"), "Invalid value for '--by': 'week' is not one of"),
    (("--by", "day", "queries"), "--by applies to `searchtrail metrics` alone"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dataset (tests/metrics_data.py) in a SQLite file the module's tests only read."""
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'searchtrail.db'}"
    with Clickstream(settings=metrics_data.settings(url)) as cs:
        metrics_data.load(cs)
    return url


@pytest.fixture(scope="module")
def cs(url: str) -> Iterator[Clickstream]:
    with Clickstream(url) as clickstream:
        yield clickstream


@pytest.fixture(scope="module")
def printed(url: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every run of ``RUNS`` and ``BAD``, as many at once as there are cores."""
    runs = {name: RUNS[name] for name in PROCESSES}
    runs.update({" ".join(args): args for args, _message in BAD})
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        done = {name: pool.submit(cli, *args, "--database-url", url) for name, args in runs.items()}
        return {name: future.result() for name, future in done.items()}


@pytest.fixture
def out(
    printed: dict[str, subprocess.CompletedProcess[str]],
    url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], str]:
    # The command writes --database-url into the environment (as every command does):
    # set here first, it is undone after the test.
    monkeypatch.setenv("SEARCHTRAIL_DATABASE_URL", url)

    def output(name: str) -> str:
        if name not in PROCESSES:
            result = CliRunner().invoke(main, ["metrics", *RUNS[name], "--database-url", url])
            assert result.exit_code == 0, result.output
            return result.stdout
        done = printed[name]
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout

    return output


Out = Callable[[str], str]


def test_json_is_the_library_answer_keyed_by_metric_names(out: Out, cs: Clickstream) -> None:
    printed = json.loads(out("json"))
    assert printed == cs.metrics().model_dump(mode="json")
    assert {k: printed[k] for k in metrics_data.EXPECTED} == pytest.approx(metrics_data.EXPECTED)
    assert printed["time_to_first_interaction_ms"] == {"median": 1000.0, "p90": 1500.0}
    day1 = json.loads(out("json ranged"))
    expected = cs.metrics("2026-01-05", 1767657600000, include_irrelevant=True)
    assert day1 == expected.model_dump(mode="json")
    assert day1["sessions"] == 41 and day1["until"] == "2026-01-06T00:00:00.000Z"


def test_by_day_json_and_table(out: Out, cs: Clickstream) -> None:
    printed = json.loads(out("by day json"))
    assert printed == cs.metrics(by="day").model_dump(mode="json")
    assert printed["by"] == "day"
    assert [(g["key"], g["sessions"]) for g in printed["groups"]] == [
        ("2026-01-05", 40),
        ("2026-01-06", 46),
    ]
    table = out("by day table").splitlines()
    assert table[1].split()[:4] == ["day", "sessions", "w/results", "zero_res"]
    assert table[2].split()[:5] == ["2026-01-05", "40", "40", "0.0%", "25.0%"]
    assert table[3].split()[:5] == ["2026-01-06", "46", "41", "10.9%", "87.8%"]


def test_table_without_by(out: Out) -> None:
    lines = dict(line.split(None, 1) for line in out("table").splitlines()[1:])
    assert lines["sessions"].strip() == "86"
    assert lines["ctr"].strip() == "56.8%"
    assert lines["mrr"].strip() == "0.562"
    assert lines["time_to_first_interaction_ms"].strip() == "median 1000, p90 1500"
    assert lines["ctr_at_position"].split()[1:4] == ["55.6%", "1.2%", "0.0%"]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_flat_columns(out: Out) -> None:
    text = out("csv")
    header = text.splitlines()[0].split(",")
    assert header == list(FLAT_COLUMNS)
    assert header[12:14] == ["ctr_at_1", "ctr_at_2"] and header[31] == "ctr_at_20"
    assert header[-2:] == ["ttfi_median_ms", "ttfi_p90_ms"]
    [row] = _csv(text)
    assert row["sessions"] == "86" and float(row["ctr"]) == pytest.approx(46 / 81)
    assert row["ctr_at_4"] == "" and row["ttfi_p90_ms"] == "1500.0"
    assert [(r["ranker"], r["sessions"], r["ctr"]) for r in _csv(out("by ranker csv"))] == [
        ("A", "40", "0.25"),
        ("B", "45", "0.875"),
        ("", "1", "1.0"),  # no ranker
    ]


def test_compare_table_and_json(out: Out, cs: Clickstream) -> None:
    table = out("compare table")
    verdicts = {line.split()[0]: line for line in table.splitlines()[4:8]}
    assert verdicts["ctr"].endswith(" better") and "+62.5pp" in verdicts["ctr"]
    assert verdicts["mrr"].endswith(" better")
    assert verdicts["zero_result_rate"].endswith(" worse")
    assert verdicts["conversion_rate"].endswith(" no significant difference")
    assert table.splitlines()[-1].startswith("interleaving: 1 sessions (A won 0, B won 1")
    answer = cs.compare_rankers("A", "B", resamples=2000, seed=7)
    assert json.loads(out("compare json")) == answer.model_dump(mode="json")


def test_queries_lists(out: Out, cs: Clickstream) -> None:
    printed = json.loads(out("queries json"))
    assert printed == cs.metrics_queries(limit=2).model_dump(mode="json")
    assert [q["query"] for q in printed["top"]] == ["blue hat", "red shoes"]
    assert [q["query"] for q in printed["zero_results"]] == ["blue hat"]
    assert [q["query"] for q in printed["no_interaction"]] == ["red shoes", "blue hat"]
    table = out("queries table")
    assert "top queries by sessions\n" in table and "irrelevant ones included" in table
    rows = [line.split()[:3] for line in table.splitlines()]
    assert ["red", "shoes", "41"] in rows  # the irrelevant session counts


def test_sessions_of_a_query(out: Out, cs: Clickstream) -> None:
    printed = json.loads(out("sessions json"))
    assert printed == [s.model_dump(mode="json") for s in cs.metrics_sessions("socks")]
    assert [
        (r["position"], r["object_id"], r["interactions"]) for r in _csv(out("sessions csv"))
    ] == [
        ("1", "p", ""),
        ("2", "q", "click"),
    ]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _m in BAD])
def test_bad_options_are_usage_errors(
    printed: dict[str, subprocess.CompletedProcess[str]], args: tuple[str, ...], message: str
) -> None:
    done = printed[" ".join(args)]
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_refresh_prints_how_many_were_recomputed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'searchtrail.db'}"
    with Clickstream(url) as cs:
        for sid in ("s1", "s2", "s3"):
            cs.create_session(session_id=sid, search_results=[{"object_id": "a"}])

    def refresh(*args: str) -> Any:
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert refresh("refresh", "--database-url", url) == {"recomputed": 3}
    with Clickstream(url) as cs:
        cs.push_events("s2", [{"event_id": "e1", "object_id": "a"}])
        assert cs.storage.metrics.stale() == 1
    assert refresh("--database-url", url, "refresh") == {"recomputed": 1}
