"""The database's own ceiling: the push's event rows straight into the database, no
Python service.

On SQLite the rows, the table, the ``ON CONFLICT DO NOTHING`` insert, ``BEGIN IMMEDIATE``
and the pragmas are the store's; only validation, HTTP and SQLAlchemy are missing. On
PostgreSQL the same rows go in with ``COPY``, the server's fastest way in (no conflict
check: every id is new). Rows are made before the clock starts, so the rate is the
database's alone.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.data import fresh_database, load_sessions
from searchtrail.storage.sql import normalize_database_url

__all__ = ["RawInsert", "raw_copy_rate", "raw_insert_rate"]

_COLUMNS = "events (session_number, event_id, object_id, event_type, created_at_ms, meta)"
_COPY = f"COPY {_COLUMNS} FROM STDIN"
_INSERT = (
    f"INSERT INTO {_COLUMNS}"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_number, event_id) DO NOTHING"
)


@dataclass(frozen=True)
class RawInsert:
    rows_per_transaction: int
    rows: int
    seconds: float
    method: str = "SQLite insert"

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

    def store(rows: list[tuple[object, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        conn.execute("COMMIT")

    try:
        done, spent = _timed(store, seconds, rows_per_transaction, sessions, events_per_push)
    finally:
        conn.close()
    return RawInsert(rows_per_transaction, done, spent)


def raw_copy_rate(
    url: str,
    *,
    seconds: float,
    rows_per_transaction: int,
    sessions: int,
    events_per_push: int = 100,
) -> RawInsert:
    """COPY pushes of ``events_per_push`` rows into PostgreSQL, ``rows_per_transaction``
    per commit, with the server's durability as it is (the bench's: its defaults)."""
    import psycopg

    fresh_database(url)
    load_sessions(url, sessions, prefix="bs", results=20)
    dsn = normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    conn = psycopg.connect(dsn)

    def store(rows: list[tuple[object, ...]]) -> None:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)

    try:
        done, spent = _timed(store, seconds, rows_per_transaction, sessions, events_per_push)
    finally:
        conn.close()
    return RawInsert(rows_per_transaction, done, spent, "PostgreSQL COPY")


def _timed(
    store: Callable[[list[tuple[object, ...]]], None],
    seconds: float,
    rows_per_transaction: int,
    sessions: int,
    events_per_push: int,
) -> tuple[int, float]:
    """Rows stored by ``store`` a transaction at a time for ``seconds`` of its own time
    (making the rows is not counted): (rows, seconds)."""
    now = int(time.time() * 1000)
    block = max(rows_per_transaction, 100_000)
    done = 0
    spent = 0.0
    n = 0
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
            store(rows[k : k + rows_per_transaction])
            done += min(rows_per_transaction, len(rows) - k)
            if time.perf_counter() - started + spent >= seconds:
                break
        spent += time.perf_counter() - started
    return done, spent
