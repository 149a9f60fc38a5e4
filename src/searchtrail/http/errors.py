"""Where every error becomes an HTTP response, in one JSON shape: ``{"detail", "code"}``.

``detail`` is a message, or for invalid input a list of ``{loc, field, msg, type}``
as FastAPI clients already expect. Handlers never build error responses themselves.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from searchtrail.burstlog import BurstLog
from searchtrail.errors import (
    FieldError,
    InvalidInput,
    RateLimited,
    SearchtrailError,
    Unavailable,
)
from searchtrail.http.telemetry import count_database_error

__all__ = ["ErrorBody", "FieldErrorBody", "install_error_handlers"]

log = logging.getLogger("searchtrail")
# Storage failures repeat on every request until someone acts: one line per burst.
_outages = BurstLog(log)


class FieldErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int]
    field: str
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The shape above, for the OpenAPI document and the test that holds answers to it."""

    model_config = ConfigDict(extra="forbid")

    detail: str | list[FieldErrorBody]
    code: str


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


# The handlers are coroutines: Starlette runs a plain function in the thread pool,
# a thread hop on every error answer.


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SearchtrailError)
    if isinstance(exc, Unavailable):
        _outages.note(exc.code, f"{exc.detail} ({request.method} {request.url.path})")
    return _error_response(exc)


def _error_response(exc: SearchtrailError) -> JSONResponse:
    count_database_error(exc)  # /metrics: 503s and 507s, by code
    retry_after = exc.retry_after if isinstance(exc, RateLimited | Unavailable) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(loc=tuple(e["loc"]), msg=str(e["msg"]), type=str(e["type"]))
        for e in exc.errors()
    ]
    return _error_response(InvalidInput(errors))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return JSONResponse(
        {"detail": exc.detail, "code": code}, status_code=exc.status_code, headers=headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method the path answers: Starlette names only the first route on the path,
    so a 405 at ``/session`` would say ``Allow: GET`` where POST is served too."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):  # included routers' routes too
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error", "code": "internal"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SearchtrailError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
