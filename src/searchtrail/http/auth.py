"""Who may call what: API-key scopes and rate limits, checked before a body is read.

Each guarded route declares one scope through a ``ScopeGuard`` dependency (the
``IngestKey``, ``ReadKey`` and ``AdminKey`` aliases of ``searchtrail.http.deps``).
While no key was ever created the service is open (``serve`` keeps it on loopback)
and only the per-IP limit applies; after that every guarded route needs a key that
has the route's scope.

A key travels in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Browsers'
``sendBeacon`` cannot set headers, so ingest routes also take ``?key=KEY``, but only
a key whose sole scope is ``ingest``: a URL ends up in proxies' logs, and such a key
can do no more than the page it sits in already does.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from searchtrail.errors import Forbidden, Unauthorized
from searchtrail.keys import ApiKeyInfo, Scope
from searchtrail.ratelimit import RateLimiter
from searchtrail.service import Clickstream

__all__ = ["Limiters", "ScopeGuard", "presented_key"]

QUERY_KEY = "key"


@dataclass(frozen=True)
class Limiters:
    per_key: RateLimiter
    per_ip: RateLimiter


def presented_key(request: Request, *, allow_query: bool) -> tuple[str | None, bool]:
    """The key the request carries, and whether it came in the URL."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), False
    header = request.headers.get("x-api-key")
    if header:
        return header.strip(), False
    if allow_query:
        in_url = request.query_params.get(QUERY_KEY)
        if in_url:
            return in_url, True
    return None, False


class ScopeGuard:
    """A FastAPI dependency that lets a request through if its key has ``scope``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"ScopeGuard({self.scope.value})"

    async def __call__(self, request: Request) -> ApiKeyInfo | None:
        cs: Clickstream = request.app.state.clickstream
        limiters: Limiters = request.app.state.limiters
        keys = cs.keys
        required = keys.required_cached()
        if required is None:
            required = await run_in_threadpool(keys.required)
        if not required:
            ip = request.client.host if request.client else "unknown"
            limiters.per_ip.take(f"ip:{ip}", f"client {ip}")
            return None
        key, in_url = presented_key(request, allow_query=self.scope is Scope.INGEST)
        if key is None:
            raise Unauthorized(
                "an API key is required: send Authorization: Bearer KEY or X-API-Key: KEY"
            )
        info = keys.verify_cached(key) or await run_in_threadpool(keys.verify, key)
        if info is None:
            raise Unauthorized("the API key is not valid, or it was revoked")
        if in_url and info.scopes != [Scope.INGEST]:
            raise Forbidden(
                f"API key {info.prefix} has scopes other than ingest; such a key is accepted "
                "only in a header, never in the URL"
            )
        if self.scope not in info.scopes:
            raise Forbidden(
                f"API key {info.prefix} lacks the {self.scope.value!r} scope this endpoint needs"
            )
        limiters.per_key.take(f"key:{info.key_id}", f"API key {info.prefix}")
        request.state.api_key = info
        return info
