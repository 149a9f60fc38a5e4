"""Server processes the runner owns: started in their own process group, always reaped.

Every server is started with ``start_new_session`` so that stopping it takes its uvicorn
workers too, and ``Servers`` (a context manager) stops whatever is still running when
the run ends, fails or is interrupted.

An interrupt (SIGINT or SIGTERM) becomes ``KeyboardInterrupt`` in the main thread, but Python
drops an exception raised where nothing can catch it: in the callbacks it runs around a fork
(logging's lock release among them) or in a ``__del__``, printing "Exception ignored" and going
on. A signal caught there was lost, and the run went on for minutes. So an interrupt while a
server starts (its fork, or PostgreSQL's ``pg_ctl start``) is only remembered and raised
once the server is owned, and any interrupt is raised again by ``check_interrupt`` at the
next server, load run or scenario, and before the report is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

import httpx
import psutil

__all__ = [
    "RssSampler",
    "Server",
    "Servers",
    "catch_interrupts",
    "check_interrupt",
    "free_port",
    "interrupts_held",
    "rss_bytes",
]

_interrupted: list[int] = []  # plain lists: a handler must not take a lock
_held: list[bool] = []


def _interrupt(sig: int, _frame: FrameType | None) -> None:
    _interrupted.append(sig)
    if not _held:
        raise KeyboardInterrupt


def catch_interrupts() -> None:
    """SIGINT and SIGTERM interrupt the run; SIGINT too when a shell started it ignored."""
    _interrupted.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)


def check_interrupt() -> None:
    """Raise an interrupt that arrived where Python could not raise it."""
    if _interrupted:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Remember an interrupt during the block and raise it when the block ends."""
    _held.append(True)
    try:
        yield
    finally:
        _held.pop()
    check_interrupt()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment minus any searchtrail settings of the operator's shell."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("SEARCHTRAIL_", "CLICKSTREAM_"))
    }


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc() if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the runner dies, even by SIGKILL."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class Servers:
    """Starts servers and stops every one of them on exit, whatever the exit."""

    log_dir: Path
    running: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: list[str],
        port: int,
        *,
        health: str = "/health",
        env: dict[str, str] | None = None,
    ) -> Server:
        log = self.log_dir / f"{name}-{port}.log"
        with log.open("wb") as out, interrupts_held():
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env() | (env or {}),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            server = Server(name, f"http://127.0.0.1:{port}", proc, log)
            self.running.append(server)
        deadline = time.monotonic() + 120
        while True:
            check_interrupt()
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(server.url + health, timeout=2).status_code < 500:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer {health}:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.running:
            self.running.remove(server)

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        for server in list(self.running):
            self.stop(server)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (uvicorn workers)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class RssSampler:
    """Samples a server's RSS on a thread: the peak, and a time series for trend fitting."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._t0, rss_bytes(self.pid)))
            if self._stop.wait(self.interval):
                return

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def __enter__(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic() - self._t0, rss_bytes(self.pid)))
