"""SIGTERM under load: every request a worker read gets a complete answer, and nothing
acknowledged is lost (http/serving.py says what "every request" means)."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from searchtrail import Clickstream
from tests.support import serve, sqlite_only

pytestmark = pytest.mark.slow  # `searchtrail serve` under load, then SIGTERM

CLIENTS = 8


@dataclass
class Outcomes:
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0  # no connection: the listener had closed; nothing was sent
    lost: list[str] = field(default_factory=list)  # sent, and no complete answer
    lock: threading.Lock = field(default_factory=threading.Lock)


def pusher(url: str, n: int, stop: threading.Event, out: Outcomes) -> None:
    """Push continuously over one keep-alive connection (a new one after a close)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        i = 0
        while not stop.is_set():
            ids = [f"c{n}-{i}-{j}" for j in range(3)]
            body = {"session_id": f"s{n}", "events": [{"event_id": e} for e in ids]}
            i += 1
            try:
                r = http.post("/session/events", json=body)
            except httpx.ConnectError:
                with out.lock:
                    out.refused += 1
                return  # the server is gone, as a client elsewhere would find
            except httpx.TransportError as exc:
                with out.lock:
                    out.lost.append(f"{type(exc).__name__}: {exc}")
                continue
            with out.lock:
                out.statuses[r.status_code] += 1
                if r.status_code == 200:
                    out.acknowledged.extend(ids)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_answers_every_request_and_loses_nothing(
    database_url: str, tmp_path: Path, workers: int
) -> None:
    out = Outcomes()
    stop = threading.Event()
    with serve(
        database_url, tmp_path, "--workers", str(workers), "--shutdown-grace-s", "20"
    ) as server:
        with httpx.Client(base_url=server.url) as http:
            for n in range(CLIENTS):
                assert http.post("/session", json={"session_id": f"s{n}"}).status_code == 200
        threads = [
            threading.Thread(target=pusher, args=(server.url, n, stop, out)) for n in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while sum(out.statuses.values()) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)  # not a timing: waits until the load runs
        server.process.send_signal(signal.SIGTERM)
        # uvicorn raises the signal again once it has shut down, as a service manager expects.
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM), server.log.read_text()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    answered = sum(out.statuses.values())
    assert out.lost == [], (len(out.lost), answered, out.lost[:5])
    assert set(out.statuses) == {200}, out.statuses
    assert out.refused == CLIENTS  # each client saw the end as a refused connection
    with Clickstream(database_url) as cs:
        stored = {e.event_id for n in range(CLIENTS) for e in cs.iter_session_events(f"s{n}")}
    assert set(out.acknowledged) <= stored
    assert len(out.acknowledged) == 3 * out.statuses[200] and answered >= 400


def _exchange(sock: socket.socket, path: str) -> bytes:
    """Send a keep-alive GET and read its whole answer (the body is Content-Length long)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data  # closed without an answer
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head


@sqlite_only  # the HTTP layer's shutdown, whatever the database
def test_a_request_sent_on_an_idle_connection_after_sigterm_is_answered(
    database_url: str, tmp_path: Path
) -> None:
    """The race that lost answers: the client sends on a keep-alive connection just as the
    server, shutting down, would close it as idle. Sent here after SIGTERM, for certain."""
    with serve(database_url, tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            assert _exchange(sock, "/health").startswith(b"HTTP/1.1 200")
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 4  # within the connection's keep-alive timeout
            while time.monotonic() < deadline:  # until the listener has closed
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except ConnectionRefusedError:
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("the listener stayed open after SIGTERM")
            head = _exchange(sock, "/health/ready")
            assert head.startswith(b"HTTP/1.1 503"), head  # not ready: shutting down
            assert b"connection: close" in head.lower()
            assert sock.recv(1) == b""  # and then closed
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
