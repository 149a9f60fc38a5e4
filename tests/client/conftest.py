from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, serve


@pytest.fixture(scope="package")
def server_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'searchtrail.db'}"


@pytest.fixture(scope="package")
def server(server_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real `searchtrail serve` for the package (starting one costs seconds).

    Tests use their own session ids. The short busy timeout lets a test that locks the
    file see 503 at once; the server's own writes never wait on each other.
    """
    env = {"SEARCHTRAIL_SQLITE_BUSY_TIMEOUT_MS": "50"}
    with serve(server_database_url, tmp_path_factory.mktemp("serve"), env=env) as running:
        yield running
