"""The Spark jobs give what the single-machine path gives, on the same data.

A real SQLite database of 100,000 varied sessions (tests/spark_data.py), written as the
lake by `export --lake` (transfer/lake.py), read by real Spark in local mode: the training
records and triplets must equal ``export_batch``'s (order aside, exactly), the metrics
``Clickstream.metrics()``'s (counts exactly, ratios to 1e-9). Then the command and
spark-submit, each on a small lake. Slow: the JVM alone takes 10 s or more to start.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from searchtrail import Clickstream, Settings
from searchtrail.cli import main
from tests.spark_data import BASE_MS, load
from tests.support import clean_env

pyspark = pytest.importorskip("pyspark")  # a dev dependency: CI has it, so a skip fails there

from pyspark.sql import SparkSession  # noqa: E402

from searchtrail.spark import metrics, training_data  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # pyspark 4.3 warns on import beside pandas 3 (a dependency of `datasets`); no job here
    # converts to or from pandas.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

SESSIONS = 100_000
DAY = 86_400_000
TIMES: dict[str, float] = {}  # printed at the end of the module: the wall times of each step


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[2]")
        .appName("searchtrail-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _timed(name: str, started: float) -> None:
    TIMES[name] = round(time.monotonic() - started, 1)
    print(f"[spark timing] {name}: {TIMES[name]} s", file=sys.stderr)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clickstream, Path]]:
    root = tmp_path_factory.mktemp("spark")
    started = time.monotonic()
    cs = Clickstream(f"sqlite:///{root / 'st.db'}")
    load(cs, SESSIONS)
    _timed("load 100k sessions into SQLite", started)
    started = time.monotonic()
    cs.refresh_metrics()
    _timed("refresh the single-machine metrics", started)
    started = time.monotonic()
    lake = root / "lake"
    cs.export_lake(lake, progress=False)
    _timed("write the lake", started)
    size = sum(p.stat().st_size for p in lake.rglob("*.parquet"))
    print(f"[spark timing] lake size: {size / 1e6:.1f} MB", file=sys.stderr)
    yield cs, lake
    cs.close()
    print(f"[spark timing] all: {json.dumps(TIMES)}", file=sys.stderr)


def _lines(path: Path) -> list[str]:
    """Each record as canonical JSON, sorted: the order of rows is not part of the answer.
    ``path``: a file, or a Spark output directory, of Parquet or JSON lines."""
    files = sorted(path.glob("part-*")) if path.is_dir() else [path]
    if files and files[0].read_bytes()[:4] == b"PAR1":
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    else:
        rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)


@pytest.mark.parametrize(
    ("batch_id", "layout", "fmt", "irrelevant"),
    [(2, "sessions", "jsonl", True), (3, "triplets", "parquet", False)],
)
def test_training_data_equals_the_export(
    spark: SparkSession,
    data: tuple[Clickstream, Path],
    tmp_path: Path,
    batch_id: int,
    layout: Any,
    fmt: Any,
    irrelevant: bool,
) -> None:
    cs, lake = data
    started = time.monotonic()
    local = cs.export(
        batch_id, tmp_path / "local", format=fmt, layout=layout, include_irrelevant=irrelevant
    )
    _timed(f"export_batch {layout} {fmt}", started)
    started = time.monotonic()
    weights = Settings().export_event_weights
    summary = training_data(
        spark,
        str(lake),
        str(tmp_path / "spark"),
        batch_id,
        weights=weights,
        format=fmt,
        layout=layout,
        include_irrelevant=irrelevant,
    )
    _timed(f"spark training-data {layout} {fmt}", started)
    assert summary["sessions"] == local.sessions > 20_000
    assert summary["left_out"] == local.left_out
    assert summary["written"] == local.written
    assert summary["rows"] == local.rows
    assert all(local.left_out.values()), local.left_out  # every reason happens in the data
    for split, where in local.files.items():
        expected = _lines(Path(where))
        assert len(expected) > 1000
        assert _lines(Path(summary["files"][split])) == expected, split


def _assert_same(got: Any, want: Any, where: str = "") -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, float), where
        assert math.isclose(got, want, rel_tol=1e-9), (where, got, want)
    else:
        assert got == want, where
        assert type(got) is type(want), where


@pytest.mark.parametrize(
    ("since", "until", "irrelevant", "by"),
    [
        (None, None, False, None),
        (BASE_MS + DAY + 3_600_123, BASE_MS + 3 * DAY + 45_000, True, "day"),
    ],
)
def test_metrics_equal_the_single_machine_ones(
    spark: SparkSession,
    data: tuple[Clickstream, Path],
    since: int | None,
    until: int | None,
    irrelevant: bool,
    by: Any,
) -> None:
    cs, lake = data
    started = time.monotonic()
    want = cs.metrics(since, until, include_irrelevant=irrelevant, by=by).model_dump()
    _timed(f"Clickstream.metrics {since is not None} {irrelevant} {by}", started)
    started = time.monotonic()
    got = metrics(spark, str(lake), since, until, include_irrelevant=irrelevant, by=by)
    _timed(f"spark metrics {since is not None} {irrelevant} {by}", started)
    if by is None:
        assert want["sessions"] > 20_000
        assert want["unshown_events"] > 1000
        assert want["ctr_at_position"][19] is not None
    else:
        assert len(want["groups"]) == 3  # from day 2 (after 21:00) to day 4 (before 20:00)
    _assert_same(got, want)


def _small(tmp_path: Path) -> Path:
    with Clickstream(f"sqlite:///{tmp_path / 'small.db'}") as cs:
        load(cs, 2_000, batches=2, chunk=1_000)
        cs.export_lake(tmp_path / "lake", progress=False)
        return tmp_path / "lake"


def test_the_command_runs_the_jobs(spark: SparkSession, tmp_path: Path) -> None:
    """`searchtrail spark ...` in this process, on the running Spark session (a new JVM
    would add a minute here; spark-submit below starts one)."""
    lake = _small(tmp_path)
    runner = CliRunner()
    out = tmp_path / "out"
    done = runner.invoke(
        main, ["spark", "training-data", "--lake", str(lake), "--out", str(out),
               "--batch-id", "1", "--layout", "triplets", "--weight", "view=0.5"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    with Clickstream(f"sqlite:///{tmp_path / 'small.db'}") as cs:
        weights = {**Settings().export_event_weights, "view": 0.5}
        local = cs.export(1, tmp_path / "local.jsonl", layout="triplets", weights=weights)
    assert summary["rows"] == local.rows
    assert summary["rows"]["train"] > 100
    assert _lines(out / "train") == _lines(tmp_path / "local.jsonl")
    assert (out / "train" / "_SUCCESS").exists()
    # A collecting batch is refused as `searchtrail export` refuses it: one line, exit 1.
    done = runner.invoke(
        main, ["spark", "training-data", "--lake", str(lake), "--out", str(tmp_path / "o2"),
               "--batch-id", "2"],
    )  # fmt: skip
    assert done.exit_code == 1
    assert "Batch 2 is collecting; release it first" in done.stderr
    done = runner.invoke(main, ["spark", "metrics", "--lake", str(lake), "--by", "batch"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == metrics(spark, str(lake), by="batch")
    assert spark.range(3).count() == 3  # the command left the running session running
    # A lake whose events were never written: its sessions count, no interaction does.
    whole = metrics(spark, str(lake))
    shutil.rmtree(lake / "events")
    bare = metrics(spark, str(lake))
    assert bare["sessions"] == whole["sessions"] > 0
    assert bare["interactions"] == bare["unshown_events"] == 0


def test_spark_submit_runs_a_job_module_as_it_is(spark: SparkSession, tmp_path: Path) -> None:
    """The metrics module under pyspark's own spark-submit: no searchtrail command."""
    lake = _small(tmp_path)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    module = Path(sys.modules["searchtrail.spark.metrics_job"].__file__ or "")
    env = clean_env(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.monotonic()
    done = subprocess.run(
        [str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(module),
         "--lake", str(lake), "--include-irrelevant"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    _timed("spark-submit metrics_job, 2,000 sessions, JVM start included", started)
    assert done.returncode == 0, done.stderr[-3000:]
    # spark-submit hands the Python driver's stderr (pyspark's own warnings) to stdout:
    # the answer is the JSON object that starts a line and runs to the end.
    answer = json.loads(done.stdout[done.stdout.index("{\n") :])
    with Clickstream(f"sqlite:///{tmp_path / 'small.db'}") as cs:
        want = cs.metrics(include_irrelevant=True).model_dump()
    _assert_same(answer, want)
