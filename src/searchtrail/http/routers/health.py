"""Liveness (``/health``) and readiness (``/health/ready``), for load balancers and
orchestrators; neither takes a key or counts against a rate limit.

Liveness does not touch the database: it answers while the event loop does. An
orchestrator restarts a process whose liveness fails, and restarting every process
because the database is down or its disk is full fixes nothing and drops the requests
in flight. Readiness is the check that tells the truth about the database
(``service/readiness.py``): route traffic by it.
"""

from __future__ import annotations

from fastapi import APIRouter

from searchtrail import __version__
from searchtrail.errors import NotReady
from searchtrail.http.deps import ClickstreamDep
from searchtrail.http.draining import draining
from searchtrail.service.readiness import check_ready

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers (no database round trip)")
async def health(cs: ClickstreamDep) -> dict[str, object]:
    return {"status": "ok", "version": __version__, "database": cs.storage.dialect}


@router.get(
    "/health/ready",
    summary="Readiness: the database answers, commits a write, and has disk room",
    responses={
        # The error shape and Retry-After are added with every other error (openapi.py).
        503: {
            "description": "Not ready (code not_ready): the database is locked, unreachable "
            "or its disk full or nearly so, or the server is shutting down; detail says which",
        }
    },
)
async def ready(cs: ClickstreamDep) -> dict[str, object]:
    if draining.is_set():
        raise NotReady("not ready: the server is shutting down")
    return await check_ready(cs)
