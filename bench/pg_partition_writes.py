"""``python -m bench.pg_partition_writes [N]``: what the monthly partitions cost the hot
writes on PostgreSQL.

Two databases on one server the script starts: one at the head revision (events and
session_stats partitioned), one downgraded to 0007 (plain tables) and stamped at head
so that the same code opens it. Each round runs N registrations, then N pushes of 10
events, each its own transaction on one kept connection (the SQL of the hot path, no
group commit or HTTP), alternating the two databases; it prints the PostgreSQL
backend's CPU per write (from /proc, so waiting for a busy machine's cores counts less
than in wall time), median of the rounds after the first.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

from alembic import command
from tests.pg import find_bindir, start_server

from searchtrail import Clickstream, Settings
from searchtrail.models import SessionAddEventsRequest, SessionCreateRequest
from searchtrail.storage.sql import migrate
from searchtrail.storage.sql.dialects import dialect_for
from searchtrail.storage.sql.sessions import SqlSessions

ROUNDS = 11


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _as_0007(url: str) -> None:
    engine = dialect_for(url, busy_timeout_ms=30_000, synchronous="FULL", pool_size=1).engine()
    try:
        with engine.begin() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
            command.stamp(cfg, "head")
    finally:
        engine.dispose()


def main(n: int) -> None:
    bindir = find_bindir()
    assert bindir is not None, "needs PostgreSQL's binaries (apt-get install postgresql)"
    server = start_server(bindir)
    try:
        urls = {"partitioned": server.new_database(), "plain": server.new_database()}
        _as_0007(urls["plain"])
        stores = {k: Clickstream(settings=Settings(database_url=u)) for k, u in urls.items()}
        conns = {k: cs.storage.engine.connect() for k, cs in stores.items()}  # type: ignore[attr-defined]
        pid = "SELECT pg_backend_pid()"
        pids = {k: int(c.exec_driver_sql(pid).scalar_one()) for k, c in conns.items()}
        for c in conns.values():
            c.commit()
        spent: dict[str, dict[str, list[float]]] = {k: {"create": [], "push": []} for k in urls}
        for r in range(ROUNDS):
            for name in list(urls) if r % 2 else list(urls)[::-1]:
                cs, conn = stores[name], conns[name]
                sessions = cs.storage.sessions
                assert isinstance(sessions, SqlSessions)
                regs = [
                    cs._registration(SessionCreateRequest(
                        session_id=f"r{r}-{i}", created_at=None,
                        search_results=[{"object_id": f"o{k}"} for k in range(20)],
                    ))
                    for i in range(n)
                ]  # fmt: skip
                events = [{"event_id": f"e{k}", "object_id": f"o{k}"} for k in range(10)]
                pushes = [
                    cs._event_rows(SessionAddEventsRequest(session_id=f"r{r}-{i}", events=events))
                    for i in range(n)
                ]
                t0 = _cpu_s(pids[name])
                for row, now in regs:
                    with conn.begin():
                        sessions.register_write(row, now)(conn)
                t1 = _cpu_s(pids[name])
                for i, rows in enumerate(pushes):
                    with conn.begin():
                        sessions.store_events_write(f"r{r}-{i}", rows)(conn)
                t2 = _cpu_s(pids[name])
                if r:
                    spent[name]["create"].append((t1 - t0) / n * 1e6)
                    spent[name]["push"].append((t2 - t1) / n * 1e6)
        for c in conns.values():
            c.close()
        for cs in stores.values():
            cs.close()
        for op in ("create", "push"):
            p, q = (statistics.median(spent[k][op]) for k in ("partitioned", "plain"))
            print(f"{op}: backend CPU partitioned {p:.0f} us, plain {q:.0f} us ({p / q:.2f})")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
