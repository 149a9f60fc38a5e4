"""Internal endpoints: batches for the fine-tuning job, the improvement queue for its
worker, and erasing a user.

Mounted only under ``INTERNAL_PREFIX``. Reading batches needs the ``read`` scope;
releasing, moving batches, the improvement queue and erasing need ``admin``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from searchtrail.http.deps import AdminKey, ClickstreamDep, RawBody, ReadKey
from searchtrail.http.openapi import body_doc, json_response
from searchtrail.models import (
    AckRequest,
    BatchInfo,
    BatchList,
    BatchSessionsPage,
    BatchStateName,
    BatchStateRequest,
    ClaimRequest,
    ClaimResult,
    QueueCounts,
    QueueEntry,
    ReleaseRequest,
    ReleaseResult,
    SessionIdRequest,
    UserDeletion,
    UserIdRequest,
    parse_json,
)

__all__ = ["router"]

router = APIRouter(tags=["internal"])


@router.post(
    "/session/use-for-improvement",
    response_model=QueueEntry,
    summary="Queue a session for the improvement worker",
    description="Queued already (pending or claimed), the open entry answers; no second entry.",
    openapi_extra=body_doc(SessionIdRequest),
    responses={404: {"description": "unknown session"}},
)
async def use_for_improvement(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(SessionIdRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.use_for_improvement, req.session_id))


@router.get(
    "/batch/sessions",
    response_model=BatchSessionsPage,
    summary="A page of a batch's sessions, in session_number order",
    description="Keyset paging: pass the answer's last_number as after_number; "
    "last_number is null past the end.",
    responses={404: {"description": "unknown batch"}},
)
async def batch_sessions(
    _key: ReadKey,
    cs: ClickstreamDep,
    batch_id: int = Query(),
    after_number: int = Query(0),
    limit: int | None = Query(None, description="Default 10, at most max_page_size."),
    events_limit: int | None = Query(None, description="Default 100, at most max_events_limit."),
) -> Response:
    page = await run_in_threadpool(cs.batch_sessions, batch_id, after_number, limit, events_limit)
    return json_response(page)


@router.post(
    "/batch/release",
    response_model=ReleaseResult,
    summary="Release the collecting batch",
    description="release_id is an idempotency key: the same key answers the same batch.",
    openapi_extra=body_doc(ReleaseRequest),
    responses={404: {"description": "There is no collecting batch"}},
)
async def release_batch(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(ReleaseRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.release_batch, req))


@router.get("/batches", response_model=BatchList, summary="Batches with their counts")
async def list_batches(
    _key: ReadKey, cs: ClickstreamDep, state: BatchStateName | None = None
) -> Response:
    return json_response(BatchList(batches=await run_in_threadpool(cs.list_batches, state)))


@router.get(
    "/batch",
    response_model=BatchInfo,
    summary="One batch with its counts",
    responses={404: {"description": "unknown batch"}},
)
async def get_batch(_key: ReadKey, cs: ClickstreamDep, batch_id: int = Query()) -> Response:
    return json_response(await run_in_threadpool(cs.get_batch, batch_id))


@router.post(
    "/batch/state",
    response_model=BatchInfo,
    summary="Move a batch to another state",
    description="Forward (skipping allowed), or fine_tuning back to released; "
    "the current state again is a no-op.",
    openapi_extra=body_doc(BatchStateRequest),
    responses={
        400: {"description": "the move is not allowed from the batch's state"},
        404: {"description": "unknown batch"},
    },
)
async def set_batch_state(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(BatchStateRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.set_batch_state, req.batch_id, req.state))


@router.post(
    "/improvement/claim",
    response_model=ClaimResult,
    summary="Claim pending improvement entries",
    description="Each entry goes to one claimer; unacknowledged past its lease, it comes back.",
    openapi_extra=body_doc(ClaimRequest),
)
async def claim_improvements(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(ClaimRequest, body, cs.limits)
    return json_response(ClaimResult(entries=await run_in_threadpool(cs.claim_improvements, req)))


@router.post(
    "/improvement/ack",
    response_model=QueueEntry,
    summary="Acknowledge a claimed entry as done or failed",
    openapi_extra=body_doc(AckRequest),
    responses={
        404: {"description": "unknown entry"},
        409: {"description": "not claimed, or claimed again after the lease expired"},
    },
)
async def ack_improvement(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(AckRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.ack_improvement, req))


@router.get("/improvement/counts", response_model=QueueCounts, summary="Entries per state")
async def improvement_counts(_key: AdminKey, cs: ClickstreamDep) -> Response:
    return json_response(await run_in_threadpool(cs.improvement_counts))


@router.post(
    "/users/delete",
    response_model=UserDeletion,
    summary="Erase a user: every session, its events and queue entries",
    description="In one transaction; sessions stored under the id's pseudonym (user_id_key, "
    "current or previous) go too. An audit row records when and how many, never the id. "
    "Again: zeros.",
    openapi_extra=body_doc(UserIdRequest),
)
async def delete_user(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(UserIdRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.delete_user, req.user_id, path="http"))
