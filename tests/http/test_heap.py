"""Only ``searchtrail serve``'s own process tunes the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchtrail import Settings
from searchtrail._heap import YOUNG_GENERATION
from searchtrail.http import create_app
from searchtrail.http.app import create_app_from_env
from tests.support import sqlite_only


@pytest.fixture
def untouched_gc() -> Iterator[tuple[int, int, int]]:
    """The test process's collector as it was, given back whatever the test did to it."""
    gc.unfreeze()
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.slow  # freezes the whole startup heap of a served app
def test_serve_factory_freezes_the_startup_heap(
    untouched_gc: tuple[int, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCHTRAIL_DATABASE_URL", f"sqlite:///{tmp_path / 'st.db'}")
    app = create_app_from_env()
    assert gc.get_freeze_count() == 0, "building the app must not touch the collector yet"
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_GENERATION, *untouched_gc[1:])


@sqlite_only  # the collector's settings, whatever the database
def test_an_embedded_app_leaves_the_collector_alone(
    untouched_gc: tuple[int, int, int], settings: Settings
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == untouched_gc
