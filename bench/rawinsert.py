"""The database's own ceiling: the push's event rows straight into SQLite, no Python service.

The rows, the table, the ``ON CONFLICT DO NOTHING`` insert, ``BEGIN IMMEDIATE`` and the
pragmas are the store's; only validation, HTTP and SQLAlchemy are missing. Rows are made
before the clock starts, so the rate is the database's alone.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bench.data import fresh_database, load_sessions

__all__ = ["RawInsert", "raw_insert_rate"]

_INSERT = (
    "INSERT INTO events (session_number, event_id, object_id, event_type, created_at_ms, meta)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_number, event_id) DO NOTHING"
)


@dataclass(frozen=True)
class RawInsert:
    rows_per_transaction: int
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def raw_insert_rate(
    path: Path,
    *,
    seconds: float,
    rows_per_transaction: int,
    sessions: int,
    events_per_push: int = 100,
    synchronous: str = "FULL",
) -> RawInsert:
    """Insert pushes of ``events_per_push`` rows, ``rows_per_transaction`` per commit."""
    url = f"sqlite:///{path}"
    fresh_database(url)
    load_sessions(url, sessions, prefix="bs", results=20)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    now = int(time.time() * 1000)
    block = max(rows_per_transaction, 100_000)
    done = 0
    spent = 0.0
    n = 0
    try:
        while spent < seconds:
            rows: list[tuple[object, ...]] = []
            for _ in range(block // events_per_push):
                n += 1
                number = n % sessions + 1
                rows.extend(
                    (number, f"r-{n}-{j}", f"o{(n + j) % 1000}", "click", now, None)
                    for j in range(events_per_push)
                )
            started = time.perf_counter()
            for k in range(0, len(rows), rows_per_transaction):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows[k : k + rows_per_transaction])
                conn.execute("COMMIT")
                done += min(rows_per_transaction, len(rows) - k)
                if time.perf_counter() - started + spent >= seconds:
                    break
            spent += time.perf_counter() - started
    finally:
        conn.close()
    return RawInsert(rows_per_transaction, done, spent)
