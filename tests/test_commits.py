"""Commit subjects stay short enough to read in one line of `git log --oneline`."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Subjects are held to the rule from this commit on; older history is left as it was.
SINCE = "f135ef06f2ab57507fa050bd8f0757faed54fce0"
LIMIT = 72


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )


def test_commit_subjects_are_at_most_72_characters() -> None:
    if _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        return  # an unpacked release has no history to read
    known = _git("cat-file", "-e", f"{SINCE}^{{commit}}").returncode == 0
    span = [f"{SINCE}..HEAD"] if known else ["-1", "HEAD"]  # a shallow clone: HEAD alone
    log = _git("log", "--format=%h %s", *span)
    assert log.returncode == 0, log.stderr
    long = [line for line in log.stdout.splitlines() if len(line.split(" ", 1)[1]) > LIMIT]
    assert long == [], f"subjects over {LIMIT} characters: {long}"
