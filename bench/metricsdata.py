"""The metrics scenario's database: many sessions of realistic shapes over 90 days.

Rows go in through the driver (``executemany`` on SQLite, ``COPY`` on PostgreSQL), in
the schema the storage creates, so its triggers give every session its ``session_stats``
row (stale); the first refresh then computes them all, as after an upgrade. Shapes:
10 to 20 results (about 3% of sessions none), a few rankers in ``search_meta`` (some
sessions none), a few thousand distinct queries with a skewed (log-uniform) popularity,
about 30% of sessions with clicks on shown results (more at the top positions), some
add-to-carts and purchases, some events on objects never shown, and events without an
object (page views, scrolls) so that sessions average about 10 events.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine

from bench.data import fresh_database, schema_fingerprint
from searchtrail.storage.sql import SqlStorage, normalize_database_url

if TYPE_CHECKING:
    from tests.pg import PgServer

__all__ = ["DAYS", "MetricsData", "metrics_database", "metrics_postgres_database"]

# Bump when the shapes change: a cached database of other shapes is rebuilt.
BUILDER_VERSION = 1
DAYS = 90
_DAY_MS = 86_400_000
_QUERIES = 5_000
_CATALOG = 200_000
_RANKERS = (("bm25", 0.3), ("hybrid-v1", 0.3), ("hybrid-v2", 0.3), (None, 0.1))
_SESSION_COLS = (
    "session_number", "session_id", "batch_id", "search_query", "search_results",
    "search_meta", "user_id", "created_at_ms", "created_at_given", "is_irrelevant",
    "registered_at_ms",
)  # fmt: skip
_EVENT_COLS = ("session_number", "event_id", "object_id", "event_type", "created_at_ms")


@dataclass
class MetricsData:
    """What was built, kept next to the database so a reused one reports it too."""

    url: str
    sessions: int
    events: int
    first_ms: int
    last_ms: int
    load_s: float
    refresh_s: float
    refreshed: int

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> MetricsData:
        return cls(**json.loads(path.read_text()))


def _sessions(
    rng: random.Random, start: int, stop: int, n: int, first_ms: int
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Each session's row and its events; session numbers in created_at order."""
    span = DAYS * _DAY_MS
    for i in range(start, stop):
        at = first_ms + span * i // n + rng.randrange(span // n + 1)
        query = f"query {int(_QUERIES ** rng.random()) - 1}"
        shown = 0 if rng.random() < 0.03 else rng.randint(10, 20)
        objects = rng.sample(range(_CATALOG), shown) if shown else []
        results = json.dumps(
            [{"object_id": f"o{o}", "rank": j, "meta": None} for j, o in enumerate(objects)],
            separators=(",", ":"),
        )
        r, ranker = rng.random(), None
        for name, share in _RANKERS:
            r -= share
            if r < 0:
                ranker = name
                break
        meta = None if ranker is None else json.dumps({"ranker": ranker}, separators=(",", ":"))
        number = i + 1
        evs: list[tuple[Any, ...]] = []
        t = at
        for k in range(rng.randint(5, 13)):  # no object: neither interaction nor unshown
            t += rng.randint(500, 20_000)
            evs.append((number, f"v{k}", None, "page_view", t))
        if objects and rng.random() < 0.3:
            for k in range(rng.randint(1, 6)):
                t += rng.randint(1_000, 60_000)
                # The top positions get most clicks.
                position = int(shown ** rng.random()) - 1
                evs.append((number, f"c{k}", f"o{objects[position]}", "click", t))
                if rng.random() < 0.15:
                    evs.append((number, f"a{k}", f"o{objects[position]}", "add_to_cart", t + 1))
                    if rng.random() < 0.4:
                        evs.append((number, f"p{k}", f"o{objects[position]}", "purchase", t + 2))
        if rng.random() < 0.05:
            evs.append((number, "u", f"o{rng.randrange(_CATALOG)}", "click", t + 3))
        row = (
            number, f"m{i}", 1, json.dumps(query), results, meta, f"u{rng.randrange(50_000)}",
            at, True, rng.random() < 0.01, at,
        )  # fmt: skip
        yield row, evs


def _load(url: str, n: int, first_ms: int, chunk: int = 20_000) -> int:
    """Insert ``n`` sessions into the empty database at ``url``; how many events."""
    engine = create_engine(url)
    rng = random.Random(20261202)
    sqlite = url.startswith("sqlite")
    started = time.monotonic()
    total = 0
    try:
        with engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
                conn.commit()
            with conn.begin():
                conn.exec_driver_sql(
                    "INSERT INTO batches (batch_id, state, collecting, created_at_ms, "
                    f"updated_at_ms) VALUES (1, 'collecting', 1, {first_ms}, {first_ms})"
                )
            driver: Any = conn.connection.driver_connection
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                rows, evs = [], []
                for row, events in _sessions(rng, start, stop, n, first_ms):
                    rows.append(row)
                    evs.extend(events)
                total += len(evs)
                with conn.begin():
                    if sqlite:
                        driver.executemany(_insert("sessions", _SESSION_COLS), rows)
                        driver.executemany(_insert("events", _EVENT_COLS), evs)
                    else:
                        _copy(driver, "sessions", _SESSION_COLS, rows)
                        _copy(driver, "events", _EVENT_COLS, evs)
                if (stop // chunk) % 10 == 0 or stop == n:
                    rate = stop / (time.monotonic() - started)
                    print(f"  loaded {stop:,}/{n:,} sessions ({rate:,.0f}/s)", flush=True)
            if not sqlite:
                with conn.begin():
                    for table, column in (("sessions", "session_number"), ("batches", "batch_id")):
                        conn.exec_driver_sql(
                            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"(SELECT max({column}) FROM {table}))"
                        )
            else:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.commit()
    finally:
        engine.dispose()
    return total


def _insert(table: str, cols: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def _copy(driver: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join(_copy_value(v) for v in row))
            buf.write("\n")
        cp.write(buf.getvalue())


def _copy_value(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v).replace("\\", "\\\\")


def _build(url: str, n: int, first_ms: int, *, postgres: PgServer | None = None) -> MetricsData:
    print(f"building the metrics database: {n:,} sessions over {DAYS} days", flush=True)
    url = normalize_database_url(url)
    fresh_database(url)
    started = time.monotonic()
    events = _load(url, n, first_ms)
    load_s = time.monotonic() - started
    if postgres is not None:
        postgres.admin("CHECKPOINT")
        _vacuum(url)
    print(f"  loaded in {load_s:,.0f} s; the first refresh of {n:,} sessions", flush=True)
    store = SqlStorage(url)
    try:
        started = time.monotonic()
        refreshed = store.metrics.refresh("ranker", "team")
        refresh_s = time.monotonic() - started
    finally:
        store.close()
    if postgres is not None:
        _vacuum(url)
    print(f"  refreshed {refreshed:,} sessions in {refresh_s:,.0f} s", flush=True)
    last_ms = first_ms + DAYS * _DAY_MS
    return MetricsData(url, n, events, first_ms, last_ms, load_s, refresh_s, refreshed)


def _vacuum(url: str) -> None:
    """What autovacuum does later on a live server: visibility map and statistics, so the
    reads can scan indexes only."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def _stem(n: int) -> str:
    return f"metrics-{n}-v{BUILDER_VERSION}-{schema_fingerprint()}"


def metrics_database(data_dir: Path, n: int) -> MetricsData:
    """The SQLite database, built once per size, shapes and schema, cached in ``data_dir``.

    Its sessions end where it was built: a reused one lies further in the past each day,
    so the scenario takes its 30-day window back from the newest session, not from now.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{_stem(n)}.db"
    facts = path.with_suffix(".json")
    if path.exists() and facts.exists():
        return MetricsData.load(facts)
    for old in data_dir.glob(f"metrics-{n}-*"):
        old.unlink()
    building = path.with_name(path.name + ".building")
    first_ms = int(time.time() * 1000) - DAYS * _DAY_MS
    data = _build(f"sqlite:///{building}", n, first_ms)
    for suffix in ("-wal", "-shm"):
        Path(str(building) + suffix).unlink(missing_ok=True)
    building.rename(path)
    data.url = f"sqlite:///{path}"
    data.save(facts)
    return data


def metrics_postgres_database(server: PgServer, data_dir: Path, n: int) -> MetricsData:
    """The same on the benchmarks' own PostgreSQL cluster, loaded once and kept."""
    name = _stem(n).replace("-", "_")
    facts = data_dir / f"{name}.json"
    names = [r[0] for r in server.admin("SELECT datname FROM pg_database")]
    if name in names and facts.exists():
        return MetricsData.load(facts)
    for old in names:
        if old.startswith(f"metrics_{n}_"):
            server.admin(f"DROP DATABASE {old}")
    building = name + "_building"
    server.admin(f"CREATE DATABASE {building}")
    first_ms = int(time.time() * 1000) - DAYS * _DAY_MS
    data = _build(server.url(building), n, first_ms, postgres=server)
    server.admin(f"ALTER DATABASE {building} RENAME TO {name}")
    data.url = server.url(name)
    data_dir.mkdir(parents=True, exist_ok=True)
    data.save(facts)
    return data
