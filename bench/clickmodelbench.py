"""The clickmodels scenario: read the click log from a big database and fit a model on it.

The database is the metrics scenario's (``bench.metricsdata``: 1,000,000 sessions of 10 to
20 results, 10 kept per session), built once and reused. Each model runs in a child
process of its own (``python -m bench.clickmodelbench URL NAME``) that reads the log
straight from the database (``read_click_log``, every relevant session), fits, and
reports its seconds and its own peak RSS, so one model's memory does not count against
the next. A name the registry does not know is reported as not available.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.metricsdata import MetricsData, metrics_database, metrics_postgres_database

if TYPE_CHECKING:
    from bench.runner import Bench

__all__ = ["ClickModelFit", "ClickModelRun", "run_clickmodels"]

MAX_POSITION = 10


@dataclass
class ClickModelFit:
    name: str
    available: bool
    read_s: float = 0.0
    fit_s: float = 0.0
    peak_rss: int = 0  # bytes
    sessions: int = 0
    pairs: int = 0
    iterations: int | None = None
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.read_s + self.fit_s


@dataclass
class ClickModelRun:
    data: MetricsData
    dialect: str
    fits: list[ClickModelFit] = field(default_factory=list)


def _child(url: str, name: str) -> ClickModelFit:
    done = subprocess.run(
        [sys.executable, "-m", "bench.clickmodelbench", url, name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return ClickModelFit(name, True, error=(done.stderr.strip().splitlines() or ["?"])[-1])
    return ClickModelFit(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_clickmodels(bench: Bench, n: int, names: list[str]) -> ClickModelRun:
    from searchtrail.clickmodels.registry import MODELS

    o = bench.o
    if bench.postgres is not None:
        data = metrics_postgres_database(bench.postgres, o.data_dir, n)
    else:
        data = metrics_database(o.data_dir, n)
    run = ClickModelRun(data, o.dialect)
    for name in names:
        if name not in MODELS:
            print(f"  {name}: not available (not in the registry)", flush=True)
            run.fits.append(ClickModelFit(name, False))
            continue
        print(f"  {name}: read and fit in a child process", flush=True)
        fit = _child(data.url, name)
        print(f"  {name}: {fit.read_s:.1f} s read, {fit.fit_s:.1f} s fit", flush=True)
        run.fits.append(fit)
    return run


def _measure(url: str, name: str) -> ClickModelFit:
    from searchtrail.clickmodels.log import read_click_log
    from searchtrail.clickmodels.registry import make
    from searchtrail.storage import MetricsScope
    from searchtrail.storage.sql import SqlStorage

    started = time.perf_counter()
    store = SqlStorage(url)
    try:
        log = read_click_log(store.reads, MetricsScope(), max_position=MAX_POSITION)
    finally:
        store.close()
    read_s = time.perf_counter() - started
    model = make(name)
    model.fit(log)
    fit_s = time.perf_counter() - read_s - started
    iterations = model.params().get("iterations")
    return ClickModelFit(
        name,
        True,
        read_s,
        fit_s,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
        log.sessions,
        log.pairs,
        iterations if isinstance(iterations, int) else None,
    )


if __name__ == "__main__":
    from dataclasses import asdict

    print(json.dumps(asdict(_measure(sys.argv[1], sys.argv[2]))))
