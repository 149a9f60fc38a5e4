"""Click models over HTTP (``read`` scope), under ``INTERNAL_PREFIX``.

The same numbers as ``Clickstream.fit_click_model`` and ``searchtrail clickmodel fit``:
each route is one library call (``click_model``, ``click_model_labels``), whose fits are
cached in the process (service/clickmodels.py says how) so a repeated request is fast.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from searchtrail.http.deps import ClickstreamDep, ReadKey
from searchtrail.http.openapi import json_response
from searchtrail.http.routers.metrics import Irrelevant, Since, Until, _time
from searchtrail.models.clickmodels import ClickModelFit, ClickModelLabels

__all__ = ["router"]

router = APIRouter(tags=["click models"])

Model = Annotated[
    str, Query(description="The click model: pbm, cascade, dbn, sdbn, ubm or coec (as registered).")
]
BatchId = Annotated[int | None, Query(description="Only this batch's sessions.")]
MaxPosition = Annotated[int, Query(ge=1, le=50, description="Positions modelled: 1..N.")]


@router.get(
    "/clickmodel",
    response_model=ClickModelFit,
    summary="A click model's position bias, held-out fit quality and counts",
    description="Fits the model on the scope's sessions (docs/clickmodels.md): examination "
    "by position relative to position 1, the raw values, the model's parameters, the "
    "held-out log-likelihood and perplexity (latest 10% of sessions by time).",
)
async def clickmodel(
    _key: ReadKey,
    cs: ClickstreamDep,
    model: Model,
    since: Since = None,
    until: Until = None,
    batch_id: BatchId = None,
    include_irrelevant: Irrelevant = False,
    max_position: MaxPosition = 10,
) -> Response:
    answer = await run_in_threadpool(
        lambda: cs.click_model(
            model,
            _time(since),
            _time(until),
            batch_id=batch_id,
            include_irrelevant=include_irrelevant,
            max_position=max_position,
        )
    )
    return json_response(answer)


@router.get(
    "/clickmodel/labels",
    response_model=ClickModelLabels,
    summary="Debiased labels of a query's results, or of the most shown pairs",
)
async def clickmodel_labels(
    _key: ReadKey,
    cs: ClickstreamDep,
    model: Model,
    query: Annotated[
        str | None,
        Query(
            description="The query (normalized, as the metrics name it, or as sent); "
            "without it, the pairs with most impressions."
        ),
    ] = None,
    since: Since = None,
    until: Until = None,
    batch_id: BatchId = None,
    include_irrelevant: Irrelevant = False,
    max_position: MaxPosition = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Response:
    answer = await run_in_threadpool(
        lambda: cs.click_model_labels(
            model,
            query,
            _time(since),
            _time(until),
            batch_id=batch_id,
            include_irrelevant=include_irrelevant,
            max_position=max_position,
            limit=limit,
        )
    )
    return json_response(answer)
