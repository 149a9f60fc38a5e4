"""Databases for the scenarios: fresh ones, sessions loaded in bulk, and the big cached one.

Rows go in through ``executemany`` on the driver (one statement, big transactions), in
the schema of ``searchtrail.storage.sql.schema`` created by the storage itself, so the server
reads exactly what it would have written. The JSON columns get the compact text its
serializer writes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.schema import CreateIndex, CreateTable

from searchtrail.storage.sql import SqlStorage, normalize_database_url
from searchtrail.storage.sql.schema import metadata

if TYPE_CHECKING:
    from tests.pg import PgServer

__all__ = [
    "BUILDER_VERSION",
    "big_database",
    "fresh_database",
    "load_sessions",
    "schema_fingerprint",
]

BUILDER_VERSION = 1
_SESSION_COLS = (
    "session_number", "session_id", "batch_id", "search_query", "search_results",
    "search_meta", "payload_filter", "sort_by", "user_id", "created_at_ms",
    "created_at_given", "is_irrelevant", "registered_at_ms",
)  # fmt: skip
_EVENT_COLS = ("session_number", "event_id", "object_id", "event_type", "created_at_ms", "meta")
_EVENT_TYPES = ("click", "click", "click", "add_to_cart", "purchase")


def schema_fingerprint() -> str:
    """Changes whenever the tables change, so a cached database of an old schema is rebuilt."""
    from sqlalchemy.dialects import sqlite

    ddl = [str(CreateTable(t).compile(dialect=sqlite.dialect())) for t in metadata.sorted_tables]
    ddl += [
        str(CreateIndex(i).compile(dialect=sqlite.dialect()))
        for t in metadata.sorted_tables
        for i in sorted(t.indexes, key=lambda i: str(i.name))  # a set: its order varies by run
    ]
    ddl.append(str(BUILDER_VERSION))
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:10]


def fresh_database(url: str) -> None:
    """An empty database in the current schema; on a server database, every table is dropped."""
    url = normalize_database_url(url)
    engine = create_engine(url)
    metadata.drop_all(engine)
    with engine.begin() as conn:  # the revision too, or the empty database looks up to date
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    store = SqlStorage(url)
    store.create_schema()
    store.close()


def _placeholders(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def _results_json(i: int, results: int) -> str:
    return json.dumps(
        [
            {"object_id": f"o{(i * 7 + j) % 100_000}", "rank": j, "meta": None}
            for j in range(results)
        ],
        separators=(",", ":"),
    )


def _session_rows(
    start: int, stop: int, prefix: str, results: int, at: int
) -> Iterator[tuple[Any, ...]]:
    for i in range(start, stop):
        yield (
            i + 1, f"{prefix}{i}", 1, json.dumps(f"red shoes {i % 500}"), _results_json(i, results),
            None, None, None, f"u{i % 997}", at + i, True, False, at + i,
        )  # fmt: skip


def _event_rows(start: int, stop: int, per_session: int, at: int) -> Iterator[tuple[Any, ...]]:
    # Round by round, so a session's events lie apart as they would when they arrive over time.
    for j in range(per_session):
        for i in range(start, stop):
            yield (
                i + 1, f"e{j}", f"o{(i * 7 + j) % 100_000}", _EVENT_TYPES[(i + j) % 5],
                at + i + j, None,
            )  # fmt: skip


def load_sessions(
    url: str,
    n: int,
    *,
    prefix: str,
    results: int,
    events_per_session: int = 0,
    chunk: int = 20_000,
    progress: bool = False,
) -> None:
    """Put ``n`` sessions (``PREFIX0``...) in the collecting batch of an empty database."""
    url = normalize_database_url(url)
    engine = create_engine(url)
    at = int(time.time() * 1000) - 3_600_000
    started = time.monotonic()
    sqlite = url.startswith("sqlite")
    try:
        with engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
                conn.commit()
            with conn.begin():
                conn.exec_driver_sql(
                    "INSERT INTO batches"
                    " (batch_id, state, collecting, created_at_ms, updated_at_ms)"
                    f" VALUES ({_placeholders(conn, 5)})",
                    (1, "collecting", 1, at, at),
                )
            insert_s = (
                f"INSERT INTO sessions ({', '.join(_SESSION_COLS)})"
                f" VALUES ({_placeholders(conn, len(_SESSION_COLS))})"
            )
            insert_e = (
                f"INSERT INTO events ({', '.join(_EVENT_COLS)})"
                f" VALUES ({_placeholders(conn, len(_EVENT_COLS))})"
            )
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                with conn.begin():
                    conn.exec_driver_sql(
                        insert_s, list(_session_rows(start, stop, prefix, results, at))
                    )
                    if events_per_session:
                        conn.exec_driver_sql(
                            insert_e, list(_event_rows(start, stop, events_per_session, at))
                        )
                if progress and (stop // chunk) % 10 == 0:
                    rate = stop / (time.monotonic() - started)
                    print(f"  built {stop:,}/{n:,} sessions ({rate:,.0f}/s)", flush=True)
            if not sqlite:
                with conn.begin():
                    for table, column in (("sessions", "session_number"), ("batches", "batch_id")):
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                                f"(SELECT max({column}) FROM {table}))"
                            )
                        )
            if sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.commit()
    finally:
        engine.dispose()


def big_database(data_dir: Path, n: int, events_per_session: int, results: int) -> Path:
    """The get-session database, built once per size and schema and cached in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = f"sessions-{n}x{events_per_session}x{results}"
    path = data_dir / f"{stem}-{schema_fingerprint()}.db"
    if path.exists():
        return path
    for old in data_dir.glob(f"{stem}-*.db*"):
        old.unlink()
    building = path.with_name(path.name + ".building")
    for leftover in data_dir.glob(building.name + "*"):
        leftover.unlink()
    url = f"sqlite:///{building}"
    print(f"building {path.name}: {n:,} sessions, {n * events_per_session:,} events", flush=True)
    started = time.monotonic()
    fresh_database(url)
    load_sessions(
        url, n, prefix="s", results=results, events_per_session=events_per_session, progress=True
    )
    for suffix in ("-wal", "-shm"):
        Path(str(building) + suffix).unlink(missing_ok=True)
    building.rename(path)
    print(f"built in {time.monotonic() - started:,.0f} s", flush=True)
    return path


def big_postgres_database(server: PgServer, n: int, events_per_session: int, results: int) -> str:
    """``big_database`` on the benchmarks' own PostgreSQL cluster: loaded once, then kept.

    It is loaded under a temporary name and renamed when complete, so a run interrupted
    while loading starts over instead of measuring a half-loaded database.
    """
    stem = f"get_{n}x{events_per_session}x{results}_"
    name = stem + schema_fingerprint()
    names = [r[0] for r in server.admin("SELECT datname FROM pg_database")]
    if name in names:
        return server.url(name)
    for old in names:
        if old.startswith(stem) or old == name + "_building":
            server.admin(f"DROP DATABASE {old}")
    building = name + "_building"
    server.admin(f"CREATE DATABASE {building}")
    url = server.url(building)
    print(f"loading {name}: {n:,} sessions, {n * events_per_session:,} events", flush=True)
    started = time.monotonic()
    fresh_database(url)
    load_sessions(
        url, n, prefix="s", results=results, events_per_session=events_per_session, progress=True
    )
    server.admin(f"ALTER DATABASE {building} RENAME TO {name}")
    print(f"loaded in {time.monotonic() - started:,.0f} s", flush=True)
    return server.url(name)


def postgres_database_files(server: PgServer, url: str) -> list[Path]:
    """The files of one database of our own cluster, to read them into the OS page cache."""
    name = url.rsplit("/", 1)[-1]
    [(oid,)] = server.admin("SELECT oid FROM pg_database WHERE datname = %s", (name,))
    return sorted(p for p in (server.datadir / "base" / str(oid)).iterdir() if p.is_file())
