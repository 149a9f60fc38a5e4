"""``python -m bench`` (or ``scripts/bench``): every scenario, one report, no manual step.

Each HTTP scenario gets a fresh database and its own server process on a free port;
wrk, in its own process, drives it. Servers are stopped when their scenario ends and,
whatever happens (failure, Ctrl-C, SIGTERM), when the run ends. ``--dialect postgresql``
runs the same scenarios on a PostgreSQL server started for the run (as the tests start
theirs, but with PostgreSQL's default durability).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.pg import PgServer, find_bindir, major_version, start_server

from bench.baseline import baseline_env, baseline_schema, baseline_tree
from bench.clickmodelbench import ClickModelRun, run_clickmodels
from bench.data import (
    big_database,
    big_postgres_database,
    fresh_database,
    load_sessions,
    postgres_database_files,
)
from bench.importrate import ImportRate, import_rate, make_dump
from bench.machine import REPO, cpu_busy, load_average, machine, versions
from bench.metricsbench import MetricsRun, run_metrics
from bench.metricsdata import DAYS
from bench.procs import (
    RssSampler,
    Server,
    Servers,
    catch_interrupts,
    check_interrupt,
    free_port,
    interrupts_held,
)
from bench.profile import Profile, record
from bench.prunebench import PruneRun, run_prune
from bench.rawinsert import RawInsert, raw_copy_rate, raw_insert_rate
from bench.report import render
from bench.targets import create_met, get_met, push_met
from bench.validation import Case, measure
from bench.wrk import WrkResult, combine, run_wrk
from searchtrail.storage.sql import SqlStorage, normalize_database_url

__all__ = ["SCENARIOS", "Options", "Run", "ScenarioResult", "main"]

SCENARIOS = (
    "validate",
    "push",
    "create",
    "get",
    "raw",
    "sustain",
    "import",
    "metrics",
    "clickmodels",
    "prune",
)
# On our own PostgreSQL server, the database every scenario but the get writes to.
PG_WORK_DATABASE = "bench"


@dataclass
class Options:
    duration: float
    warmup: float
    sustain: float
    raw_seconds: float
    connections: int
    threads: int
    workers: int
    database_url: str | None
    dialect: str
    get_sessions: int
    events_per_session: int
    results: int
    push_sessions: int
    events_per_push: int
    data_dir: Path
    out: Path
    profile: str
    profile_seconds: float
    quick: bool
    rounds: int
    command: str
    synchronous: str
    only: list[str]
    import_sessions: int = 1_000_000
    metrics_sessions: int = 1_000_000
    metrics_requests: int = 200
    baseline: str | None = None
    clickmodel_sessions: int = 1_000_000
    clickmodels: list[str] = field(default_factory=lambda: ["pbm", "dbn"])
    prune_events: int = 10_000_000
    prune_months: int = 4
    prune_drop_months: int = 3


@dataclass
class ScenarioResult:
    name: str
    title: str
    unit: str
    wrk: WrkResult
    per_request: int = 1
    peak_rss: int = 0
    rows_after: int | None = None
    note: str = ""
    # Each round's own result where the scenario ran in rounds; ``wrk`` combines them.
    rounds: list[WrkResult] = field(default_factory=list)

    @property
    def round_rates(self) -> list[float]:
        return [r.rps * self.per_request for r in self.rounds or [self.wrk]]

    @property
    def rate(self) -> float:
        """The median of the rounds' rates, so one disturbed round does not move it."""
        return statistics.median(self.round_rates)


@dataclass
class Sustained:
    seconds: float
    samples: list[tuple[float, int]]
    slope_mib_per_min: float
    growth_mib: float
    allowed_mib: float
    wrk: WrkResult

    @property
    def flat(self) -> bool:
        return self.growth_mib <= self.allowed_mib


@dataclass
class Run:
    options: Options
    started: datetime
    load_start: float
    busy_start: float
    machine: dict[str, str]
    versions: dict[str, str]
    load_end: float = 0.0
    seconds: float = 0.0
    results: dict[str, ScenarioResult] = field(default_factory=dict)
    raw: list[RawInsert] = field(default_factory=list)
    imports: list[ImportRate] = field(default_factory=list)
    metrics: MetricsRun | None = None
    clickmodels: ClickModelRun | None = None
    prune: PruneRun | None = None
    validation: list[Case] | None = None
    baseline: str | None = None
    sustained: Sustained | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short smoke run on small data")
    p.add_argument("--duration", type=float, help="seconds of load per scenario [20; quick 3]")
    p.add_argument(
        "--rounds",
        type=int,
        help="alternating ceiling/push rounds sharing --duration each [4; quick 1]",
    )
    p.add_argument("--warmup", type=float, help="seconds of load before each measure [3; quick 1]")
    p.add_argument("--sustain", type=float, help="seconds of the memory run [60; quick 5]")
    p.add_argument("--raw-seconds", type=float, help="seconds per raw insert run [10; quick 2]")
    p.add_argument("--connections", type=int, default=16, help="wrk connections [16]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads [1]")
    p.add_argument("--workers", type=int, default=1, help="server worker processes [1]")
    p.add_argument(
        "--database-url",
        help="run the scenarios on this database instead of fresh SQLite files; "
        "EVERY TABLE IN IT IS DROPPED (e.g. postgresql://bench:bench@127.0.0.1/bench)",
    )
    p.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="the server's SEARCHTRAIL_SQLITE_SYNCHRONOUS [FULL]",
    )
    p.add_argument(
        "--dialect",
        choices=["sqlite", "postgresql"],
        help="inferred from the URL; postgresql without a URL starts a throwaway server "
        "from the installed binaries, with PostgreSQL's default durability",
    )
    p.add_argument(
        "--get-sessions",
        type=int,
        help="sessions in the get database [1000000; 100000 on a --database-url server, "
        "loaded each run]",
    )
    p.add_argument("--events-per-session", type=int, default=10, help="its events each [10]")
    p.add_argument("--results", type=int, default=20, help="results per created session [20]")
    p.add_argument("--push-sessions", type=int, help="sessions pushed to [10000; quick 1000]")
    p.add_argument(
        "--import-sessions",
        type=int,
        help="sessions in the import scenario's dump, 10 results and 10 events each "
        "[1000000; quick 2000]",
    )
    p.add_argument("--events-per-push", type=int, default=100, help="events per push [100]")
    p.add_argument(
        "--metrics-sessions",
        type=int,
        help="sessions in the metrics scenario's database, 10 events each on average over "
        f"{DAYS} days [1000000; quick 20000]",
    )
    p.add_argument(
        "--metrics-requests",
        type=int,
        help="requests of each metrics measurement [200; quick 20]",
    )
    p.add_argument(
        "--clickmodel-sessions",
        type=int,
        help="sessions of the metrics scenario's database the clickmodels scenario reads "
        "[1000000; quick 20000]",
    )
    p.add_argument(
        "--clickmodels",
        default="pbm,dbn",
        help="comma-separated click models the clickmodels scenario reads and fits, each in "
        "a process of its own [pbm,dbn]",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="push and create also run the code at REV (a git worktree of it, this venv), "
        "each server on its own fresh database, in the same alternating rounds",
    )
    p.add_argument(
        "--prune-events",
        type=int,
        help="events in the prune scenario's database (PostgreSQL), 10 per session "
        "[10000000; quick 20000]",
    )
    p.add_argument("--prune-months", type=int, default=4, help="months they span, to this one [4]")
    p.add_argument("--prune-drop-months", type=int, default=3, help="the oldest months pruned [3]")
    p.add_argument("--data-dir", type=Path, default=REPO / "bench" / ".data")
    p.add_argument(
        "--out",
        type=Path,
        help="the report [docs/benchmarks.md; PostgreSQL docs/benchmarks-postgresql.md]",
    )
    p.add_argument(
        "--profile",
        choices=["auto", "always", "never"],
        default=None,
        help="py-spy the server: where a target is missed [auto; quick never]",
    )
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (the report has only those)",
    )
    a = p.parse_args(argv)
    if a.only and (unknown := set(a.only.split(",")) - set(SCENARIOS)):
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    q = a.quick

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if q else full)

    url = a.database_url
    dialect = a.dialect or ("sqlite" if url is None else _dialect(url))
    own_server = url is None and dialect == "postgresql"
    if own_server and find_bindir() is None:
        p.error(
            "--dialect postgresql without --database-url starts its own server, but no "
            "PostgreSQL binaries were found (Debian: apt-get install postgresql)"
        )
    if a.baseline and url is not None:
        p.error("--baseline needs databases of its own: SQLite files, or --dialect postgresql")
    # On a server that is not ours the get database is loaded on every run.
    get_sessions_full = 100_000 if url is not None and dialect == "postgresql" else 1_000_000
    out = a.out or REPO / "docs" / (
        "benchmarks-postgresql.md" if dialect == "postgresql" else "benchmarks.md"
    )
    return Options(
        duration=pick(a.duration, 20.0, 3.0),
        warmup=pick(a.warmup, 3.0, 1.0),
        rounds=max(1, pick(a.rounds, 4, 1)),
        sustain=pick(a.sustain, 60.0, 5.0),
        raw_seconds=pick(a.raw_seconds, 10.0, 2.0),
        connections=a.connections,
        threads=a.threads,
        workers=a.workers,
        database_url=url,
        dialect=dialect,
        get_sessions=pick(a.get_sessions, get_sessions_full, 10_000),
        events_per_session=a.events_per_session,
        results=a.results,
        push_sessions=pick(a.push_sessions, 10_000, 1_000),
        import_sessions=pick(a.import_sessions, 1_000_000, 2_000),
        metrics_sessions=pick(a.metrics_sessions, 1_000_000, 20_000),
        metrics_requests=pick(a.metrics_requests, 200, 20),
        baseline=a.baseline,
        clickmodel_sessions=pick(a.clickmodel_sessions, 1_000_000, 20_000),
        clickmodels=[name for name in a.clickmodels.split(",") if name],
        prune_events=pick(a.prune_events, 10_000_000, 20_000),
        prune_months=a.prune_months,
        prune_drop_months=a.prune_drop_months,
        events_per_push=a.events_per_push,
        data_dir=a.data_dir.resolve(),
        out=out.resolve(),
        profile=pick(a.profile, "auto", "never"),
        profile_seconds=a.profile_seconds,
        quick=q,
        only=a.only.split(",") if a.only else list(SCENARIOS),
        synchronous=a.sqlite_synchronous,
        command=" ".join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])]),
    )


def _dialect(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(normalize_database_url(url)).get_backend_name()


class Bench:
    """One run: owns the servers, the scratch directory and the results."""

    def __init__(
        self,
        opts: Options,
        servers: Servers,
        scratch: Path,
        run: Run,
        postgres: PgServer | None = None,
    ) -> None:
        self.o = opts
        self.servers = servers
        self.scratch = scratch
        self.run = run
        self.postgres = postgres
        self._tags = 0
        # --baseline: the worktree's src, where its server imports searchtrail from.
        self.baseline_src: Path | None = None

    # -- plumbing ---------------------------------------------------------------

    def tag(self) -> str:
        self._tags += 1
        return f"r{self._tags}"

    def db_url(self, name: str) -> str:
        if self.o.database_url:
            return self.o.database_url
        return f"sqlite:///{self.scratch / name}.db"

    def serve(self, url: str, *, baseline: bool = False) -> Server:
        port = free_port()
        args = [
            "-m", "searchtrail.cli", "serve", "--port", str(port), "--database-url", url,
            "--log-level", "warning", "--workers", str(self.o.workers),
        ]  # fmt: skip
        env = {"SEARCHTRAIL_SQLITE_SYNCHRONOUS": self.o.synchronous}
        if baseline:
            assert self.baseline_src is not None
            env |= baseline_env(self.baseline_src)
        return self.servers.start("baseline" if baseline else "searchtrail", args, port, env=env)

    def baseline_database(self, name: str) -> str | None:
        """A fresh database in the baseline's own schema, or None without --baseline."""
        if self.baseline_src is None:
            return None
        if self.postgres is not None:
            self.postgres.admin(f"DROP DATABASE IF EXISTS {name}")
            self.postgres.admin(f"CREATE DATABASE {name}")
            url = self.postgres.url(name)
        else:
            url = f"sqlite:///{self.scratch / name}.db"
        baseline_schema(self.baseline_src, normalize_database_url(url))
        return url

    def wrk(
        self,
        server: Server,
        scenario: str,
        args: list[str],
        seconds: float,
        connections: int | None = None,
    ) -> WrkResult:
        check_interrupt()
        return run_wrk(
            server.url,
            scenario,
            [self.tag(), str(self.o.threads), *args],
            seconds=seconds,
            connections=connections or self.o.connections,
            threads=self.o.threads,
            work_dir=self.scratch,
        )

    def measure(
        self,
        server: Server,
        scenario: str,
        args: list[str],
        seconds: float,
        connections: int | None = None,
    ) -> tuple[WrkResult, RssSampler]:
        if self.o.warmup > 0:
            self.wrk(server, scenario, args, self.o.warmup, connections)
        with RssSampler(server.pid) as rss:
            result = self.wrk(server, scenario, args, seconds, connections)
        return result, rss

    def profile(self, key: str, server: Server, scenario: str, args: list[str]) -> None:
        """Sample the server with py-spy while wrk keeps it busy."""
        seconds = self.o.profile_seconds
        print(f"  profiling {key} for {seconds:.0f} s", flush=True)
        load = threading.Thread(target=self.wrk, args=(server, scenario, args, seconds + 2))
        load.start()
        try:
            time.sleep(0.5)
            self.run.profiles[key] = record(server.pid, seconds, self.scratch / f"{key}.spy")
        finally:
            load.join()

    def wants_profile(self, missed: bool) -> bool:
        return self.o.profile == "always" or (self.o.profile == "auto" and missed)

    def rows(self, url: str, table: str) -> int:
        store = SqlStorage(url)
        try:
            return store.count(table)
        finally:
            store.close()

    def push_args(self, *, meta: bool = True) -> list[str]:
        """The push script's: events with meta and epoch-ms times, or the older body
        without meta."""
        args = [str(self.o.push_sessions), str(self.o.events_per_push), "bs"]
        return [*args, "meta"] if meta else args

    def push_database(self, name: str) -> str:
        url = self.db_url(name)
        fresh_database(url)
        load_sessions(url, self.o.push_sessions, prefix="bs", results=self.o.results)
        return url

    def baseline_push_database(self) -> str | None:
        url = self.baseline_database("push_baseline")
        if url is not None:
            load_sessions(url, self.o.push_sessions, prefix="bs", results=self.o.results)
        return url

    # -- scenarios ----------------------------------------------------------------

    def ceiling(self, factory: str) -> Server:
        """A ceiling app of bench.ceiling, under the same uvicorn settings as the other."""
        port = free_port()
        args = [
            "-m", "uvicorn", f"bench.ceiling:{factory}", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(self.o.workers), "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
        return self.servers.start("ceiling", args, port)

    def against_ceiling(
        self,
        key: str,
        args: list[str],
        url: str,
        *,
        titles: tuple[str, str, str],
        unit: str,
        per: int = 1,
        missed: Callable[[ScenarioResult, ScenarioResult, ScenarioResult], bool],
        table: str,
        floor: tuple[str, str] | None = None,
        baseline_url: str | None = None,
        script: str | None = None,
    ) -> None:
        """The ceilings and searchtrail in alternating rounds, so drifting load hits all alike.

        All get the same wrk script (``script``, else ``key``) and the same requests; the
        ceiling's result is ``{key}_ceiling``, the lean ceiling's (plain pydantic models,
        ``titles[2]``) ``{key}_lean``. Searchtrail is profiled when ``missed(result,
        ceiling, lean)``, and the rows of ``table`` are counted after. A ``floor`` (its
        title, and the ceiling app's path given to the script) joins as ``{key}_floor``.
        """
        script = script or key
        ceiling = self.ceiling("create_app")
        lean = self.ceiling("create_lean_app")
        server = self.serve(url)
        per_round = max(1.0, self.o.duration / self.o.rounds)
        targets = [("ceiling", ceiling, args), ("lean", lean, args), (key, server, args)]
        if floor is not None:
            targets.insert(0, ("floor", ceiling, [*args, floor[1]]))
        base = None if baseline_url is None else self.serve(baseline_url, baseline=True)
        if base is not None:
            targets.append(("baseline", base, args))
        measured: dict[str, list[WrkResult]] = {name: [] for name, _, _ in targets}
        peaks = dict.fromkeys(measured, 0)
        try:
            for _, target, target_args in targets:
                if self.o.warmup > 0:
                    self.wrk(target, script, target_args, self.o.warmup)
            for _ in range(self.o.rounds):
                for name, target, target_args in targets:
                    with RssSampler(target.pid) as rss:
                        measured[name].append(self.wrk(target, script, target_args, per_round))
                    peaks[name] = max(peaks[name], rss.peak)
            self.servers.stop(ceiling)
            self.servers.stop(lean)
            if base is not None:
                self.servers.stop(base)
                self.run.results[f"{key}_baseline"] = ScenarioResult(
                    f"{key}_baseline", f"{titles[1]} at --baseline {self.o.baseline}", unit,
                    combine(measured["baseline"]), per, peaks["baseline"],
                    rounds=measured["baseline"],
                )  # fmt: skip
            if floor is not None:
                self.run.results[f"{key}_floor"] = ScenarioResult(
                    f"{key}_floor", floor[0], unit, combine(measured["floor"]), per,
                    peaks["floor"], rounds=measured["floor"],
                )  # fmt: skip
            bare = ScenarioResult(
                f"{key}_ceiling", titles[0], unit, combine(measured["ceiling"]), per,
                peaks["ceiling"], rounds=measured["ceiling"],
            )  # fmt: skip
            plain = ScenarioResult(
                f"{key}_lean", titles[2], unit, combine(measured["lean"]), per,
                peaks["lean"], rounds=measured["lean"],
            )  # fmt: skip
            res = ScenarioResult(
                key, titles[1], unit, combine(measured[key]), per, peaks[key],
                rounds=measured[key],
            )  # fmt: skip
            self.run.results[bare.name] = bare
            self.run.results[plain.name] = plain
            self.run.results[key] = res
            if self.wants_profile(missed(res, bare, plain)):
                self.profile(key, server, script, args)
        finally:
            self.servers.stop(ceiling)
            self.servers.stop(lean)
            self.servers.stop(server)
            if base is not None:
                self.servers.stop(base)
        res.rows_after = self.rows(url, table)

    def validate(self) -> None:
        seconds = 2.0 if self.o.quick else 30.0
        print(f"validate: in-process, searchtrail's models and plain ones, {seconds:g} s")
        self.run.validation = measure(seconds)

    def push(self) -> None:
        """Events as clients send them (meta, epoch-ms times), then the older body without
        meta; each against both ceilings."""
        per = self.o.events_per_push
        for key, meta, what in (("push", True, "with meta"), ("push_bare", False, "no meta")):
            print(f"{key} and ceilings: {per} events {what}, {self.o.rounds} round(s)", flush=True)
            self.against_ceiling(
                key, self.push_args(meta=meta), self.push_database(key),
                titles=(
                    f"Ceiling: validate a push, store nothing ({what})",
                    f"Push events ({per} per request) {what}",
                    f"Lean ceiling: plain pydantic models, a push {what}",
                ),
                unit="events/s", per=per,
                missed=lambda res, _bare, lean: not push_met(res.rate, lean.rate),
                table="events", script="push",
                baseline_url=self.baseline_push_database() if meta else None,
            )  # fmt: skip

    def create(self) -> None:
        n = self.o.results
        print(f"create and its ceiling: sessions with {n} results each", flush=True)
        url = self.db_url("create")
        fresh_database(url)
        self.against_ceiling(
            "create", [str(n)], url,
            titles=(
                "Ceiling: validate a registration, store nothing",
                f"Create sessions ({n} results each)",
                "Lean ceiling: plain pydantic models, a registration",
            ),
            unit="sessions/s",
            missed=lambda res, bare, _lean: not create_met(res.rate, bare.rate, self.o.dialect),
            table="sessions",
            floor=("Floor: an empty endpoint that reads the registration and answers {}", "/empty"),
            baseline_url=self.baseline_database("create_baseline"),
        )  # fmt: skip

    def get(self) -> None:
        n, per = self.o.get_sessions, self.o.events_per_session
        print(f"get: a session with {per} events among {n:,} sessions", flush=True)
        if self.postgres is not None:
            url = big_postgres_database(self.postgres, n, per, 10)
            # The scenarios before wrote a million rows or so to the same server: dropped
            # and flushed now, autovacuum and the checkpointer do not work on them while the
            # get is measured.
            _fresh_work_database(self.postgres)
            self.postgres.admin("CHECKPOINT")
            self.run.notes.append(
                "Before the get scenario the PostgreSQL server drops the database the push and "
                "create scenarios wrote (their rows were counted) and checkpoints, so neither "
                "autovacuum nor the checkpointer works on those writes while the get is measured."
            )
            for path in postgres_database_files(self.postgres, url):
                _read_through(path)
        elif self.o.database_url:
            url = self.o.database_url
            fresh_database(url)
            load_sessions(url, n, prefix="s", results=10, events_per_session=per, progress=True)
        else:
            path = big_database(self.o.data_dir, n, per, 10)
            _read_through(path)
            url = f"sqlite:///{path}"
        server = self.serve(url)
        args = [str(n), "s"]
        what = f"Get a session ({per} events) among {n:,} sessions, {n * per:,} events"
        try:
            # Latency first, one request at a time: under saturation p99 is mostly queueing.
            result, rss = self.measure(server, "get", args, self.o.duration, connections=1)
            res = ScenarioResult("get", f"{what}, 1 connection", "requests/s", result, 1, rss.peak)
            self.run.results["get"] = res
            result, rss = self.measure(server, "get", args, self.o.duration)
            self.run.results["get_load"] = ScenarioResult(
                "get_load", f"{what}, {self.o.connections} connections", "requests/s",
                result, 1, rss.peak,
            )  # fmt: skip
            if self.wants_profile(not get_met(res.wrk.p99_ms)):
                self.profile("get", server, "get", args)
        finally:
            self.servers.stop(server)

    def raw(self) -> None:
        for per_txn in (self.o.events_per_push, 100_000):
            print(f"raw insert: {per_txn:,} rows per transaction", flush=True)
            if self.o.dialect != "sqlite":
                self.run.raw.append(
                    raw_copy_rate(
                        self.db_url(f"raw_{per_txn}"),
                        seconds=self.o.raw_seconds,
                        rows_per_transaction=per_txn,
                        sessions=self.o.push_sessions,
                        events_per_push=self.o.events_per_push,
                    )
                )
                continue
            self.run.raw.append(
                raw_insert_rate(
                    self.scratch / f"raw-{per_txn}.db",
                    seconds=self.o.raw_seconds,
                    rows_per_transaction=per_txn,
                    sessions=self.o.push_sessions,
                    events_per_push=self.o.events_per_push,
                    synchronous=self.o.synchronous,
                )
            )

    def import_(self) -> None:
        n = self.o.import_sessions
        print(f"import: a dump of {n:,} sessions (10 results, 10 events each)", flush=True)
        dump = make_dump(self.scratch, n, events_per_session=10, results=10)
        if self.o.database_url is not None:
            target = raw = self.o.database_url
        else:
            target = f"sqlite:///{self.scratch / 'import-target.db'}"
            raw = f"sqlite:///{self.scratch / 'import-raw.db'}"
        print("import: searchtrail import, then the same rows raw", flush=True)
        self.run.imports.append(import_rate(dump, target, raw, sessions_n=n, events_per_session=10))

    def sustain(self) -> None:
        seconds = self.o.sustain
        print(f"sustained push for {seconds:.0f} s, RSS every second", flush=True)
        url = self.push_database("sustain")
        server = self.serve(url)
        try:
            with RssSampler(server.pid, 1.0) as rss:
                result = self.wrk(server, "push", self.push_args(), seconds)
        finally:
            self.servers.stop(server)
        samples = rss.samples
        # The first tenth is warm-up: pools, caches and connections fill once.
        steady = [(t, m) for t, m in samples if t >= 0.1 * seconds] or samples
        if len(steady) >= 2 and len({t for t, _ in steady}) >= 2:
            slope = statistics.linear_regression([t for t, _ in steady], [m for _, m in steady])
            per_sec = slope.slope
        else:
            per_sec = 0.0
        window = steady[-1][0] - steady[0][0] if steady else 0.0
        median = statistics.median(m for _, m in steady) if steady else 0
        mib = 2**20
        self.run.sustained = Sustained(
            seconds=seconds,
            samples=samples,
            slope_mib_per_min=per_sec * 60 / mib,
            growth_mib=per_sec * window / mib,
            allowed_mib=max(2.0, 0.02 * median / mib),
            wrk=result,
        )

    def metrics(self) -> None:
        n = self.o.metrics_sessions
        print(
            f"metrics: the {n:,}-session database, then the 30-day summary and series", flush=True
        )
        self.run.metrics = run_metrics(self, n, self.o.metrics_requests)

    def clickmodels(self) -> None:
        n = self.o.clickmodel_sessions
        print(
            f"clickmodels: read {n:,} sessions and fit {','.join(self.o.clickmodels)}", flush=True
        )
        self.run.clickmodels = run_clickmodels(self, n, self.o.clickmodels)

    def prune(self) -> None:
        if self.postgres is None:
            self.run.notes.append(
                "Prune: not run (PostgreSQL's partitions, on a server the run starts: "
                "`--dialect postgresql --only prune`)."
            )
            return
        o = self.o
        self.run.prune = run_prune(
            self.postgres, o.prune_events, o.prune_months, o.prune_drop_months
        )


def _fresh_work_database(server: PgServer) -> None:
    server.admin(f"DROP DATABASE IF EXISTS {PG_WORK_DATABASE}")
    server.admin(f"CREATE DATABASE {PG_WORK_DATABASE}")


@contextmanager
def _postgres(opts: Options) -> Iterator[PgServer | None]:
    """Our own PostgreSQL server when one was asked for without a URL; stopped after.

    Its cluster is kept in the data folder, so the get database is loaded once per size
    and schema (``big_postgres_database``), as the SQLite one is built once.
    """
    if opts.dialect != "postgresql" or opts.database_url is not None:
        yield None
        return
    bindir = find_bindir()
    assert bindir is not None  # parse_args checked
    print("starting a PostgreSQL server", flush=True)
    # Interrupted inside pg_ctl, the postmaster it started would be left running.
    with interrupts_held():
        server = start_server(
            bindir,
            durable=True,
            shared_buffers="256MB",
            root=opts.data_dir / f"postgres-{major_version(bindir)}",
            template=False,
        )
    try:
        _fresh_work_database(server)
        yield server
    finally:
        server.stop()


def _read_through(path: Path) -> None:
    """Load the file into the OS page cache, as it is on a server that has been running."""
    with path.open("rb") as f:
        while f.read(16 * 2**20):
            pass


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    catch_interrupts()
    try:
        return _run(opts)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, no report written", file=sys.stderr)
        return 130


def _run(opts: Options) -> int:
    """The whole run; an interrupt anywhere in it (the machine's facts are read with child
    processes too) ends it with no report."""
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    run = Run(
        options=opts,
        started=datetime.now(UTC),
        load_start=load_average(),
        busy_start=cpu_busy(),
        machine=machine(),
        versions=versions(),
    )
    t0 = time.monotonic()
    with (
        tempfile.TemporaryDirectory(dir=opts.data_dir, prefix="run-") as tmp,
        Servers(Path(tmp)) as servers,
        _postgres(opts) as postgres,
    ):
        if postgres is not None:
            url = opts.database_url = postgres.url(PG_WORK_DATABASE)
            run.notes.append(
                "PostgreSQL: a server started for this run from the installed binaries "
                f"({url.rsplit('@', 1)[-1]}), default durability (fsync and "
                "synchronous_commit on), shared_buffers=256MB, on the same machine."
            )
        bench = Bench(opts, servers, Path(tmp), run, postgres)
        trees = contextlib.ExitStack()
        if opts.baseline and {"push", "create"} & set(opts.only):
            src, commit = trees.enter_context(baseline_tree(opts.baseline, Path(tmp)))
            bench.baseline_src = src
            run.baseline = f"{opts.baseline} ({commit[:10]})"
        with trees:
            for name in SCENARIOS:
                if name in opts.only:
                    check_interrupt()
                    getattr(bench, "import_" if name == "import" else name)()
    run.load_end = load_average()
    run.seconds = time.monotonic() - t0
    if opts.dialect == "sqlite":
        run.notes.append(
            "PostgreSQL: not run here. `scripts/bench --dialect postgresql` runs the same "
            "scenarios on a server it starts (report: docs/benchmarks-postgresql.md); "
            "`--database-url postgresql://USER:PASS@HOST/DB` runs them on yours (every table "
            "in that database is dropped first)."
        )
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    text = render(run)
    check_interrupt()
    # Whole or not at all: an interrupt during the write leaves the old report.
    partial = opts.out.with_name(opts.out.name + ".partial")
    partial.write_text(text)
    partial.replace(opts.out)
    print(f"report written to {opts.out}")
    return 0
