"""The browser script, served by the service so a page needs one ``<script>`` tag."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response

__all__ = ["router"]

router = APIRouter(tags=["browser"])


@cache
def _script() -> bytes:
    return files("searchtrail").joinpath("static/st.js").read_bytes()


@router.get(
    "/st.js",
    summary="The browser script (no key needed)",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}},
)
async def script() -> Response:
    return Response(
        _script(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )
