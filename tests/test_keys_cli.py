"""`searchtrail keys ...` and the secure default of `searchtrail serve`, as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from searchtrail import Clickstream
from tests.support import clean_env, free_port, serve
from tests.test_cli import run

pytestmark = pytest.mark.slow  # every test starts `searchtrail serve` or the keys command


def test_keys_create_list_revoke(database_url: str, tmp_path: Path) -> None:
    made = run("keys", "create", "--name", "shop", "--scope", "ingest", "--scope", "read",
               "--database-url", database_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("st_") and "shown only now" in made.stderr
    listed = run("keys", "list", "--database-url", database_url)
    assert listed.returncode == 0
    row = listed.stdout.splitlines()[1].split("\t")
    assert row[0] == "1" and key.startswith(f"st_{row[1]}_") and row[2:4] == ["shop", "ingest,read"]
    assert key not in listed.stdout and row[5] == "-"
    with serve(database_url, tmp_path, env={"SEARCHTRAIL_AUTH_CACHE_SEC": "0"}) as server:
        log_before = server.log.read_text()
        ok = httpx.post(
            f"{server.url}/session", headers={"X-API-Key": key}, json={"session_id": "s"}
        )
        assert ok.status_code == 200
        assert httpx.post(f"{server.url}/session", json={"session_id": "t"}).status_code == 401
        revoked = run("keys", "revoke", row[1], "--database-url", database_url)
        assert revoked.returncode == 0, revoked.stderr
        again = httpx.post(
            f"{server.url}/session", headers={"X-API-Key": key}, json={"session_id": "u"}
        )
        assert again.status_code == 401
    assert "authentication is OFF" not in log_before
    assert "API keys are required" in log_before
    assert key.split("_", 2)[2] not in server.log.read_text()
    assert (
        run("keys", "list", "--database-url", database_url).stdout.splitlines()[1].split("\t")[5]
        != "-"
    )
    missing = run("keys", "revoke", "42", "--database-url", database_url)
    assert missing.returncode == 1 and "API key 42 not found" in missing.stderr
    huge = run("keys", "revoke", str(2**64), "--database-url", database_url)
    assert (huge.returncode, huge.stderr.count("Traceback")) == (1, 0), huge.stderr
    assert "key_id" in huge.stderr
    bad = run("keys", "create", "--name", "x", "--scope", "root", "--database-url", database_url)
    assert bad.returncode == 2 and "root" in bad.stderr


def test_serve_refuses_a_public_address_without_keys(database_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve", "--host", "0.0.0.0",
         "--port", str(free_port()), "--database-url", database_url],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no API key" in proc.stderr
    assert "--insecure" in proc.stderr


def test_serve_insecure_starts_and_says_so(database_url: str, tmp_path: Path) -> None:
    # The one place a test binds beyond loopback: what --insecure exists for. Stopped at once.
    with serve(database_url, tmp_path, "--host", "0.0.0.0", "--insecure") as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
    assert "authentication is OFF and --insecure exposes the service" in server.log.read_text()


def test_serve_on_loopback_without_keys_says_auth_is_off(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path) as server:
        assert httpx.post(f"{server.url}/session", json={"session_id": "s"}).status_code == 200
    assert "authentication is OFF; listening on loopback only" in server.log.read_text()


def test_serve_with_a_key_binds_anywhere_without_insecure(database_url: str) -> None:
    with Clickstream(database_url) as cs:
        cs.keys.create("k", ["read"])
    # --port 70000 makes the command fail on the port after the key check passed.
    proc = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "serve", "--host", "0.0.0.0",
         "--port", "70000", "--database-url", database_url],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "SEARCHTRAIL_PORT" in proc.stderr
    assert "refusing" not in proc.stderr
