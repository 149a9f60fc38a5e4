"""pyspark is optional: searchtrail imports without it, and `searchtrail spark` says so.

The jobs themselves are tested in tests/test_spark_jobs.py (slow: a JVM).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from searchtrail.cli import main
from tests.support import clean_env


@pytest.mark.slow  # a fresh interpreter importing the command: 1 to 4 s here
def test_importing_searchtrail_and_its_command_loads_no_pyspark() -> None:
    code = (
        "import sys, searchtrail, searchtrail.cli, searchtrail.spark\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", ["metrics", "training-data"])
def test_without_pyspark_the_command_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    for name in ("pyspark", "pyspark.sql", "searchtrail.spark.lake"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    args = ["spark", command, "--lake", "nowhere"]
    if command == "training-data":
        args += ["--out", "out", "--batch-id", "1"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1
    assert "pyspark is not installed; pip install 'searchtrail[spark]'" in done.stderr
