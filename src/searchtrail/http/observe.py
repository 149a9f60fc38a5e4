"""Each request counted, timed, given an id and (with JSON logs) logged: one ASGI layer.

It wraps the whole app, outside Starlette's ``ServerErrorMiddleware``, so that a 500 is
counted and carries ``X-Request-ID`` like every other answer. A plain ASGI callable, not
``BaseHTTPMiddleware``: that one runs the app in a task of its own and streams the answer
through a memory channel, tens of microseconds on every request of the push path.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from searchtrail.http.telemetry import observe_request
from searchtrail.logs import REQUEST_ID

__all__ = ["REQUEST_ID_HEADER", "RequestObserver", "route_template"]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
# A client's id is kept when it is 1 to 128 printable ASCII characters without spaces;
# anything else (empty, long, control characters that would split a log line) is
# replaced by a generated one.
_GIVEN_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# Methods outside these are counted as OTHER: a label from any string a client sends
# would make a series per string.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

log = logging.getLogger("searchtrail.request")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER:
            if _GIVEN_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return f"{_ids.prefix}{next(_ids.count):016x}"


class _Ids:
    """Generated ids: a random prefix per process and a counter, 32 hex digits. Unique
    across workers and restarts without a system call per request (os.urandom's would
    be most of this layer's cost); ids name requests, they guard nothing."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count(1)


_ids = _Ids()
# A forked child must not repeat its parent's ids.
os.register_at_fork(after_in_child=_ids.renew)


def route_template(scope: Scope) -> str:
    """The template of the route that answered, prefix included (``/session/events``,
    ``/dashboard/{path}``), never the raw path; ``unmatched`` when no route did.

    FastAPI shares one route object among the places a router is included; the template
    with its prefix is on the route context it selected (a scope key of FastAPI's own,
    tests/http/test_prometheus.py holds it to that; without it, the route's template,
    unprefixed, so that the prefixed and plain paths of an operation would merge).
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template is None:
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED


class RequestObserver:
    def __init__(self, app: ASGIApp, *, log_requests: bool) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        id_header = (_HEADER, request_id.encode())
        status = 500  # unless an answer starts: the server will answer 500 or drop it

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response's own may be reused by the app.
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            observe_request(route, method, status, seconds)
            if self.log_requests:
                _log(scope, method, route, status, seconds, request_id)
            REQUEST_ID.reset(token)


def _log(scope: Scope, method: str, route: str, status: int, seconds: float, rid: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    state: dict[str, Any] = scope.get("state") or {}
    key = state.get("api_key")  # set by the guard that let the request in (http/auth.py)
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
        "key_prefix": getattr(key, "prefix", None),
        "request_id": rid,
    }
    log.info("%s %s %d", method, route, status, extra=fields)
