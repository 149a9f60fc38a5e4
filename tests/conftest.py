"""Fixtures: every storage, service and API test runs on SQLite and on PostgreSQL.

``database_url`` is parametrized over both dialects; a test that is about one of them
only, or about the HTTP layer alone, is marked ``tests.support.sqlite_only`` (or takes
``postgres_only``) and says why. The
PostgreSQL server is started once per test run from the installed binaries
(tests/pg.py); without them those tests are skipped, or fail when
SEARCHTRAIL_TESTS_REQUIRE_POSTGRES=1 (as in .ci/run, where no test may skip at all:
SEARCHTRAIL_TESTS_NO_SKIP=1).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from tests.pg import REQUIRE_ENV, PgServer, find_bindir, start_server
from tests.support import clean_env

NO_SKIP_ENV = "SEARCHTRAIL_TESTS_NO_SKIP"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With SEARCHTRAIL_TESTS_NO_SKIP=1 (.ci/run) a skipped test fails: every tool it needs
    is installed there, so a skip would hide a test that never ran."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get(NO_SKIP_ENV) == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, and {NO_SKIP_ENV}=1 allows no skip: {report.longrepr}"
    return report


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's SEARCHTRAIL_* or CLICKSTREAM_* variables."""
    keep = clean_env()
    for key in list(os.environ):
        if key not in keep:
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL tests need initdb, pg_ctl and postgres (Debian: apt-get install "
            "postgresql); none found on PATH, by pg_config or in /usr/lib/postgresql"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires them", pytrace=False)
        pytest.skip(reason)
    server = start_server(bindir)
    try:
        yield server
    finally:
        server.stop()


DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.hookimpl(tryfirst=True)  # before the test's own parameters: ids stay "[sqlite-2]"
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that reaches ``dialect`` runs on both, unless it says otherwise.

    A ``parametrize("dialect", ...)`` of its own (``tests.support.postgres_only``) wins;
    the ``sqlite_only`` marker, on a test or a whole module, keeps SQLite alone and leaves
    tests there that use no database untouched.
    """
    if "dialect" not in metafunc.fixturenames:
        return
    if any("dialect" in _argnames(m) for m in metafunc.definition.iter_markers("parametrize")):
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    metafunc.parametrize("dialect", ["sqlite"] if only_sqlite else DIALECTS, indirect=True)


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs["argnames"]
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


@pytest.fixture
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database at the head revision: a new SQLite file, or the PostgreSQL one reset."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'searchtrail.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.fresh_database()


@pytest.fixture
def second_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Another empty database of the same dialect, beside ``database_url``."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'second.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def cs(settings: Settings) -> Iterator[Clickstream]:
    with Clickstream(settings=settings) as clickstream:
        yield clickstream


@pytest.fixture
def client(cs: Clickstream) -> Iterator[TestClient]:
    with TestClient(create_app(clickstream=cs)) as test_client:
        yield test_client
