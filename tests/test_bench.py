"""The benchmark runner end to end, on tiny sizes: it must run, report every scenario, clean up.

No timing is asserted; the numbers belong to docs/benchmarks.md, not to the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from bench import procs
from bench.ceiling import create_app as ceiling_app
from bench.report import MAX_LINES, SECTIONS
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _wrk() -> None:
    """No skip: a missing wrk would hide a broken runner (.ci/run installs it)."""
    assert shutil.which("wrk"), "the runner drives load with wrk: apt-get install wrk"


def _bench_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bench", "--quick", "--duration", "1", "--warmup", "0",
        "--sustain", "2", "--raw-seconds", "0.2", "--get-sessions", "200",
        "--push-sessions", "20", "--connections", "4", "--profile", "never",
        "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "report.md"), *extra,
    ]  # fmt: skip


def _ours(tmp_path: Path) -> list[psutil.Process]:
    """Processes still running whose command line names this test's directory."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(tmp_path) in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _servers(pid: int) -> list[psutil.Process]:
    """The runner's server processes (the ceiling's uvicorn or searchtrail serve)."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            command = " ".join(p.cmdline())
        except psutil.NoSuchProcess:  # it ended meanwhile (zombies included)
            continue
        if any(word in command for word in ("uvicorn", "serve")):
            found.append(p)
    return found


def test_quick_run_reports_every_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        _bench_args(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text()
    assert len(report.splitlines()) <= MAX_LINES
    for heading in SECTIONS:
        assert f"\n{heading}\n" in report, heading
    for scenario in (
        "Ceiling: validate a push, store nothing",
        "Lean ceiling: plain pydantic models, a push with meta",
        "Push events (100 per request) with meta",
        "Push events (100 per request) no meta",
        "Lean ceiling: plain pydantic models, a registration",
        "Floor: an empty endpoint that reads the registration and answers {}",
        "Ceiling: validate a registration, store nothing",
        "Create sessions (20 results each)",
        "Get a session (10 events) among 200 sessions, 2,000 events, 1 connection",
        "Get a session (10 events) among 200 sessions, 2,000 events, 4 connections",
        "Raw SQLite insert, 100 rows per transaction",
        "Raw SQLite insert, 100,000 rows per transaction",
        "Memory under 2 s of sustained pushes",
    ):
        assert scenario in report, scenario
    targets = ("Push with meta ≥ 60%", "Push without meta ≥ 60%", "Create sessions ≥ 80%",
               "In-process: push", "Get session p99", "Memory flat")  # fmt: skip
    for target in targets:
        line = next(line for line in report.splitlines() if line.startswith(f"| {target}"))
        assert "**met**" in line or "**missed**" in line
    versions = next(line for line in report.splitlines() if line.startswith("- Versions: "))
    for version in ("Python", "FastAPI", "SQLAlchemy", "SQLite", "uvicorn"):
        assert f" {version} " in versions, version
    # The get database is cached for the next run; the scratch directory is gone.
    assert list((tmp_path / "data").glob("sessions-200x10x10-*.db"))
    assert not list((tmp_path / "data").glob("run-*"))
    assert _ours(tmp_path) == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_interrupt_stops_every_server(tmp_path: Path, sig: int, code: int) -> None:
    err = (tmp_path / "runner.err").open("wb")
    runner = subprocess.Popen(
        _bench_args(tmp_path, "--duration", "30"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    try:
        deadline = time.monotonic() + 120
        while not (servers := _servers(runner.pid)):
            assert runner.poll() is None, "the runner ended before starting a server"
            assert time.monotonic() < deadline, "no server started"
            time.sleep(0.1)
        time.sleep(1)
        servers = _servers(runner.pid)
        runner.send_signal(sig)
        try:
            returncode = runner.wait(timeout=120)  # a hang guard, not a timing
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner still running: {(tmp_path / 'runner.err').read_text()[-3000:]}")
        assert returncode == code
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        err.close()
    assert not (tmp_path / "report.md").exists()
    deadline = time.monotonic() + 30
    while alive := [p for p in servers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, alive
        time.sleep(0.1)


@pytest.fixture
def _interrupts() -> Iterator[None]:
    """The runner's signal handlers, installed for one test and then put back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs.catch_interrupts()
    try:
        yield
    finally:
        procs.catch_interrupts()  # forget this test's interrupt
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.usefixtures("_interrupts")
def test_an_interrupt_caught_by_someone_else_is_raised_again_at_the_next_check() -> None:
    """Python drops a KeyboardInterrupt raised in its fork callbacks or a __del__; the run must
    still stop (a signal landing in logging's fork callback once left the runner running)."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs in here
    except KeyboardInterrupt:
        pass
    with pytest.raises(KeyboardInterrupt):
        procs.check_interrupt()


@pytest.mark.usefixtures("_interrupts")
def test_a_server_fork_holds_an_interrupt_until_it_is_done() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), procs.interrupts_held():  # noqa: PT012
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs in here
        done.append(True)
    assert done


@pytest.mark.usefixtures("_interrupts")
def test_a_server_interrupted_while_it_starts_is_owned_then_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt right after the fork (where Python runs its fork callbacks) must not
    leave a server that nobody stops."""
    started = []

    def interrupted_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs in here
        return started[-1]

    real_popen = subprocess.Popen
    monkeypatch.setattr(procs.subprocess, "Popen", interrupted_popen)
    port = procs.free_port()
    servers = procs.Servers(tmp_path)
    with servers:
        with pytest.raises(KeyboardInterrupt):
            servers.start("http", ["-m", "http.server", "-b", "127.0.0.1", str(port)], port)
        assert [s.process for s in servers.running] == started
    assert started[0].poll() is not None


def test_the_cached_database_is_found_again_by_a_new_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 1M-session database is keyed by a schema fingerprint, which must not depend on the
    order a table's index set iterates in: that order changed between processes, and each
    change rebuilt the database."""
    from bench.data import schema_fingerprint

    from searchtrail.storage.sql.schema import metadata

    tables = [t for t in metadata.sorted_tables if len(t.indexes) > 1]
    assert tables
    prints = set()
    for reverse in (False, True):
        for table in tables:
            ordered = sorted(table.indexes, key=lambda i: str(i.name), reverse=reverse)
            monkeypatch.setattr(table, "indexes", ordered)
        prints.add(schema_fingerprint())
    assert len(prints) == 1


def test_postgresql_runs_start_their_own_server_and_load_the_get_database_once(
    tmp_path: Path,
) -> None:
    """``--dialect postgresql`` needs no server beforehand, leaves none behind, and keeps
    its cluster in the data folder so the next run finds the get database loaded."""
    # The server runs as an unprivileged user: its folder's parents must be open to it.
    data = Path(tempfile.mkdtemp(prefix="searchtrail-bench-"))
    data.chmod(0o755)
    try:
        outputs = []
        for run in ("first", "second"):
            args = _bench_args(tmp_path, "--dialect", "postgresql", "--only", "push,create,get,raw")
            args[args.index("--data-dir") + 1] = str(data)
            args[args.index("--out") + 1] = str(tmp_path / f"{run}.md")
            done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)
            report = (tmp_path / f"{run}.md").read_text()
            assert "database postgresql" in report
            assert "PostgreSQL: a server started for this run" in report
            for scenario in (
                "Ceiling: validate a push, store nothing",
                "Push events (100 per request)",
                "Create sessions (20 results each)",
                "Get a session (10 events) among 200 sessions, 2,000 events, 1 connection",
            ):
                assert scenario in report, scenario
            assert "| Raw SQLite insert" not in report
            # The raw rate of the push's rows, COPY'd into the same server in the same run.
            assert "| Raw PostgreSQL COPY, 100 rows per transaction" in report
            assert "| Push ≥ 80% of a raw COPY of the same rows (100 per transaction) |" in report
            deadline = time.monotonic() + 60  # a hang guard: its last processes may be exiting
            while _postgres_pids(data):
                assert time.monotonic() < deadline, "the run's PostgreSQL server is still running"
                time.sleep(0.1)
        assert "loading get_200x10x10_" in outputs[0]
        assert "loading get_" not in outputs[1]
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _postgres_pids(data: Path) -> set[int]:
    """PostgreSQL processes of a cluster under ``data`` (each works in its data directory):
    other PostgreSQL servers on the machine, such as other test runs', do not count."""
    found = set()
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "postgres":
            continue
        try:
            if Path(p.cwd()).is_relative_to(data.resolve()):
                found.add(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


_REGISTRATION = {
    "session_id": "c1",
    "search_query": "red shoes",
    "user_id": "u1",
    "search_results": [{"object_id": f"o{j}", "rank": j} for j in range(20)],
}
_PUSH = {"session_id": "c1", "events": [{"event_id": f"e{j}", "object_id": "o1"} for j in range(3)]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/session", _REGISTRATION),
        ("/session", {**_REGISTRATION, "search_results": [{"object_id": ""}]}),
        ("/session", {**_REGISTRATION, "created_at": "yesterday"}),
        ("/session", {**_REGISTRATION, "unknown": 1}),
        ("/session/events", _PUSH),
        ("/session/events", {**_PUSH, "events": [{"object_id": "o1"}]}),
    ],
    ids=["create", "create-empty-id", "create-bad-time", "create-extra", "push", "push-no-id"],
)
def test_ceiling_answers_as_searchtrail_does(tmp_path: Path, path: str, body: object) -> None:
    """A fair ceiling: the same body meets the same validation and an answer of the same shape."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    with (
        Clickstream(settings=settings) as cs,
        TestClient(create_app(clickstream=cs)) as ours,
        TestClient(ceiling_app()) as bare,
    ):
        if path == "/session/events":
            assert ours.post("/session", json=_REGISTRATION).status_code == 200
        want, got = ours.post(path, json=body), bare.post(path, json=body)
    assert got.status_code == want.status_code, (want.text, got.text)
    if want.status_code == 200:
        assert got.json().keys() == want.json().keys()
    else:
        assert got.json() == want.json()


def test_the_floor_reads_the_body_and_answers_nothing_more() -> None:
    """The floor must still read the whole body, or it would not be a request's cost."""
    with TestClient(ceiling_app()) as bare:
        assert bare.post("/empty", json=_REGISTRATION).json() == {}
        too_big = bare.post("/empty", content=b"x" * (Settings().limits.max_body_bytes + 1))
    assert too_big.status_code == 413


def test_quick_metrics_scenario_builds_measures_and_reports(tmp_path: Path) -> None:
    args = [
        *_bench_args(tmp_path), "--only", "metrics", "--metrics-sessions", "600",
        "--metrics-requests", "5",
    ]  # fmt: skip
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text()
    assert "Metrics over HTTP on 600 sessions" in report
    for title in ("30-day summary", "30-day daily series, fresh delta"):
        line = next(line for line in report.splitlines() if line.startswith(f"| Metrics: {title},"))
        assert "**met**" in line or "**missed**" in line
    # The database is kept for the next run, with what its build measured.
    assert list((tmp_path / "data").glob("metrics-600-*.db"))
    assert list((tmp_path / "data").glob("metrics-600-*.json"))
    assert _ours(tmp_path) == []


def test_quick_clickmodels_scenario_fits_and_reports_what_is_missing(tmp_path: Path) -> None:
    args = [
        *_bench_args(tmp_path), "--only", "clickmodels", "--clickmodel-sessions", "600",
        "--clickmodels", "pbm,no-such-model",
    ]  # fmt: skip
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text()
    assert "Click models on the metrics database (sqlite, 600 sessions" in report
    assert "| no-such-model | not available (not in the registry) |" in report
    row = next(line for line in report.splitlines() if line.startswith("| pbm | "))
    assert "failed" not in row
    line = next(line for line in report.splitlines() if line.startswith("| Click model pbm:"))
    assert "**met**" in line or "**missed**" in line
    assert _ours(tmp_path) == []


def test_quick_prune_scenario_drops_partitions_beside_a_row_delete(tmp_path: Path) -> None:
    """PostgreSQL's retention by partitions and by DELETE, on copies of one database: the
    report has both lines, their ratio, and that the same rows remain."""
    data = Path(tempfile.mkdtemp(prefix="searchtrail-bench-"))
    data.chmod(0o755)  # the server runs as an unprivileged user
    try:
        args = _bench_args(tmp_path, "--dialect", "postgresql", "--only", "prune")
        args[args.index("--data-dir") + 1] = str(data)
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        report = (tmp_path / "report.md").read_text()
        assert "Retention on PostgreSQL: 20,000 events in 2,000 sessions over 4 months" in report
        assert "| Drop 3 month partitions | 1,500 | 15,000 |" in report
        assert "| Row by row (DELETE) | 1,500 | 15,000 |" in report
        assert "as long as dropping partitions; the rows and hourly sums left are the same" in (
            report
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)
