"""Running wrk with a scenario's Lua script and reading the summary its ``done()`` prints."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LUA_DIR", "WrkResult", "combine", "run_wrk", "wrk_version"]

LUA_DIR = Path(__file__).parent / "lua"
_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "missing"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def run_wrk(
    url: str,
    scenario: str,
    args: list[str],
    *,
    seconds: float,
    connections: int,
    threads: int,
    work_dir: Path,
) -> WrkResult:
    """One wrk run; the scenario script gets ``args`` after its tag and thread count."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    script = work_dir / f"{scenario}.lua"
    script.write_text(
        (LUA_DIR / "common.lua").read_text() + (LUA_DIR / f"{scenario}.lua").read_text()
    )
    cmd = [
        "wrk", f"-t{threads}", f"-c{max(connections, threads)}", f"-d{max(1, round(seconds))}s",
        "--timeout", "30s", "-s", str(script), url, "--", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(lines[-1].removeprefix(_MARK))
    lat = data["latency_us"]
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        mean_ms=lat["mean"] / 1000,
    )


def combine(results: list[WrkResult]) -> WrkResult:
    """Rounds of one scenario as one result: totals summed, percentiles the rounds' median."""
    if len(results) == 1:
        return results[0]
    requests = sum(r.requests for r in results)
    return WrkResult(
        requests=requests,
        seconds=sum(r.seconds for r in results),
        errors={k: sum(r.errors.get(k, 0) for r in results) for k in results[0].errors},
        p50_ms=statistics.median(r.p50_ms for r in results),
        p90_ms=statistics.median(r.p90_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
        mean_ms=sum(r.mean_ms * r.requests for r in results) / requests if requests else 0.0,
    )
