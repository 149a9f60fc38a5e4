"""scripts/test's fast set leaves out what is slow and keeps storage on both dialects.

The fast set is what pytest selects with the marker expression in scripts/test; this
collects it (no test runs) and reads the test files for what starts a process.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clean_env

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"

# Whole modules outside the fast set: Chromium, the benchmark runner, schemathesis, and
# `searchtrail serve` or writer processes as the subject.
OUTSIDE = {
    "tests/test_browser.py",
    "tests/test_bench.py",
    "tests/http/test_fuzz.py",
    "tests/test_serve_process.py",
    "tests/test_concurrency.py",
    "tests/test_keys_cli.py",
    "tests/test_prometheus_serve.py",
}
# Storage is their subject: in the fast set, on SQLite and on PostgreSQL.
STORAGE = [
    "tests/test_service.py",
    "tests/test_batches.py",
    "tests/test_batch_paging.py",
    "tests/test_session_events_paging.py",
    "tests/test_improvement_queue.py",
    "tests/test_keys.py",
    "tests/test_dump_import.py",
    "tests/test_lake.py",
    "tests/test_groupcommit.py",
    "tests/test_migrations.py",
    "tests/test_dialect_parity.py",
    "tests/test_unknown_fields.py",
    "tests/test_export.py",
    "tests/test_postgres.py",
    "tests/test_writerprocess.py",
    "tests/test_metrics_exact.py",
    "tests/test_metrics_exact_changes.py",
]


def fast_set_expression() -> str:
    script = (REPO / "scripts" / "test").read_text()
    found = re.search(r'^fast_set="([^"]+)"$', script, re.M)
    assert found, 'scripts/test names its fast set in one line: fast_set="..."'
    return found.group(1)


@pytest.fixture(scope="module")
def fast() -> set[str]:
    """The node ids of the fast set, as pytest selects them."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", fast_set_expression()],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    ids = {line for line in done.stdout.splitlines() if "::" in line}
    assert len(ids) > 100, done.stdout[-2000:]
    return ids


def _test_functions() -> Iterator[tuple[str, ast.Module, ast.FunctionDef]]:
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        name = path.relative_to(REPO).as_posix()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield name, tree, node


def _starts_a_server(func: ast.FunctionDef) -> bool:
    """Calls tests.support.serve, or runs the `serve` command itself."""
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("serve", "chromium")
        ):
            return True
        if isinstance(node, ast.Constant) and node.value == "serve":
            return True
    return False


def _sqlite_only(tree: ast.Module, func: ast.FunctionDef) -> bool:
    def named(node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id == "sqlite_only"

    module = any(
        isinstance(n, ast.Assign) and named(n.value)
        for n in tree.body
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in getattr(n, "targets", []))
    )
    return module or any(named(d) for d in func.decorator_list)


def test_browser_bench_fuzz_and_serve_process_tests_are_outside(fast: set[str]) -> None:
    assert sorted(i for i in fast if i.split("::")[0] in OUTSIDE) == []
    servers = {f"{m}::{f.name}" for m, _t, f in _test_functions() if _starts_a_server(f)}
    assert len(servers) > 10  # the scan still finds them
    assert sorted(i for i in fast if i.split("[")[0] in servers) == []


def test_storage_runs_on_both_dialects_in_the_fast_set(fast: set[str]) -> None:
    sqlite_alone = {f"{m}::{f.name}" for m, t, f in _test_functions() if _sqlite_only(t, f)}
    for module in STORAGE:
        ids = {i for i in fast if i.startswith(f"{module}::")}
        assert any("[postgresql" in i for i in ids), module
        # A test run on SQLite runs on PostgreSQL too, unless it says it is SQLite's alone.
        missing = [
            i
            for i in ids
            if "[sqlite" in i
            and i.split("[")[0] not in sqlite_alone
            and i.replace("[sqlite", "[postgresql", 1) not in fast
        ]
        assert missing == [], module


def test_http_layer_tests_run_once() -> None:
    """The HTTP layer's own tests are marked for SQLite alone, the whole module."""
    for module in ("test_auth.py", "test_sessions.py", "test_openapi.py", "test_prometheus.py"):
        tree = ast.parse((TESTS / "http" / module).read_text())
        assert all(_sqlite_only(tree, f) for n, t, f in _test_functions() if n.endswith(module))
