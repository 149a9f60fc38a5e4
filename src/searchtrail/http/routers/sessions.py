"""Client endpoints on sessions: register, read, flag irrelevant, push events."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from searchtrail.http.deps import ClickstreamDep, IngestKey, RawBody, ReadKey
from searchtrail.http.openapi import body_doc, json_response
from searchtrail.limits import DEFAULT_SESSION_EVENTS_LIMIT, MAX_SESSION_EVENTS_LIMIT
from searchtrail.models import (
    PushResult,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    SessionIdRequest,
    parse_json,
)

__all__ = ["ingest_router", "router"]

# The writes a browser page makes; also mounted under the browser prefix.
ingest_router = APIRouter(tags=["sessions"])
router = APIRouter(tags=["sessions"])


@ingest_router.post(
    "/session",
    response_model=Session,
    summary="Register a session",
    openapi_extra=body_doc(SessionCreateRequest),
    responses={
        400: {"description": "created_at outside the window"},
        409: {"description": "replay contradicts the stored session"},
    },
)
async def create_session(_key: IngestKey, cs: ClickstreamDep, body: RawBody) -> Response:
    # Validated once, in the service: handing it a parsed model would validate it again.
    # The service validates in the loop and awaits its write: no pool thread is involved.
    return json_response(await cs.create_session_json_async(body))


@router.get(
    "/session",
    response_model=Session,
    summary="Get a session with a page of its events",
    description=f"At most events_limit events (default {DEFAULT_SESSION_EVENTS_LIMIT}, as the "
    "original service), oldest first (created_at_ms, then the order they were stored). "
    "While has_more_events, pass the answer's events_cursor as events_after for the next "
    "page: each event is answered once. Events pushed while paging are read too when they "
    "sort after the cursor; one timestamped earlier appears in a read from the start.",
    responses={404: {"description": "unknown session"}},
)
async def get_session(
    _key: ReadKey,
    cs: ClickstreamDep,
    session_id: str = Query(min_length=1),
    events_limit: int | None = Query(
        None,
        description=f"Events in the answer; default {DEFAULT_SESSION_EVENTS_LIMIT}, at most "
        f"{MAX_SESSION_EVENTS_LIMIT}; 0 answers the session alone.",
        # Checked by the service (its error names the parameter as the library's does);
        # documented here so that clients and generated requests know the range.
        json_schema_extra={"minimum": 0, "maximum": MAX_SESSION_EVENTS_LIMIT},
    ),
    events_after: str | None = Query(
        None,
        description="The events_cursor of the previous answer; omitted, from the first event.",
    ),
) -> Response:
    session = await cs.get_session_async(
        session_id, events_limit=events_limit, events_after=events_after
    )
    return json_response(session)


@ingest_router.post(
    "/session/events",
    response_model=PushResult,
    summary="Push events to a session",
    openapi_extra=body_doc(SessionAddEventsRequest),
    responses={
        400: {"description": "an event's created_at outside the window"},
        404: {"description": "unknown session"},
        409: {
            "description": "the push's new events would take the session past "
            "max_events_per_session (code session_full); nothing was stored"
        },
    },
)
async def push_events(_key: IngestKey, cs: ClickstreamDep, body: RawBody) -> Response:
    return json_response(await cs.push_events_json_async(body))


@ingest_router.post(
    "/session/irrelevant",
    summary="Flag a session irrelevant",
    openapi_extra=body_doc(SessionIdRequest),
    responses={404: {"description": "unknown session"}},
)
async def mark_irrelevant(_key: IngestKey, cs: ClickstreamDep, body: RawBody) -> dict[str, object]:
    req = parse_json(SessionIdRequest, body, cs.limits)
    await run_in_threadpool(cs.mark_irrelevant, req.session_id)
    return {"session_id": req.session_id, "is_irrelevant": True}


router.include_router(ingest_router)
