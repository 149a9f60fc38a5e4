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

import ipaddress
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPBearer
from fastapi.security.base import SecurityBase
from starlette.concurrency import run_in_threadpool

from searchtrail.errors import Forbidden, Unauthorized
from searchtrail.keys import ApiKeyInfo, Scope
from searchtrail.ratelimit import RateLimiter
from searchtrail.service import Clickstream

__all__ = ["IngestGuard", "Limiters", "MetricsGuard", "ScopeGuard"]

QUERY_KEY = "key"


@dataclass(frozen=True)
class Limiters:
    per_key: RateLimiter
    per_ip: RateLimiter


# FastAPI's security schemes, for the OpenAPI document only (``install_openapi`` lists
# them on each guarded route, so /docs offers "Authorize"). The guards read the headers
# themselves: as sub-dependencies they cost three dependency solves on every request.
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")
QUERY = APIKeyQuery(
    name=QUERY_KEY,
    auto_error=False,
    description="?key=KEY, for browsers' sendBeacon: ingest routes and ingest-only keys only",
)


def _bearer(request: Request) -> str | None:
    """What ``HTTPBearer`` would read: the credentials of an ``Authorization: Bearer`` header."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" else None


class _Guard:
    security_schemes: tuple[SecurityBase, ...] = (BEARER, HEADER)
    rate_limited = True

    def __init__(self, scope: Scope, *also: Scope) -> None:
        self.scope = scope
        self.accepted = frozenset((scope, *also))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scope.value})"

    async def check(self, request: Request, query: str | None = None) -> ApiKeyInfo | None:
        cs: Clickstream = request.app.state.clickstream
        limiters: Limiters = request.app.state.limiters
        keys = cs.keys
        required = keys.required_cached()
        if required is None:
            required = await run_in_threadpool(keys.required)
        if not required:
            if self.rate_limited:
                ip = request.client.host if request.client else "unknown"
                limiters.per_ip.take(f"ip:{ip}", f"client {ip}")
            return None
        in_url = False
        bearer = (_bearer(request) or "").strip()
        header = (request.headers.get("x-api-key") or "").strip()
        if bearer:
            key: str | None = bearer
        elif header:
            key = header
        else:
            key, in_url = query or None, bool(query)
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
        if self.accepted.isdisjoint(info.scopes):
            others = "".join(f" or {s.value!r}" for s in sorted(self.accepted - {self.scope}))
            raise Forbidden(
                f"API key {info.prefix} lacks the {self.scope.value!r} scope{others} "
                "this endpoint needs"
            )
        if self.rate_limited:
            limiters.per_key.take(f"key:{info.key_id}", f"API key {info.prefix}")
        request.state.api_key = info
        return info


class ScopeGuard(_Guard):
    """Lets a request through if its key, sent in a header, has ``scope``."""

    async def __call__(self, request: Request) -> ApiKeyInfo | None:
        return await self.check(request)


class IngestGuard(_Guard):
    """The ingest scope, which also takes an ingest-only key in the URL (``?key=``)."""

    security_schemes = (BEARER, HEADER, QUERY)

    def __init__(self) -> None:
        super().__init__(Scope.INGEST)

    async def __call__(self, request: Request) -> ApiKeyInfo | None:
        return await self.check(request, request.query_params.get(QUERY_KEY))


class MetricsGuard(_Guard):
    """``/metrics``, off the rate limits: open on a service without keys and to a client
    on loopback that no proxy forwarded; else a key with the ``metrics`` scope, or one
    with ``read`` or ``admin`` (which may read more than the metrics already)."""

    rate_limited = False

    def __init__(self) -> None:
        super().__init__(Scope.METRICS, Scope.READ, Scope.ADMIN)

    async def __call__(self, request: Request) -> ApiKeyInfo | None:
        if _direct_from_loopback(request):
            return None
        return await self.check(request)


# A proxy on this host makes every client look local; one that says whom it forwards
# for (uvicorn then shows that client, or we see the header) is not given the pass.
_FORWARDING = ("forwarded", "x-forwarded-for", "x-real-ip")


def _direct_from_loopback(request: Request) -> bool:
    if request.client is None or any(h in request.headers for h in _FORWARDING):
        return False
    try:
        ip = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
