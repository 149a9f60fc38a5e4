from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real `searchtrail serve` per module; tests use their own session ids."""
    tmp = tmp_path_factory.mktemp("serve")
    with serve(f"sqlite:///{tmp / 'searchtrail.db'}", tmp) as running:
        yield running


@pytest.fixture
def own_server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, on the test's own SQLite file (``database_url``)."""
    with serve(database_url, tmp_path) as running:
        yield running
