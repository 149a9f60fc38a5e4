"""``--baseline REV``: the code at another revision, served beside this one's.

A detached ``git worktree`` of REV in the run's scratch directory; its server runs with
this venv but ``PYTHONPATH`` at the worktree's ``src``, so ``searchtrail`` is imported
from there (checked in a child before any server starts). Its databases are created by
its own code, so they have its schema (its tables, indexes and triggers) and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.machine import REPO
from bench.procs import clean_env

__all__ = ["baseline_env", "baseline_schema", "baseline_tree"]


def baseline_env(src: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(src)}


def _run(src: Path, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env() | baseline_env(src),
        capture_output=True,
        text=True,
        check=False,
        cwd=src.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the baseline's code failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


@contextmanager
def baseline_tree(rev: str, scratch: Path) -> Iterator[tuple[Path, str]]:
    """The worktree's ``src`` and the commit REV names; removed after."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = scratch / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(tree), commit],
        cwd=REPO, check=True,
    )  # fmt: skip
    try:
        src = tree / "src"
        imported = _run(src, "import searchtrail; print(searchtrail.__file__)")
        if not Path(imported).is_relative_to(src):
            raise RuntimeError(f"the baseline imported {imported}, not the code under {src}")
        print(f"baseline: {rev} ({commit[:10]}) from {src}", flush=True)
        yield src, commit
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def baseline_schema(src: Path, url: str) -> None:
    """Create the baseline's schema in the empty database at ``url``, with its code."""
    _run(
        src,
        "from searchtrail.storage.sql import SqlStorage\n"
        f"store = SqlStorage({url!r})\n"
        "store.create_schema()\n"
        "store.close()\n",
    )
