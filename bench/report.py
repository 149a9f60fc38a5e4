"""The Markdown report of one run (docs/benchmarks.md, docs/benchmarks-postgresql.md).

A report a reader takes in at once, at most ``MAX_LINES`` lines: the run's context, each
scenario's median and range over its rounds, the targets with their verdicts, what bounds
each profiled scenario (its top profile entries), and the command that reproduces it.
It holds only what the run measured; the reasons behind the design are in
docs/performance.md.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from bench import targets
from bench.metricsbench import EVENTS_PER_PUSH, PUSHES_PER_REQUEST
from bench.validation import VALIDATION_TARGET_CASE, render_table

if TYPE_CHECKING:
    from bench.profile import Profile
    from bench.runner import Run, ScenarioResult

__all__ = ["MAX_LINES", "SECTIONS", "render"]

MAX_LINES = 150
SECTIONS = (
    "## Context",
    "## Results",
    "## Targets",
    "## What bounds each scenario",
    "## Reproduce",
)
_MIB = 2**20
# Profile entries shown per list: enough to name what bounds a scenario.
_TOP = 5


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _share(res: ScenarioResult, ceiling: ScenarioResult) -> float:
    return res.rate / ceiling.rate if ceiling.rate else 0.0


def _targets(run: Run) -> list[tuple[str, str, bool]]:
    r = run.results
    out: list[tuple[str, str, bool]] = []
    for key, what in (("push", "with meta"), ("push_bare", "without meta")):
        if key in r and f"{key}_lean" in r:
            push, lean = r[key], r[f"{key}_lean"]
            measured = f"{_n(push.rate)} / {_n(lean.rate)} = {_share(push, lean):.0%}"
            if f"{key}_ceiling" in r:
                measured += f"; of searchtrail's ceiling {_share(push, r[f'{key}_ceiling']):.0%}"
            out.append(
                (
                    f"Push {what} ≥ {targets.PUSH_SHARE_OF_LEAN:.0%} of the lean ceiling's "
                    "events/s",
                    measured,
                    targets.push_met(push.rate, lean.rate),
                )
            )
    copied = [raw for raw in run.raw if raw.method == "PostgreSQL COPY"]
    pushed = r.get("push_bare") or r.get("push")  # the raw rows carry no meta either
    if pushed is not None and copied:
        # Against the COPY of a push's size committed alone, as a push's answer waits for
        # its commit; the bulk COPY's share is shown beside it.
        raw = min(copied, key=lambda c: c.rows_per_transaction)
        bulk = max(copied, key=lambda c: c.rows_per_transaction)
        out.append(
            (
                f"Push ≥ {targets.PUSH_SHARE_OF_COPY:.0%} of a raw COPY of the same rows "
                f"({raw.rows_per_transaction:,} per transaction)",
                f"{_n(pushed.rate)} / {_n(raw.rows_per_second)} = "
                f"{_pct(pushed.rate, raw.rows_per_second)}; of a COPY of "
                f"{bulk.rows_per_transaction:,} per transaction "
                f"{_pct(pushed.rate, bulk.rows_per_second)}",
                pushed.rate >= targets.PUSH_SHARE_OF_COPY * raw.rows_per_second,
            )
        )
    if "create" in r and "create_ceiling" in r:
        create, bare = r["create"], r["create_ceiling"]
        measured = f"{_n(create.rate)} / {_n(bare.rate)} = {_share(create, bare):.0%}"
        if "create_lean" in r:
            measured += f"; lean ceiling {_n(r['create_lean'].rate)}/s"
        if "create_floor" in r:
            measured += f"; an empty endpoint {_n(r['create_floor'].rate)}/s"
        share = targets.CREATE_SHARE_OF_CEILING[run.options.dialect]
        out.append(
            (
                f"Create sessions ≥ {share:.0%} of the ceiling's",
                measured,
                targets.create_met(create.rate, bare.rate, run.options.dialect),
            )
        )
    if run.validation:
        case = run.validation[VALIDATION_TARGET_CASE]
        out.append(
            (
                f"In-process: {case.title}, "
                f"≤ {targets.VALIDATION_OF_PLAIN:g} times plain pydantic's",
                f"{case.ours_us:,.0f} / {case.plain_us:,.0f} µs = {case.ratio:.2f}",
                targets.validation_met(case.ratio),
            )
        )
    if "get" in r:
        p99 = r["get"].wrk.p99_ms
        out.append(
            (
                f"Get session p99 < {targets.GET_P99_MS:g} ms (1 connection)",
                f"{p99:.2f} ms",
                targets.get_met(p99),
            )
        )
    for key, what in (("push", "Push events/s"), ("create", "Create sessions/s")):
        if key in r and f"{key}_baseline" in r:
            res, base = r[key], r[f"{key}_baseline"]
            out.append(
                (
                    f"{what} ≥ {targets.WRITE_SHARE_OF_BASELINE:.0%} of --baseline "
                    f"{run.baseline}'s",
                    f"{_n(res.rate)} / {_n(base.rate)} = {_share(res, base):.1%}",
                    targets.baseline_met(res.rate, base.rate),
                )
            )
    m = run.metrics
    if m is not None:
        for series in m.series:
            p95 = series.pct(95)
            out.append(
                (
                    f"Metrics: {series.title}, p95 < {targets.METRICS_P95_MS:g} ms",
                    f"{p95:.1f} ms",
                    targets.metrics_met(p95),
                )
            )
    c = run.clickmodels
    if c is not None:
        for fit in c.fits:
            if not fit.available or fit.error:
                continue
            out.append(
                (
                    f"Click model {fit.name}: read and fit {c.data.sessions:,} sessions "
                    f"< {targets.CLICKMODEL_SECONDS:g} s, peak RSS "
                    f"< {targets.CLICKMODEL_PEAK_BYTES / 2**30:g} GiB",
                    f"{fit.seconds:.1f} s, {fit.peak_rss / _MIB:,.0f} MiB",
                    targets.clickmodel_met(fit.seconds, fit.peak_rss),
                )
            )
    for imp in run.imports:
        out.append(
            (
                f"Import ≥ {targets.IMPORT_SHARE_OF_RAW:.0%} of the raw insert rate "
                f"({imp.dialect})",
                f"{_n(imp.import_per_second)} / {_n(imp.raw_per_second)} sessions/s "
                f"= {imp.ratio:.0%}",
                targets.import_met(imp.ratio),
            )
        )
    s = run.sustained
    if s is not None:
        out.append(
            (
                f"Memory flat under {s.seconds:.0f} s of pushes",
                f"{s.slope_mib_per_min:+.2f} MiB/min ({s.growth_mib:+.1f} MiB, "
                f"at most {s.allowed_mib:.1f} allowed)",
                s.flat,
            )
        )
    return out


def _context(run: Run) -> list[str]:
    o = run.options
    v = dict(run.versions)
    commit = v.get("searchtrail", "?").rpartition(" @ ")[2]
    if "wrk" in v:
        v["wrk"] = v["wrk"].split(" Copyright")[0].removeprefix("wrk ")
    cores = int(run.machine.get("cores (logical)", "1") or 1)
    database = (
        f"fresh SQLite files (WAL, synchronous={o.synchronous})"
        if o.database_url is None
        else o.dialect
    )
    lines = [
        f"- `{o.command}` at {commit}, started {run.started:%Y-%m-%d %H:%M} UTC, "
        f"took {run.seconds:,.0f} s.",
        "- Machine: " + "; ".join(f"{k} {val}" for k, val in run.machine.items()) + ".",
        "- Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items() if k != "searchtrail")
        + ".",
        f"- How loaded: CPU {run.busy_start:.0f}% busy (of {cores} cores) in the 2 s before "
        f"the run; load average {run.load_start:.2f} at start, {run.load_end:.2f} at end "
        "(the end counts the run's own server and wrk).",
        f"- Setup: wrk with {o.threads} thread(s) and {o.connections} connections, "
        f"{o.warmup:g} s warm-up, {o.duration:g} s measured per scenario (push and create in "
        f"{o.rounds} round{'s' if o.rounds > 1 else ''} alternating with their ceilings); "
        f"`searchtrail serve --workers {o.workers}`; database {database}.",
    ]
    if run.busy_start > 25:
        lines.append(
            "- **The machine was not quiet when this run started**: compare ratios taken in "
            "this run (push against its ceiling) rather than absolute rates."
        )
    return lines


def _range(res: ScenarioResult) -> str:
    rates = res.round_rates
    if len(rates) < 2:
        return "1 round"
    return f"{_n(min(rates))} to {_n(max(rates))} ({len(rates)} rounds)"


def _results(run: Run) -> list[str]:
    lines = [
        "Rate: the median of the scenario's rounds, then the range of its rounds. p50 and "
        "p99 from wrk (the rounds' median); peak RSS of the server with its child processes.",
        "",
        "| scenario | rate (median) | range of rounds | p50 | p99 | errors | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in run.results.values():
        w = res.wrk
        errors = ", ".join(f"{k} {v}" for k, v in w.errors.items() if v) or "0"
        lines.append(
            f"| {res.title} | {_n(res.rate)} {res.unit} | {_range(res)} | "
            f"{w.p50_ms:.2f} ms | {w.p99_ms:.2f} ms | {errors} | "
            f"{res.peak_rss / _MIB:,.0f} MiB |"
        )
    for raw in run.raw:
        lines.append(
            f"| Raw {raw.method}, {raw.rows_per_transaction:,} rows per transaction "
            f"(no HTTP, no service) | {_n(raw.rows_per_second)} events/s | 1 round | | | | |"
        )
    for imp in run.imports:
        lines.append(
            f"| Import of a JSONL dump ({imp.dialect}, {imp.sessions:,} sessions, "
            f"{imp.events:,} events) | {_n(imp.import_per_second)} sessions/s | 1 round "
            "| | | | |"
        )
        lines.append(
            f"| Raw insert of the same rows ({imp.dialect}, no validation) | "
            f"{_n(imp.raw_per_second)} sessions/s | 1 round | | | | |"
        )
    if run.validation:
        lines += ["", *render_table(run.validation)]
    lines += _metrics(run)
    lines += _clickmodels(run)
    lines += _prune(run)
    stored = [
        f"{res.title}: {res.rows_after:,}"
        for res in run.results.values()
        if res.rows_after is not None
    ]
    if stored:
        lines += [
            "",
            "Rows in the database afterwards (warm-up included): " + "; ".join(stored) + ".",
        ]
    s = run.sustained
    if s is not None:
        mib = [m / _MIB for _, m in s.samples] or [0.0]
        lines += [
            "",
            f"Memory under {s.seconds:.0f} s of sustained pushes: "
            f"{_n(s.wrk.rps * run.options.events_per_push)} events/s, p99 "
            f"{s.wrk.p99_ms:.2f} ms; RSS {mib[0]:,.1f} MiB at start, {max(mib):,.1f} at peak, "
            f"{mib[-1]:,.1f} at end; after the first tenth it rises "
            f"{s.slope_mib_per_min:+.2f} MiB/min: **{'flat' if s.flat else 'growing'}**.",
        ]
    return lines


def _metrics(run: Run) -> list[str]:
    m = run.metrics
    if m is None:
        return []
    d = m.data
    lines = [
        "",
        f"Metrics over HTTP on {d.sessions:,} sessions and {d.events:,} events "
        f"({d.events / d.sessions:.1f} per session) spread over 90 days, "
        f"{m.window_sessions:,} sessions in the 30-day window; loaded in {d.load_s:,.0f} s, "
        f"then the first refresh of all {d.refreshed:,} sessions took {d.refresh_s:,.0f} s "
        "(what the upgrade of such a database costs). One request at a time, the summary "
        f"and the series alternating, {m.requests} of each; with a fresh delta, "
        f"{PUSHES_PER_REQUEST} pushes of {EVENTS_PER_PUSH} events to sessions of the window "
        "before each request, so its own refresh has work:",
        "",
        "| request | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for series in m.series:
        lines.append(
            f"| {series.title} | {series.pct(50):.1f} ms | {series.pct(95):.1f} ms | "
            f"{series.pct(99):.1f} ms | {max(series.ms):.1f} ms |"
        )
    return lines


def _clickmodels(run: Run) -> list[str]:
    c = run.clickmodels
    if c is None:
        return []
    lines = [
        "",
        f"Click models on the metrics database ({c.dialect}, {c.data.sessions:,} sessions, "
        "10 results kept each), each in a process of its own: reading the log straight from "
        "the database, then fitting; peak RSS of that process:",
        "",
        "| model | sessions read | pairs | read | fit | iterations | total | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in c.fits:
        if not f.available:
            lines.append(f"| {f.name} | not available (not in the registry) | | | | | | |")
        elif f.error:
            lines.append(f"| {f.name} | failed: {f.error} | | | | | | |")
        else:
            lines.append(
                f"| {f.name} | {f.sessions:,} | {f.pairs:,} | {f.read_s:.1f} s | "
                f"{f.fit_s:.1f} s | {f.iterations if f.iterations is not None else ''} | "
                f"{f.seconds:.1f} s | {f.peak_rss / _MIB:,.0f} MiB |"
            )
    return lines


def _prune(run: Run) -> list[str]:
    p = run.prune
    if p is None:
        return []
    partitions, sessions, events, _queued = p.dropped
    return [
        "",
        f"Retention on PostgreSQL: {p.events:,} events in {p.sessions:,} sessions over "
        f"{p.months} months (loaded in {p.load_s:,.0f} s); the oldest {p.drop_months} months "
        "pruned on two copies of it:",
        "",
        "| prune | sessions | events | seconds |",
        "|---|---:|---:|---:|",
        f"| Drop {partitions} month partitions | {sessions:,} | {events:,} | {p.drop_s:,.2f} s |",
        f"| Row by row (DELETE) | {p.deleted[0]:,} | {p.deleted[1]:,} | {p.delete_s:,.2f} s |",
        "",
        f"The DELETE took {p.ratio:,.1f}x as long as dropping partitions; the rows and hourly "
        f"sums left are {'the same' if p.same_rows else '**not the same**'}.",
    ]


def _top(counts: Counter[str], samples: int, *, code: bool) -> str:
    return ", ".join(
        f"{f'`{name}`' if code else name} {_pct(n, samples)}"
        for name, n in counts.most_common(_TOP)
    )


def _profile(key: str, prof: Profile) -> list[str]:
    if not prof.samples:
        return [f"- **{key}**: profiled, but py-spy took no samples."]
    return [
        f"- **{key}** ({prof.samples:,} py-spy samples of the server's threads at 200 Hz):",
        f"  - layers, by leaf frame: {_top(prof.layers, prof.samples, code=False)};",
        f"  - hottest functions, self: {_top(prof.leaves, prof.samples, code=True)}.",
    ]


def _bounds(run: Run) -> list[str]:
    lines = [
        "py-spy profiles of the server while wrk drove it, taken where a target was missed "
        "(or with `--profile always`): the top entries of each.",
        "",
    ]
    for key, prof in run.profiles.items():
        lines += _profile(key, prof)
    unprofiled = [k for k in ("push", "create", "get") if k in run.results]
    unprofiled = [k for k in unprofiled if k not in run.profiles]
    if unprofiled:
        lines.append(f"- Not profiled in this run: {', '.join(unprofiled)}.")
    return lines


def _reproduce(run: Run) -> list[str]:
    return [
        "On a quiet machine (no other work on its cores), from the repository:",
        "",
        "```",
        run.options.command,
        "```",
    ]


def render(run: Run) -> str:
    o = run.options
    dialect = "PostgreSQL" if o.dialect == "postgresql" else "SQLite"
    lines = [
        f"# Benchmarks: {dialect}",
        "",
        "Generated by `scripts/bench` from one run; re-run it rather than edit. Why the "
        "service is built as it is, with before/after measurements: docs/performance.md.",
    ]
    if o.quick:
        lines += ["", "**Quick smoke run: the numbers mean little.**"]
    lines += ["", SECTIONS[0], "", *_context(run)]
    lines += ["", SECTIONS[1], "", *_results(run)]
    lines += ["", SECTIONS[2], "", "| target | measured | verdict |", "|---|---|---|"]
    for name, measured, ok in _targets(run):
        lines.append(f"| {name} | {measured} | {'**met**' if ok else '**missed**'} |")
    lines += ["", SECTIONS[3], "", *_bounds(run)]
    if run.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in run.notes)]
    lines += ["", SECTIONS[4], "", *_reproduce(run)]
    return "\n".join(lines) + "\n"
