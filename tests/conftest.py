from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Clickstream, Settings
from searchtrail.http import create_app
from tests.support import clean_env


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's SEARCHTRAIL_* or CLICKSTREAM_* variables."""
    keep = clean_env()
    import os

    for key in list(os.environ):
        if key not in keep:
            monkeypatch.delenv(key)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'searchtrail.db'}"


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
