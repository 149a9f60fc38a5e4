"""How ``searchtrail metrics`` prints its answers: aligned tables for people, flat CSV.

JSON is each answer's own ``model_dump_json``, as HTTP sends it; this module holds the
other two formats. In tables a rate is a percentage, ``mrr`` and ``mean_click_position``
have 3 decimals, times are whole milliseconds and a missing value (a ratio whose
denominator is 0) is ``-``; CSV writes numbers as they are and a missing one empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from searchtrail.metrics.definitions import MAX_POSITION
from searchtrail.models import (
    MetricsGroups,
    MetricsSummary,
    MetricValues,
    QueryLists,
    QuerySession,
    RankerComparison,
)

__all__ = [
    "FLAT_COLUMNS",
    "compare_csv",
    "compare_table",
    "flat",
    "metrics_csv",
    "metrics_table",
    "queries_csv",
    "queries_table",
    "sessions_csv",
    "sessions_table",
]

_SCALARS = (
    "sessions",
    "sessions_with_results",
    "sessions_with_interaction",
    "sessions_with_purchase",
    "zero_result_rate",
    "ctr",
    "conversion_rate",
    "mrr",
    "mean_click_position",
    "clicks",
    "interactions",
    "unshown_events",
)
FLAT_COLUMNS = (
    *_SCALARS,
    *(f"ctr_at_{k}" for k in range(1, MAX_POSITION + 1)),
    "ttfi_median_ms",
    "ttfi_p90_ms",
)
_RATES = {"zero_result_rate", "ctr", "conversion_rate"}
_TABLE_POSITIONS = 10  # ctr_at_position in the summary table: positions 1..10
_GROUP_POSITIONS = 3  # and in a table of groups: ctr@1..ctr@3


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def dec(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def flat(values: MetricValues) -> dict[str, Any]:
    """One set of metrics as flat columns (``FLAT_COLUMNS``)."""
    out: dict[str, Any] = {name: getattr(values, name) for name in _SCALARS}
    for k, v in enumerate(values.ctr_at_position, 1):
        out[f"ctr_at_{k}"] = v
    out["ttfi_median_ms"] = values.time_to_first_interaction_ms.median
    out["ttfi_p90_ms"] = values.time_to_first_interaction_ms.p90
    return out


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row]
        )
    return buffer.getvalue().rstrip("\n")


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Columns padded to their widest cell; ``align`` has an ``l`` or ``r`` per column (by
    default the first to the left, numbers to the right)."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]
    align = align or "l" + "r" * (len(header) - 1)
    lines = []
    for row in (header, *rows):
        cells = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _scope(answer: MetricsSummary | MetricsGroups | QueryLists | RankerComparison) -> str:
    since = answer.since or "the first session"
    until = answer.until or "now"
    irrelevant = "included" if answer.include_irrelevant else "excluded"
    return f"sessions created from {since} until {until}; irrelevant ones {irrelevant}"


def _value(name: str, value: Any) -> str:
    if name in _RATES:
        return pct(value)
    if name in ("mrr", "mean_click_position"):
        return dec(value)
    return str(value)


# -- the metrics --------------------------------------------------------------------------


def metrics_table(answer: MetricsSummary | MetricsGroups) -> str:
    if isinstance(answer, MetricsGroups):
        return f"{_scope(answer)}; by {answer.by}\n{_groups_table(answer)}"
    rows = [[name, _value(name, getattr(answer, name))] for name in _SCALARS]
    ttfi = answer.time_to_first_interaction_ms
    rows.append(["time_to_first_interaction_ms", f"median {ms(ttfi.median)}, p90 {ms(ttfi.p90)}"])
    shown = answer.ctr_at_position[:_TABLE_POSITIONS]
    rows.append([f"ctr_at_position 1..{len(shown)}", " ".join(pct(v) for v in shown)])
    width = max(len(name) for name, _ in rows)
    return "\n".join([_scope(answer), *(f"{n.ljust(width)}  {v}" for n, v in rows)])


_GROUP_HEADER = (
    "sessions", "w/results", "zero_res", "ctr", "conv", "mrr", "click_pos", "clicks",
    "ttfi_med_ms", *(f"ctr@{k}" for k in range(1, _GROUP_POSITIONS + 1)),
)  # fmt: skip


def _group_cells(m: MetricValues) -> list[str]:
    return [
        str(m.sessions),
        str(m.sessions_with_results),
        pct(m.zero_result_rate),
        pct(m.ctr),
        pct(m.conversion_rate),
        dec(m.mrr),
        dec(m.mean_click_position),
        str(m.clicks),
        ms(m.time_to_first_interaction_ms.median),
        *(pct(v) for v in m.ctr_at_position[:_GROUP_POSITIONS]),
    ]


def _key(key: str | int | None) -> str:
    return "(none)" if key is None else str(key)


def _groups_table(answer: MetricsGroups) -> str:
    if not answer.groups:
        return "(no sessions)"
    rows = [[_key(g.key), *_group_cells(g)] for g in answer.groups]
    return aligned([answer.by, *_GROUP_HEADER], rows)


def metrics_csv(answer: MetricsSummary | MetricsGroups) -> str:
    if isinstance(answer, MetricsGroups):
        rows = ([g.key, *flat(g).values()] for g in answer.groups)
        return _csv([answer.by, *FLAT_COLUMNS], rows)
    return _csv(FLAT_COLUMNS, [list(flat(answer).values())])


# -- the query lists ----------------------------------------------------------------------

_LISTS = (
    ("top", "top queries by sessions"),
    ("zero_results", "top queries by sessions without results"),
    ("no_interaction", "top queries by sessions with results but no interaction"),
)


def queries_table(answer: QueryLists) -> str:
    parts = [_scope(answer)]
    for name, title in _LISTS:
        entries = getattr(answer, name)
        parts.append(f"\n{title}")
        if not entries:
            parts.append("(none)")
            continue
        rows = [[q.query, *_group_cells(q)] for q in entries]
        parts.append(aligned(["query", *_GROUP_HEADER], rows))
    return "\n".join(parts)


def queries_csv(answer: QueryLists) -> str:
    rows = [
        [name, rank, q.query, *flat(q).values()]
        for name, _title in _LISTS
        for rank, q in enumerate(getattr(answer, name), 1)
    ]
    return _csv(["list", "rank", "query", *FLAT_COLUMNS], rows)


# -- the ranker comparison ----------------------------------------------------------------


def _diff(metric: str, x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.1f}pp" if metric in _RATES else f"{x:+.3f}"


def compare_table(answer: RankerComparison) -> str:
    rows = []
    for m in answer.metrics:
        ci = "-"
        if m.ci95 is not None:
            ci = f"[{_diff(m.metric, m.ci95[0])}, {_diff(m.metric, m.ci95[1])}]"
        value = pct if m.metric in _RATES else dec
        rows.append(
            [m.metric, value(m.a), value(m.b), _diff(m.metric, m.difference), ci, m.verdict]
        )
    table = aligned(["metric", "A", "B", "B - A", "95% interval", "verdict"], rows, "lrrrrl")
    lines = [
        _scope(answer),
        f"A: {answer.a} ({answer.sessions_a} sessions); B: {answer.b} ({answer.sessions_b} "
        "sessions); differences and verdicts are B against A",
        f"{answer.method}; {answer.resamples} resamples, seed {answer.seed}",
        table,
    ]
    il = answer.interleaving
    if il is not None:
        lines.append(
            f"interleaving: {il.sessions} sessions (A won {il.wins_a}, B won {il.wins_b}, "
            f"{il.ties} tied); preference for B {il.preference_b:+.3f} "
            f"[{il.ci95[0]:+.3f}, {il.ci95[1]:+.3f}]: {il.verdict}"
        )
    return "\n".join(lines)


def compare_csv(answer: RankerComparison) -> str:
    rows: list[list[Any]] = []
    for m in answer.metrics:
        low, high = m.ci95 if m.ci95 is not None else (None, None)
        rows.append([m.metric, m.a, m.b, m.difference, low, high, m.verdict])
    il = answer.interleaving
    if il is not None:
        rows.append(
            ["interleaving_preference_b", None, None, il.preference_b, *il.ci95, il.verdict]
        )
    return _csv(["metric", "a", "b", "difference", "ci95_low", "ci95_high", "verdict"], rows)


# -- a query's sessions -------------------------------------------------------------------


def sessions_table(sessions: Sequence[QuerySession]) -> str:
    if not sessions:
        return "(no sessions)"
    parts = []
    for s in sessions:
        notes = ["irrelevant"] if s.is_irrelevant else []
        if s.unshown_events:
            notes.append(f"{s.unshown_events} unshown events")
        head = f"{s.session_id}  {s.created_at}" + (f"  ({', '.join(notes)})" if notes else "")
        rows = [[str(r.position), r.object_id, ", ".join(r.interactions) or "-"] for r in s.results]
        body = aligned(["#", "object_id", "interactions"], rows, "rll") if rows else "no results"
        parts.append(head + "\n" + "\n".join(f"  {line}" for line in body.splitlines()))
    return "\n\n".join(parts)


def sessions_csv(sessions: Sequence[QuerySession]) -> str:
    rows: list[list[Any]] = []
    for s in sessions:
        head = [s.session_id, s.created_at, s.is_irrelevant, s.unshown_events]
        for r in s.results:
            rows.append([*head, r.position, r.object_id, " ".join(r.interactions)])
        if not s.results:
            rows.append([*head, None, None, None])
    header = ["session_id", "created_at", "is_irrelevant", "unshown_events", "position"]
    return _csv([*header, "object_id", "interactions"], rows)
