"""Liveness with a real round trip to the database, for load balancers and `serve` scripts."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from searchtrail import __version__
from searchtrail.http.deps import ClickstreamDep

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Service and database health",
    responses={503: {"description": "The database did not answer"}},
)
async def health(cs: ClickstreamDep) -> dict[str, object]:
    await run_in_threadpool(cs.storage.ping)
    return {"status": "ok", "version": __version__, "database": cs.storage.dialect}
