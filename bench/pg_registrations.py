"""Registrations per second on PostgreSQL with 1, 2 and 4 processes registering at once.

Asks whether registrations slow each other down through the batch they join (they
share the batch gate, see store.py). Starts its own server like the tests (tests/pg.py).
The Python service path, not the database, bounds these numbers on a small machine.
Run from the repository root: ``.venv/bin/python bench/pg_registrations.py``.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pg import find_bindir, start_server

PER_PROCESS = 300


def _worker(url: str, worker: int, start: Any, out: Any) -> None:
    from searchtrail import Clickstream

    with Clickstream(url, create_schema=False) as cs:
        cs.create_session(session_id=f"warm{worker}")  # connect and import before timing
        start.wait()
        for i in range(PER_PROCESS):
            cs.create_session(session_id=f"w{worker}-{i}")
        out.put(worker)


def main() -> None:
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL binaries not found")
    server = start_server(bindir)
    try:
        ctx = mp.get_context("spawn")
        for procs in (1, 2, 4):
            url = server.new_database()
            start, out = ctx.Event(), ctx.Queue()
            ps = [ctx.Process(target=_worker, args=(url, w, start, out)) for w in range(procs)]
            for p in ps:
                p.start()
            time.sleep(4)  # every process connected and warm
            t0 = time.perf_counter()
            start.set()
            for _ in ps:
                out.get(timeout=300)
            wall = time.perf_counter() - t0
            for p in ps:
                p.join()
            n = procs * PER_PROCESS
            print(f"{procs} process(es): {n / wall:.0f} registrations/s ({n} in {wall:.2f} s)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
