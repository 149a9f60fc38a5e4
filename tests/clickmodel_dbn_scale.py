"""Fit DBN on a synthetic log built in memory; print the fit's seconds and the peak RSS.

``python -m tests.clickmodel_dbn_scale [SESSIONS] [QUERIES]`` (1,000,000 sessions of
1,000 queries, 10 results each, by default) prints one JSON line: ``seconds`` (the fit
alone), ``peak_mb`` (VmHWM of this process: building the log included), ``iterations``
and the largest alpha error. The log is made with numpy (``build_click_log`` would loop in
Python over ten million results), DBN traffic with gamma = 0.8.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from searchtrail.clickmodels.dbn import DBN
from searchtrail.clickmodels.log import ClickLog
from tests.clickmodel_cascade_traffic import chain_clicks, parameters

RESULTS = 10


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def scale_log(sessions: int, queries: int, seed: int = 5) -> tuple[ClickLog, np.ndarray]:
    rng = np.random.default_rng(seed)
    alpha, sigma = parameters(rng, queries, RESULTS)
    query = rng.integers(queries, size=sessions).astype(np.int32)
    order = np.argsort(rng.random((sessions, RESULTS), dtype=np.float32), axis=1)
    click = chain_clicks(rng, alpha[query[:, None], order], sigma[query[:, None], order], 0.8)
    pair = (query[:, None] * RESULTS + order).astype(np.int32)
    log = ClickLog(
        pair,
        click,
        query,
        np.arange(sessions, dtype=np.int64),
        [f"q{q}" for q in range(queries)],
        np.repeat(np.arange(queries, dtype=np.int32), RESULTS),
        [f"q{q}-d{d}" for q in range(queries) for d in range(RESULTS)],
    )
    return log, alpha.ravel()


def main(sessions: int = 1_000_000, queries: int = 1_000) -> dict[str, float]:
    log, alpha = scale_log(sessions, queries)
    model = DBN()
    start = time.perf_counter()
    model.fit(log)
    seconds = time.perf_counter() - start
    return {
        "sessions": sessions,
        "seconds": round(seconds, 2),
        "peak_mb": round(_peak_mb()),
        "iterations": model.iterations,
        "gamma": round(model.gamma, 4),
        "max_alpha_error": round(float(np.abs(model.alpha - alpha).max()), 4),
    }


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))
