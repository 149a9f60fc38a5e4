"""`searchtrail clickmodel fit` and `compare` on a SQLite file with a known clickstream.

The files must agree with the library (``Clickstream.fit_click_model``); every registered
model is run in this process (CliRunner), and one as a real process.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from searchtrail import Clickstream
from searchtrail.cli import main
from searchtrail.clickfiles import FILES
from searchtrail.clickmodels.registry import MODELS
from tests import clickmodel_data
from tests.support import clean_env

QREL = re.compile(r"^(\d+) 0 (\S+) ([0-3])$")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('clickmodels') / 'searchtrail.db'}"
    with Clickstream(settings=clickmodel_data.settings(url)) as cs:
        clickmodel_data.load(cs)
    return url


@pytest.fixture(scope="module")
def cs(url: str) -> Iterator[Clickstream]:
    with Clickstream(url) as clickstream:
        yield clickstream


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, ["clickmodel", *args])
    return result


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_files(out: Path, cs: Clickstream, model: str) -> None:
    fitted = cs.fit_click_model(model)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no .partial left
    propensities = json.loads((out / "propensities.json").read_text())
    assert propensities["model"] == model
    assert propensities["examination"] == pytest.approx(fitted.examination, nan_ok=True)
    assert propensities["examination_raw"] == pytest.approx(fitted.examination_raw)
    if propensities["examination_raw"][0]:
        assert propensities["examination"][0] == 1.0
    assert propensities["counts"] == {"sessions": 60, "pairs": 6, "clicks": 30}
    assert propensities["params"] == json.loads(json.dumps(fitted.params))
    assert propensities["scope"]["click_types"] == ["click", "add_to_cart", "purchase"]
    fit = json.loads((out / "fit.json").read_text())
    assert (fit["train_sessions"], fit["test_sessions"]) == (54, 6)
    assert fit["log_likelihood"] == pytest.approx(fitted.quality["log_likelihood"])
    assert len(fit["perplexity_by_position"]) == 10
    labels = _jsonl(out / "labels.jsonl")
    assert labels == json.loads(json.dumps(fitted.labels()))
    assert pq.read_table(out / "labels.parquet").to_pylist() == labels
    assert {(r["query"], r["object_id"]) for r in labels} == {("red shoes", o) for o in "abcd"} | {
        ("hats", "h1"),
        ("hats", "h2"),
    }
    assert all(0 <= r["grade"] <= 3 for r in labels)
    queries = dict(line.split("\t") for line in (out / "queries.tsv").read_text().splitlines())
    qrels = [QREL.match(line) for line in (out / "qrels.txt").read_text().splitlines()]
    assert all(qrels), "every qrels line is `query_id 0 doc_id grade`"
    grade = {(r["query"], r["object_id"]): r["grade"] for r in labels}
    assert {(queries[m[1]], m[2]): int(m[3]) for m in qrels if m} == grade
    with (out / "judgments_quepid.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["query", "docid", "rating"]
    assert {(q, d): int(r) for q, d, r in rows[1:]} == grade
    srw = json.loads((out / "judgments_srw.json").read_text())
    assert srw["type"] == "IMPORT_JUDGMENT"
    assert {
        (j["query"], r["docId"]): float(r["rating"])
        for j in srw["judgmentRatings"]
        for r in j["ratings"]
    } == grade


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fit_writes_every_file_as_the_library_fits(
    model: str, url: str, cs: Clickstream, tmp_path: Path
) -> None:
    result = _run("fit", "--model", model, "--out", str(tmp_path), "--database-url", url)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["counts"]["sessions"] == 60
    assert set(summary["files"]) == set(FILES)
    _check_files(tmp_path, cs, model)


def test_fit_as_a_real_process(url: str, tmp_path: Path) -> None:
    model = "coec" if "coec" in MODELS else sorted(MODELS)[0]
    args = ["fit", "--model", model, "--out", str(tmp_path), "--database-url", url]
    args += ["--click-types", "click", "--max-position", "3", "--since", "2026-02-02T09:30"]
    run = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "clickmodel", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["scope"]["click_types"] == ["click"]
    assert summary["scope"]["since"] == "2026-02-02T09:30:00.000Z"
    assert summary["counts"]["sessions"] == 30  # 20 shoes sessions from 09:30, 10 hats
    propensities = json.loads((tmp_path / "propensities.json").read_text())
    assert len(propensities["examination"]) == 3


def test_compare_table_and_json(url: str, cs: Clickstream) -> None:
    models = sorted(MODELS)
    args = [a for m in models for a in ("--model", m)] + ["--database-url", url]
    table = _run("compare", *args)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("60 sessions (54 trained on, the latest 6 held out)")
    assert lines[1].split()[:3] == ["model", "log_likelihood", "perplexity"]
    assert [line.split()[0] for line in lines[2:]] == models
    answer = _run("compare", *args, "--format", "json")
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output) == cs.compare_click_models(models).model_dump(mode="json")


@pytest.mark.parametrize("command", ["fit", "compare"])
def test_an_unknown_model_is_a_usage_error_listing_the_available(
    command: str, url: str, tmp_path: Path
) -> None:
    args = ["--model", "nosuch", "--database-url", url]
    result = _run(command, *args, *(["--out", str(tmp_path)] if command == "fit" else []))
    assert result.exit_code == 2
    assert "'nosuch' is not a click model; available: " + ", ".join(sorted(MODELS)) in (
        result.output
    )
    planned = [m for m in ("pbm", "cascade", "dbn", "sdbn", "ubm") if m not in MODELS]
    if planned:
        result = _run(command, "--model", planned[0], "--database-url", url)
        assert result.exit_code == 2
        assert "is not available in this version" in result.output
