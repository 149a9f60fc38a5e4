"""Readiness: may this process take traffic now? (``/health/ready``)

Ready means a read answered, a write was committed just now by the path a push takes
(under ``serve``, the writer process), and, on SQLite, the file system holding the
database has at least ``ready_min_free_mb`` left. Anything else is ``NotReady`` (503)
naming the reason, so a load balancer stops sending traffic before clients see 507s.
"""

from __future__ import annotations

import asyncio
import os
import socket

import anyio.to_thread

from searchtrail.errors import NotReady, Unavailable
from searchtrail.service.clickstream import Clickstream
from searchtrail.timestamps import now_ms

__all__ = ["check_ready", "process_name"]

_MB = 1_000_000


def process_name() -> str:
    """This process's row in ``health_checks``: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


async def check_ready(cs: Clickstream) -> dict[str, object]:
    """What the check found, or ``NotReady`` with the first reason it is not."""
    settings = cs.settings
    timeout_s = settings.ready_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            await anyio.to_thread.run_sync(cs.storage.ping)
            await cs.storage.health.write_async(process_name(), now_ms())
    except TimeoutError:
        raise NotReady(
            f"not ready: the database did not accept a write within {timeout_s:g} s "
            "(ready_timeout_s)"
        ) from None
    except Unavailable as exc:
        refusal = NotReady(f"not ready: {exc.detail} ({exc.code})")
        refusal.retry_after = exc.retry_after
        raise refusal from exc
    found: dict[str, object] = {"status": "ready", "database": cs.storage.dialect}
    free = cs.storage.health.free_bytes()
    if free is not None:
        found["disk_free_mb"] = round(free / _MB, 1)
        if free < settings.ready_min_free_mb * _MB:
            refusal = NotReady(
                f"not ready: the database's disk has {free / _MB:.1f} MB free, below "
                f"ready_min_free_mb={settings.ready_min_free_mb:g} (disk_low)"
            )
            refusal.retry_after = 30
            raise refusal
    return found
