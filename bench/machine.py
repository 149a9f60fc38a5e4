"""What the numbers were measured on: hardware, load, and the versions of every layer."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from bench.wrk import wrk_version

__all__ = ["REPO", "cpu_busy", "git_sha", "load_average", "machine", "versions"]

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float:
    return os.getloadavg()[0]


def cpu_busy(seconds: float = 2.0) -> float:
    """Percent of all cores busy over ``seconds``: other work, when taken before a run.

    The load average cannot tell: it decays over minutes, so it still counts work that
    ended before the run, and at the end it counts the run's own server and wrk.
    """
    return float(psutil.cpu_percent(interval=seconds))


def machine() -> dict[str, str]:
    return {
        "CPU": _cpu_model(),
        "cores (logical)": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
    }


def git_sha() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = [
        line
        for line in git("status", "--porcelain").splitlines()
        if "docs/benchmarks.md" not in line
    ]
    return sha + (" (with uncommitted changes)" if dirty else "")


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {
        "Python": sys.version.split()[0],
        "searchtrail": f"{_pkg('searchtrail')} @ {git_sha()}",
        "FastAPI": _pkg("fastapi"),
        "Starlette": _pkg("starlette"),
        "pydantic": _pkg("pydantic"),
        "SQLAlchemy": _pkg("sqlalchemy"),
        "SQLite": sqlite3.sqlite_version,
        "uvicorn": _pkg("uvicorn"),
        "httptools / uvloop": f"{_pkg('httptools')} / {_pkg('uvloop')}",
        "psycopg": _pkg("psycopg"),
        "wrk": wrk_version(),
    }
