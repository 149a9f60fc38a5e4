"""``GET /metrics``: Prometheus's text format (docs/operating.md), off the rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from searchtrail.http.auth import MetricsGuard
from searchtrail.http.deps import ClickstreamDep
from searchtrail.http.telemetry import CONTENT_TYPE, scrape
from searchtrail.keys import ApiKeyInfo

router = APIRouter(tags=["operations"])

MetricsKey = Annotated[ApiKeyInfo | None, Depends(MetricsGuard())]


# Out of the OpenAPI document: an operator's endpoint, in a format of its own.
@router.get("/metrics", include_in_schema=False)
async def metrics(_key: MetricsKey, cs: ClickstreamDep) -> Response:
    # Files of every worker and two reads of the database: off the event loop.
    body = await run_in_threadpool(scrape, cs)
    return Response(body, media_type=CONTENT_TYPE)
