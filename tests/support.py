"""Helpers the tests share: free ports, and `searchtrail serve` as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus any searchtrail settings of the developer's shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEARCHTRAIL_", "CLICKSTREAM_")) or k.startswith("SEARCHTRAIL_TESTS_")
    }
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


@contextmanager
def serve(
    database_url: str,
    log_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """Start `searchtrail serve` on a free port (or ``port``) and wait until /health answers."""
    port = port or free_port()
    log = log_dir / f"serve-{port}-{time.monotonic_ns()}.log"
    cmd = [
        sys.executable, "-m", "searchtrail.cli", "serve",
        "--port", str(port), "--database-url", database_url, "--log-level", "warning", *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=clean_env(**(env or {}))
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer /health:\n{log.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        server.kill(signal.SIGTERM)


# For a test about SQLite's own machinery (pragmas, its file lock), or about the HTTP layer
# alone (auth, CORS, OpenAPI, error shapes, body parsing) where storage runs on both
# dialects elsewhere: say why next to it. On a function or as a module's `pytestmark`;
# conftest's pytest_generate_tests reads it, and ignores it on tests with no database.
sqlite_only = pytest.mark.sqlite_only
# For a test of PostgreSQL's own locking; skipped (or failed, in CI) like any PG test.
postgres_only = pytest.mark.parametrize(
    "dialect", [pytest.param("postgresql", marks=pytest.mark.postgres)]
)
