"""Where a server's time goes: py-spy samples of the running process, summarized as text.

``py-spy record --format raw`` writes one line per distinct stack with its sample
count. The summary groups leaf frames by library (the time spent *in* sqlite3,
pydantic, the HTTP stack...) and lists the searchtrail functions by inclusive time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "py_spy", "record"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# Leaf functions where a thread waits rather than works: py-spy cannot always tell them
# apart from busy ones, so they get a layer of their own.
_WAITS = {
    "Condition.wait": "waiting: idle worker threads",
    "EpollSelector.select": "waiting: event loop idle in epoll",
    "GroupCommit.run": "waiting: writers queued for the group commit",
    "_Database.write": "waiting: writers queued for the write lock",
    "SocketIO.readinto": "waiting: the writer process idle, for its next group",
}
# Leaf functions that stand for C work below them (the sqlite3 module releases the GIL).
_C_WORK = {
    "DefaultDialect.do_commit": "SQLite: commit (WAL write + fsync)",
    "DefaultDialect.do_execute": "SQLite: running statements (C)",
    "DefaultDialect.do_executemany": "SQLite: running statements (C)",
    "CursorFetchStrategy.fetchone": "SQLite: running statements (C)",
    "CursorFetchStrategy.fetchall": "SQLite: running statements (C)",
}
# Otherwise the first match wins: the file of a leaf frame names the layer it belongs to.
_LAYERS = (
    ("SQLite: sqlite3 module", ("sqlite3/", "sqlite3.")),
    ("SQLAlchemy (Python: statements, parameters, rows)", ("sqlalchemy/",)),
    ("pydantic validation / serialization", ("pydantic", "pydantic_core")),
    ("JSON / hashing", ("json/", "hashlib")),
    (
        "HTTP server (uvicorn, h11, asyncio)",
        ("uvicorn/", "h11/", "asyncio/", "httptools", "uvloop"),
    ),
    ("FastAPI / Starlette / anyio", ("fastapi/", "starlette/", "anyio/")),
    (
        "writer process hand-off (pickling, the socket)",
        ("searchtrail/storage/sql/_writerprocess.py", "multiprocessing/"),
    ),
    ("searchtrail", ("searchtrail/",)),
    ("threading", ("threading.py", "concurrent/")),
)


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


@dataclass
class Profile:
    samples: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def _layer(path: str) -> str:
    for name, marks in _LAYERS:
        if any(m in path for m in marks):
            return name
    return "other Python"


def summarize(raw: str) -> Profile:
    prof = Profile()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [m for f in stack.split(";") if (m := _FRAME.match(f.strip()))]
        if not frames:
            continue
        prof.samples += n
        leaf = frames[-1]
        short = f"{leaf['func']} ({Path(leaf['file']).name})"
        prof.leaves[short] += n
        func = leaf["func"]
        prof.layers[_WAITS.get(func) or _C_WORK.get(func) or _layer(leaf["file"])] += n
        seen = set()
        for f in frames:
            if "searchtrail/" in f["file"] and f["func"] not in ("<module>", "serve", "main"):
                name = f"{f['func']} ({Path(f['file']).name})"
                if name not in seen:
                    seen.add(name)
                    prof.inclusive[name] += n
    return prof


def record(pid: int, seconds: float, out: Path) -> Profile:
    """Sample ``pid`` and its worker processes for ``seconds``; an empty profile if py-spy fails."""
    exe = py_spy()
    if exe is None:
        return Profile()
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "200", "--format", "raw", "--subprocesses", "--nonblocking", "--output", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if proc.returncode != 0 or not out.exists():
        print(f"py-spy failed: {proc.stderr.strip()[-500:]}", flush=True)
        return Profile()
    return summarize(out.read_text())
