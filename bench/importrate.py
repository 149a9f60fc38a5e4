"""The import scenario: ``searchtrail import`` of a JSONL dump against the raw insert rate.

One run measures both, on the same database server and the same rows:

- *import*: ``Clickstream.import_from`` of a dump written by ``export --all`` (sessions
  with ``results`` results and ``events_per_session`` events each) into an empty
  database: reading, validating and storing, all timed.
- *raw*: the same session and event rows, read from the same files before the clock
  starts (parsed, JSON columns encoded), inserted straight through the driver
  (``executemany``) in transactions of the importer's size, no validation: only the
  inserts are timed.

The dump is written from a SQLite database loaded in bulk (``bench.data``); the dump is
the same whatever the target dialect, so a PostgreSQL run imports the same files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import JSON, create_engine

from bench.data import fresh_database, load_sessions
from searchtrail import Clickstream
from searchtrail.storage.sql import normalize_database_url
from searchtrail.storage.sql.schema import events, sessions
from searchtrail.transfer.importer import EVENT_CHUNK, SESSION_CHUNK

__all__ = ["ImportRate", "import_rate", "make_dump"]


@dataclass(frozen=True)
class ImportRate:
    dialect: str
    sessions: int
    events: int
    import_seconds: float
    raw_seconds: float

    @property
    def import_per_second(self) -> float:
        return self.sessions / self.import_seconds if self.import_seconds else 0.0

    @property
    def raw_per_second(self) -> float:
        return self.sessions / self.raw_seconds if self.raw_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.raw_seconds / self.import_seconds if self.import_seconds else 0.0


def make_dump(scratch: Path, sessions_n: int, events_per_session: int, results: int) -> Path:
    """A JSONL dump of ``sessions_n`` sessions, written by ``export --all``."""
    source = f"sqlite:///{scratch / 'import-source.db'}"
    fresh_database(source)
    load_sessions(
        source,
        sessions_n,
        prefix="im",
        results=results,
        events_per_session=events_per_session,
        progress=True,
    )
    out = scratch / "import-dump"
    with Clickstream(source) as cs:
        cs.export_all(out, format="jsonl", progress=False)
    (scratch / "import-source.db").unlink()
    return out


def _lines(path: Path, n: int) -> Iterator[list[dict[str, Any]]]:
    with path.open("rb") as f:
        while chunk := list(islice(f, n)):
            yield [pydantic_core.from_json(line) for line in chunk]


def _rows(table: Any, found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    json_cols = {c.name for c in table.c if isinstance(c.type, JSON)}
    names = [c.name for c in table.c]
    return [
        tuple(
            pydantic_core.to_json(r[c]).decode() if c in json_cols and r[c] is not None else r[c]
            for c in names
        )
        for r in found
    ]


def _raw_insert(url: str, dump: Path) -> float:
    """Seconds spent inserting the dump's sessions and events through the driver."""
    url = normalize_database_url(url)
    fresh_database(url)
    engine = create_engine(url)
    spent = 0.0
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        sqlite = engine.dialect.name == "sqlite"
        mark = "?" if sqlite else "%s"
        cur = raw.cursor()
        if sqlite:
            raw.isolation_level = None
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
        else:
            raw.autocommit = True
        begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"
        batches = next(_lines(dump / "batches.jsonl", 100))
        cur.execute(begin)
        for b in batches:
            cols = ", ".join(b)
            cur.execute(
                f"INSERT INTO batches ({cols}) VALUES ({', '.join([mark] * len(b))})",
                tuple(b.values()),
            )
        cur.execute("COMMIT")
        for table, name, chunk in (
            (sessions, "sessions.jsonl", SESSION_CHUNK),
            (events, "events.jsonl", EVENT_CHUNK),
        ):
            names = [c.name for c in table.c]
            sql = (
                f"INSERT INTO {table.name} ({', '.join(names)}) "
                f"VALUES ({', '.join([mark] * len(names))})"
            )
            for found in _lines(dump / name, chunk):
                rows = _rows(table, found)
                started = time.perf_counter()
                cur.execute(begin)
                cur.executemany(sql, rows)
                cur.execute("COMMIT")
                spent += time.perf_counter() - started
        cur.close()
    engine.dispose()
    return spent


def import_rate(
    dump: Path, import_url: str, raw_url: str, *, sessions_n: int, events_per_session: int
) -> ImportRate:
    """Import ``dump`` into an empty ``import_url`` (timed), then insert the same rows raw
    into an empty ``raw_url`` (may be the same database: it is emptied first)."""
    fresh_database(import_url)
    with Clickstream(import_url) as cs:
        started = time.perf_counter()
        summary = cs.import_from(dump, progress=False)
        import_seconds = time.perf_counter() - started
        dialect = cs.storage.dialect
    if summary.exit_code != 0 or summary.tables["sessions"].new != sessions_n:
        raise RuntimeError(f"the import did not store every row: {summary.model_dump_json()}")
    raw_seconds = _raw_insert(raw_url, dump)
    return ImportRate(
        dialect=dialect,
        sessions=sessions_n,
        events=sessions_n * events_per_session,
        import_seconds=import_seconds,
        raw_seconds=raw_seconds,
    )
