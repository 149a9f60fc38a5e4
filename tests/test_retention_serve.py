"""Retention under `searchtrail serve` with two workers: both prune in the background,
and each old session (three chunks' worth) is removed and counted once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from searchtrail import Clickstream
from searchtrail.timestamps import now_ms
from tests.support import serve
from tests.test_erase_user import audit_rows
from tests.test_retention import DAY, _archive_collecting, _load

pytestmark = pytest.mark.slow  # `searchtrail serve` processes


def test_two_workers_prune_each_old_session_once(database_url: str, tmp_path: Path) -> None:
    with Clickstream(database_url) as cs:
        _load(cs, "old", 2500, now_ms() - 200 * DAY)  # an hour apart: all past 96 days
        _archive_collecting(cs, "r1")
        _load(cs, "new", 20, now_ms() - 3_600_000)
    env = {"SEARCHTRAIL_RETENTION_DAYS": "30", "SEARCHTRAIL_RETENTION_INTERVAL_S": "0.2"}
    with (
        serve(database_url, tmp_path, "--workers", "2", env=env) as server,
        Clickstream(database_url, create_schema=False) as cs,
    ):
        deadline = time.monotonic() + 60
        while cs.storage.count("sessions") > 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cs.storage.count("sessions") == 20, server.log.read_text()
        time.sleep(1)  # more rounds of both workers: nothing more goes
        assert cs.storage.count("sessions") == 20
    audit = audit_rows(database_url)
    assert sum(r["sessions"] for r in audit) == 2500
    assert {r["path"] for r in audit} == {"background"}
