"""The dashboard: static files (``static/dashboard``) served under ``/dashboard/``.

The files hold no data, so they are public, as ``/st.js`` is; the page reads the metrics
API (``read`` scope) like any other client, with the key its user gives it. Only the
files of the package's dashboard directory are served, each with the type of its suffix;
they are read once and kept in memory (under 100 KB).

One more answer sits beside them: ``clickmodels.json``, the names of the click models the
click model API accepts (the registry it checks ``model`` against), for the page's model
select. Names of code, not data: public like the files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from searchtrail.clickmodels.registry import MODELS

__all__ = ["CONTENT_TYPES", "router"]

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
}

# The page talks to its own origin only, runs only its own files, and may not be framed.
# uPlot sets styles through the CSSOM (element.style), which style-src does not restrict.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with the package: revalidate each time (the ETag makes it cheap).
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _walk(directory: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in directory.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
            continue
        suffix = entry.name if "." not in entry.name else "." + entry.name.rsplit(".", 1)[1]
        media_type = CONTENT_TYPES.get(suffix)
        if media_type is not None:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[name] = Asset(body, media_type, etag)
    return found


@cache
def assets() -> dict[str, Asset]:
    """Path under /dashboard/ -> the file, for every servable file of the package's dashboard."""
    return _walk(files("searchtrail").joinpath("static/dashboard"))


def _answer(request: Request, path: str) -> Response:
    asset = assets().get(path)
    if asset is None:
        raise HTTPException(404, "Not Found")
    headers = {**HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/dashboard")
async def dashboard_redirect() -> RedirectResponse:
    # Relative, so a proxy that serves the service under a path prefix keeps it.
    return RedirectResponse("dashboard/", status_code=308)


@router.get("/dashboard/")
async def dashboard(request: Request) -> Response:
    return _answer(request, "index.html")


@router.get("/dashboard/clickmodels.json")
async def dashboard_click_models() -> Response:
    body = json.dumps({"models": sorted(MODELS)}).encode()
    return Response(body, media_type="application/json", headers=HEADERS)


@router.get("/dashboard/{path:path}")
async def dashboard_file(request: Request, path: str) -> Response:
    return _answer(request, path)
