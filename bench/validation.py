"""In-process: µs to validate a push of 100 events and a registration of 10 results, with
searchtrail's models (``parse_json``, as the HTTP path calls it) and with plain pydantic
models of the same fields and types (``bench.lean``), alternating in the same seconds.

``python -m bench.validation`` prints the table; ``python -m bench --only validate`` puts
it in the report.
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.lean import PlainCreate, PlainPush
from searchtrail.limits import Limits
from searchtrail.models import SessionAddEventsRequest, SessionCreateRequest, parse_json

__all__ = ["VALIDATION_TARGET_CASE", "Case", "bodies", "measure", "render_table"]

# Epoch milliseconds of a recent event, as clients send them.
_MS = 1_764_000_000_000


def push_body(events: int, *, meta: bool) -> bytes:
    """A push as the bench's wrk script sends it; ``meta`` adds epoch-ms times and a meta."""
    evs: list[dict[str, Any]] = []
    for j in range(events):
        ev: dict[str, Any] = {"event_id": f"r1-7-{j}", "object_id": f"o{j}", "event_type": "click"}
        if meta:
            ev["created_at"] = _MS + j
            ev["meta"] = {"position": j, "page": "search", "device": "mobile", "ab": "B"}
        evs.append(ev)
    return json.dumps({"session_id": "bs42", "events": evs}).encode()


def create_body(results: int) -> bytes:
    return json.dumps(
        {
            "session_id": "r1-7",
            "search_query": "red shoes 7",
            "user_id": "u7",
            "search_results": [{"object_id": f"o{j}", "rank": j + 1} for j in range(results)],
        }
    ).encode()


@dataclass(frozen=True)
class Case:
    title: str
    body: bytes
    ours: Callable[[], object]
    plain: Callable[[], object]
    ours_us: float = 0.0
    plain_us: float = 0.0

    @property
    def ratio(self) -> float:
        return self.ours_us / self.plain_us if self.plain_us else 0.0


# The case of bodies() that targets.VALIDATION_OF_PLAIN is about.
VALIDATION_TARGET_CASE = 1


def bodies(limits: Limits | None = None) -> list[Case]:
    lim = limits or Limits()
    push_bare, push_full, create = (
        push_body(100, meta=False),
        push_body(100, meta=True),
        (create_body(10)),
    )
    return [
        Case(
            "push, 100 events, no meta or times",
            push_bare,
            lambda: parse_json(SessionAddEventsRequest, push_bare, lim),
            lambda: PlainPush.model_validate_json(push_bare),
        ),
        Case(
            "push, 100 events with meta (4 keys) and epoch-ms created_at",
            push_full,
            lambda: parse_json(SessionAddEventsRequest, push_full, lim),
            lambda: PlainPush.model_validate_json(push_full),
        ),
        Case(
            "create, 10 results",
            create,
            lambda: parse_json(SessionCreateRequest, create, lim),
            lambda: PlainCreate.model_validate_json(create),
        ),
    ]


def _best_us(fn: Callable[[], object], number: int) -> float:
    # CPU time: on a shared machine, the time the process waits for a core is not its own.
    return timeit.Timer(fn, timer=time.process_time).timeit(number=number) / number * 1e6


# A run's length: short, so that on a shared machine some runs fall in quiet moments.
_RUN_SECONDS = 0.003


def measure(seconds: float = 12.0) -> list[Case]:
    """Each case's best µs per call over short runs, ours and plain alternating run by
    run (so that load drifting on a shared machine hits both alike), ``seconds`` in all."""
    cases = bodies()
    out: list[Case] = []
    for case in cases:
        case.ours(), case.plain()  # warm: schemas, caches
        number = max(3, int(_RUN_SECONDS / max(1e-7, _once(case.ours))))
        ours: list[float] = []
        plain: list[float] = []
        end = time.perf_counter() + seconds / len(cases)
        while time.perf_counter() < end or len(ours) < 15:
            ours.append(_best_us(case.ours, number))
            plain.append(_best_us(case.plain, number))
        out.append(Case(case.title, case.body, case.ours, case.plain, min(ours), min(plain)))
    return out


def _once(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def render_table(cases: list[Case]) -> list[str]:
    lines = [
        "In-process validation (`python -m bench.validation`): `parse_json` with searchtrail's "
        "models against plain pydantic models of the same fields (`bench/lean.py`), "
        "alternating in short runs; the best run's CPU µs per body:",
        "",
        "| validating | searchtrail | plain pydantic | ratio |",
        "|---|---:|---:|---:|",
    ]
    for c in cases:
        lines.append(
            f"| {c.title} ({len(c.body):,} bytes) | {c.ours_us:,.1f} | {c.plain_us:,.1f} "
            f"| {c.ratio:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    p.add_argument("--seconds", type=float, default=12.0, help="total time measured [12]")
    a = p.parse_args(argv)
    print("\n".join(render_table(measure(a.seconds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
