"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from searchtrail.errors import PayloadTooLarge
from searchtrail.http.auth import IngestGuard, ScopeGuard
from searchtrail.keys import ApiKeyInfo, Scope
from searchtrail.service import Clickstream

__all__ = [
    "AdminKey",
    "ClickstreamDep",
    "IngestKey",
    "RawBody",
    "ReadKey",
    "clickstream_of",
    "get_clickstream",
    "read_body",
]


def clickstream_of(request: Request) -> Clickstream:
    cs: Clickstream = request.app.state.clickstream
    return cs


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes the configured size."""
    cs = clickstream_of(request)
    limit = cs.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def get_clickstream(request: Request) -> Clickstream:
    """A coroutine: FastAPI runs a plain-function dependency in the thread pool."""
    return clickstream_of(request)


ClickstreamDep = Annotated[Clickstream, Depends(get_clickstream)]
RawBody = Annotated[bytes, Depends(read_body)]

# The key a request was let in with (None while the service has no keys). Declare it
# first in a route, so an unauthorized request is refused before its body is read.
IngestKey = Annotated[ApiKeyInfo | None, Depends(IngestGuard())]
ReadKey = Annotated[ApiKeyInfo | None, Depends(ScopeGuard(Scope.READ))]
AdminKey = Annotated[ApiKeyInfo | None, Depends(ScopeGuard(Scope.ADMIN))]
