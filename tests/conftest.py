"""Fixtures: every storage, service and API test runs on SQLite and on PostgreSQL.

``database_url`` is parametrized over both dialects; a test that is about one of them
only overrides ``dialect`` (``tests.support.sqlite_only``) and says why. The
PostgreSQL server is started once per test run from the installed binaries
(tests/pg.py); without them those tests are skipped, or fail when
SEARCHTRAIL_TESTS_REQUIRE_POSTGRES=1 (as in .ci/run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from tests.pg import REQUIRE_ENV, PgServer, find_bindir, start_server
from tests.support import clean_env


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
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
