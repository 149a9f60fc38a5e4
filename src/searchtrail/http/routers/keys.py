"""API-key management over HTTP, for the ``admin`` scope (the CLI does the same locally)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from searchtrail.http.deps import AdminKey, ClickstreamDep, RawBody
from searchtrail.http.openapi import body_doc, json_response
from searchtrail.keys import (
    ApiKeyCreateRequest,
    ApiKeyInfo,
    ApiKeyList,
    ApiKeyRevokeRequest,
    NewApiKey,
)
from searchtrail.models import parse_json

__all__ = ["router"]

router = APIRouter(tags=["keys"])


@router.post(
    "/keys",
    response_model=NewApiKey,
    summary="Create an API key",
    description="The answer is the only time the key is shown; only its hash is stored.",
    openapi_extra=body_doc(ApiKeyCreateRequest),
)
async def create_key(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(ApiKeyCreateRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.keys.create, req.name, req.scopes))


@router.get("/keys", response_model=ApiKeyList, summary="API keys, without their secrets")
async def list_keys(_key: AdminKey, cs: ClickstreamDep) -> Response:
    return json_response(ApiKeyList(keys=await run_in_threadpool(cs.keys.list)))


@router.post(
    "/keys/revoke",
    response_model=ApiKeyInfo,
    summary="Revoke an API key by id or prefix",
    description="Other server processes stop accepting it within auth_cache_sec.",
    openapi_extra=body_doc(ApiKeyRevokeRequest),
    responses={404: {"description": "unknown key"}},
)
async def revoke_key(_key: AdminKey, cs: ClickstreamDep, body: RawBody) -> Response:
    req = parse_json(ApiKeyRevokeRequest, body, cs.limits)
    return json_response(await run_in_threadpool(cs.keys.revoke, req.key_id))
