"""The ceiling: bare FastAPI endpoints that parse and validate a body and store nothing.

Same framework, same server (uvicorn, started the same way), same body reader and the
same pydantic models under the same limits as ``POST /session/events`` and
``POST /session``: what is left between this and searchtrail is the service's own work
and the database.

``POST /empty`` reads the body and answers ``{}``: the framework's own cost of a request
on this machine, which no endpoint in it can beat.

``create_lean_app`` is the lean ceiling: the same endpoints validating with plain pydantic
models of the same fields and types (``bench.lean``), none of searchtrail's own checks.

``python -m uvicorn bench.ceiling:create_app --factory`` (or ``create_lean_app``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Response

from bench.lean import PlainCreate, PlainPush
from searchtrail.http.deps import RawBody
from searchtrail.http.errors import install_error_handlers
from searchtrail.http.openapi import json_response
from searchtrail.limits import Limits
from searchtrail.models import (
    PushResult,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    parse_json,
)
from searchtrail.settings import Settings
from searchtrail.timestamps import now_ms

__all__ = ["create_app", "create_lean_app"]


@dataclass(frozen=True)
class _NoStore:
    """Stands where the ``Clickstream`` is, so the body dependency reads the same limits."""

    limits: Limits


def _app(title: str) -> FastAPI:
    app = FastAPI(title=title)
    app.state.clickstream = _NoStore(Settings().limits)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _pushed(req: SessionAddEventsRequest | PlainPush, unknown: list[str]) -> Response:
    return json_response(
        PushResult(
            session_id=req.session_id, stored=len(req.events), duplicates=0, unknown_fields=unknown
        )
    )


def _registered(
    req: SessionCreateRequest | PlainCreate,
    results: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    unknown: list[str] | None = None,
) -> Response:
    now = now_ms()
    return json_response(
        Session(
            session_id=req.session_id or "generated",
            search_query=req.search_query,
            search_results=results,
            search_meta=req.search_meta,
            payload_filter=req.payload_filter,
            sort_by=req.sort_by,
            user_id=req.user_id,
            created_at=now // 1000,
            created_at_ms=now,
            extra=extra,
            unknown_fields=unknown or [],
        )
    )


def create_app() -> FastAPI:
    app = _app("searchtrail ceiling")
    limits = app.state.clickstream.limits

    @app.post("/empty")
    async def empty(body: RawBody) -> Response:
        return Response(b"{}", media_type="application/json")

    @app.post("/session/events")
    async def push_events(body: RawBody) -> Response:
        req = parse_json(SessionAddEventsRequest, body, limits)
        return _pushed(req, req.unknown_fields)

    @app.post("/session")
    async def create_session(body: RawBody) -> Response:
        req = parse_json(SessionCreateRequest, body, limits)
        # The results as the service stores them.
        return _registered(req, req.results_as_stored(), req.extra, req.unknown_fields)

    return app


def create_lean_app() -> FastAPI:
    app = _app("searchtrail lean ceiling")

    @app.post("/session/events")
    async def push_events(body: RawBody) -> Response:
        return _pushed(PlainPush.model_validate_json(body), [])

    @app.post("/session")
    async def create_session(body: RawBody) -> Response:
        req = PlainCreate.model_validate_json(body)
        return _registered(req, [r.model_dump() for r in req.search_results])

    return app
