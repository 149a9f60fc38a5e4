"""Search-quality metrics over HTTP (``read`` scope), under ``INTERNAL_PREFIX``.

The same numbers as the library's ``Clickstream.metrics*`` and the CLI's ``searchtrail
metrics``: each route is that call, its query parameters the call's arguments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from searchtrail.http.deps import ClickstreamDep, ReadKey
from searchtrail.http.openapi import json_response
from searchtrail.models import (
    GroupBy,
    MetricsGroups,
    MetricsSummary,
    QueryLists,
    QuerySession,
    RankerComparison,
)

__all__ = ["router"]

router = APIRouter(tags=["metrics"])

_TIME = (
    "ISO 8601 (no offset = UTC) or epoch digits (milliseconds; a number below 10^11 is "
    "seconds, as for every timestamp). Sessions count by their created_at: "
    "since included, until excluded."
)
Since = Annotated[str | None, Query(description=f"From. {_TIME}")]
Until = Annotated[str | None, Query(description=f"Until. {_TIME}")]
Irrelevant = Annotated[bool, Query(description="Count sessions marked irrelevant too.")]


def _time(value: str | None) -> str | int | None:
    """Epoch times arrive as digits in a query string (``Timestamp`` reads a number below
    10^11 as seconds, from 10^11 on as milliseconds)."""
    # ASCII only: str.isdigit() holds for "²", which int() refuses (a 500, not a 422).
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


@router.get(
    "/metrics",
    response_model=MetricsSummary | MetricsGroups,
    summary="Search-quality metrics over a range, whole or by group",
    description="Without `by`: one object of every metric (docs/metrics.md). With `by`: "
    "one entry per day or hour (UTC), query, ranker (the search_meta key "
    "`metrics_ranker_key`) or batch.",
)
async def metrics(
    _key: ReadKey,
    cs: ClickstreamDep,
    since: Since = None,
    until: Until = None,
    by: Annotated[GroupBy | None, Query(description="Group by this.")] = None,
    include_irrelevant: Irrelevant = False,
) -> Response:
    answer = await run_in_threadpool(
        lambda: cs.metrics(_time(since), _time(until), by=by, include_irrelevant=include_irrelevant)
    )
    return json_response(answer)


@router.get(
    "/metrics/queries",
    response_model=QueryLists,
    summary="Top queries, top zero-result queries, top queries with no interaction",
)
async def metrics_queries(
    _key: ReadKey,
    cs: ClickstreamDep,
    since: Since = None,
    until: Until = None,
    include_irrelevant: Irrelevant = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="Entries per list.")] = 10,
) -> Response:
    answer = await run_in_threadpool(
        lambda: cs.metrics_queries(
            _time(since), _time(until), include_irrelevant=include_irrelevant, limit=limit
        )
    )
    return json_response(answer)


@router.get(
    "/metrics/compare",
    response_model=RankerComparison,
    summary="Ranker B against ranker A, with 95% bootstrap intervals",
    description="Give `ranker` twice: A, then B. Differences are B - A.",
)
async def metrics_compare(
    _key: ReadKey,
    cs: ClickstreamDep,
    ranker: Annotated[list[str], Query(min_length=2, max_length=2, description="A, then B.")],
    since: Since = None,
    until: Until = None,
    include_irrelevant: Irrelevant = False,
    resamples: Annotated[int, Query(ge=100, le=100_000)] = 10_000,
    seed: Annotated[int, Query(ge=0, le=2**63 - 1, description="The bootstrap's seed.")] = 0,
) -> Response:
    a, b = ranker
    answer = await run_in_threadpool(
        lambda: cs.compare_rankers(
            a,
            b,
            _time(since),
            _time(until),
            include_irrelevant=include_irrelevant,
            resamples=resamples,
            seed=seed,
        )
    )
    return json_response(answer)


_SESSIONS = TypeAdapter(list[QuerySession])


@router.get(
    "/metrics/sessions",
    response_model=list[QuerySession],
    summary="The newest sessions of a query: what each showed and what was done",
)
async def metrics_sessions(
    _key: ReadKey,
    cs: ClickstreamDep,
    query: Annotated[str, Query(description="The normalized query, as the lists name it.")],
    since: Since = None,
    until: Until = None,
    include_irrelevant: Irrelevant = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    answer = await run_in_threadpool(
        lambda: cs.metrics_sessions(
            query, _time(since), _time(until), include_irrelevant=include_irrelevant, limit=limit
        )
    )
    return Response(_SESSIONS.dump_json(answer), media_type="application/json")
