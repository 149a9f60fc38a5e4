"""Erase and retention by row deletes, on SQLite and PostgreSQL: what a chunk costs.

``python -m bench.prunerate [SESSIONS] [--only sqlite|postgresql]`` loads SESSIONS
sessions (``tests.bulk``'s pattern, about 1.25 events each, one user in a thousand
sessions is ``target``) 60 days old into one archived batch, then times, on the same
database: an erase of ``target`` through ``ix_sessions_user_id``, an erase of another
user with the index dropped (a scan) and again with it, a dry run, and a prune of
everything in chunks. Ratios within one run are what to compare; absolute numbers depend
on the machine and its load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from sqlalchemy import text
from tests.bulk import session_rows
from tests.pg import find_bindir, start_server

from searchtrail import Clickstream
from searchtrail.timestamps import now_ms

DAY = 86_400_000


def _load(cs: Clickstream, n: int, at: int) -> None:
    for start in range(0, n, 10_000):
        rows: list[dict[str, Any]] = []
        evs: list[dict[str, Any]] = []
        for i in range(start, min(n, start + 10_000)):
            row, session_events = session_rows(i, "s", at)
            row["created_at_ms"] = at + i
            row["user_id"] = "target" if i % 1000 == 7 else f"u{i % 5000}"
            rows.append(row)
            evs.extend(session_events)
        cs.bulk_register(rows, evs)


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def run(url: str, label: str, n: int) -> str:
    with Clickstream(url) as cs:
        _load(cs, n, now_ms() - 60 * DAY)
        released = cs.release_batch({"release_id": "bench"})
        cs.set_batch_state(released.batch_id, "archived")
        events = cs.storage.count("events")
        engine = cs.storage.engine  # type: ignore[attr-defined]
        indexed, _ = _timed(cs.delete_user, "target")
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_sessions_user_id"))
        scanned, _ = _timed(cs.delete_user, "u1")
        with engine.begin() as conn:
            conn.execute(text("CREATE INDEX ix_sessions_user_id ON sessions (user_id)"))
        indexed_small, _ = _timed(cs.delete_user, "u2")
        dry, _ = _timed(cs.prune, dry_run=True, retention_days=30)
        full, pruned = _timed(cs.prune, retention_days=30)
    return (
        f"{label}: {n} sessions, {events} events. Erase: {n // 1000} sessions by the index "
        f"{indexed * 1000:.1f} ms; {n // 5000} sessions by the index "
        f"{indexed_small * 1000:.1f} ms, by a scan {scanned * 1000:.1f} ms. "
        f"Dry run {dry:.2f} s. Prune {pruned.sessions} "
        f"sessions, {pruned.events} events in {pruned.chunks} chunks: {full:.2f} s "
        f"({pruned.sessions / full:.0f} sessions/s, {full / pruned.chunks * 1000:.0f} ms a chunk)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sessions", type=int, nargs="?", default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.only != "postgresql":
        print(run(f"sqlite:///{tempfile.mkdtemp()}/prune.db", "sqlite", args.sessions))
    if args.only != "sqlite":
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
        server = start_server(bindir)
        try:
            print(run(server.fresh_database(), "postgresql", args.sessions))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
