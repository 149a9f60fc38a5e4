"""schemathesis against the real server over TCP: no 500, and only documented answers.

It reads the OpenAPI document and sends what it generates from it, valid and not, to
every route, then chains routes by the links it infers (register, then push, then read).
Run with a fixed seed, so a failure here reproduces with the command it prints. It found
the batch ids past 64 bits that reached the driver (a 500), the 405 that named one
method, errors the document did not list, and an event_id it required though a push
may leave it out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from searchtrail import Clickstream, Settings
from searchtrail.keys import Scope
from tests.support import clean_env, serve

pytestmark = pytest.mark.slow  # schemathesis against a real `searchtrail serve`, per dialect

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "allow_header_conformance",
    "negative_data_rejection",
]


def test_generated_requests_get_no_500_and_only_documented_answers(
    database_url: str, tmp_path: Path
) -> None:
    with Clickstream(settings=Settings(database_url=database_url)) as cs:
        key = cs.keys.create("fuzz", list(Scope)).key
    limits = {"SEARCHTRAIL_RATE_LIMIT_PER_SEC": "1000000"}
    with serve(database_url, tmp_path, env=limits) as server:
        args = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
            "--header", f"X-API-Key: {key}", "--checks", ",".join(CHECKS),
            # Revoking would end the run's own key; tests/http/test_auth.py covers it.
            "--exclude-path-regex", "keys/revoke",
            "--max-examples", "50", "--seed", "7", "--workers", "1",
            "--generation-database", "none", "--no-color",
        ]  # fmt: skip
        run = subprocess.run(
            args, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600
        )
        log = server.log.read_text()
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "Traceback" not in log, log[-5000:]
