"""The browser script in a real headless Chromium against a real `searchtrail serve`.

The page comes from another origin (a second local HTTP server), so CORS, the text/plain
body, the ingest key in the URL and the browser prefix are all on the path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from searchtrail import Clickstream
from searchtrail.errors import SessionNotFound
from tests.chromium import chromium
from tests.support import free_port, serve

pytestmark = pytest.mark.browser

T = TypeVar("T")

SEARCH_PAGE = """<!doctype html>
<html><head><title>results</title></head><body>
<script src="{service}/t/st.js" data-key="{key}" data-flush-ms="{flush_ms}"></script>
<script>
  searchtrail.session({{session_id: "browser-s1", search_query: "red shoes",
                       search_results: [{{object_id: "sku-1"}}, {{object_id: "sku-2"}}]}});
</script>
<ul><li><a id="r1" href="/next.html" data-st-object="sku-1">Red shoe</a></li>
    <li><a id="r2" href="/next.html" data-st-object="sku-2">Other shoe</a></li></ul>
</body></html>
"""


@contextmanager
def pages(files: dict[str, str]) -> Iterator[str]:
    """A tiny site on its own port: another origin than the service."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def eventually(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll until ``check`` gives a value: a bound on waiting, not an assertion on speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_click_then_leave_the_page_stores_the_event(database_url: str, tmp_path: Path) -> None:
    with Clickstream(database_url) as cs:
        key = cs.keys.create("shop pages", ["ingest"]).key
    site: dict[str, str] = {"/next.html": "<!doctype html><p>product page</p>"}
    with pages(site) as origin:
        env = {"SEARCHTRAIL_CORS_ORIGINS": f'["{origin}"]', "SEARCHTRAIL_BROWSER_PREFIX": "/t"}
        with (
            serve(database_url, tmp_path, env=env) as service,
            Clickstream(database_url) as cs,
            chromium(tmp_path / "profile") as page,
        ):
            # A flush delay far longer than the test: only leaving the page sends the click.
            site["/search.html"] = SEARCH_PAGE.format(
                service=service.url, key=key, flush_ms=600_000
            )
            page.goto(f"{origin}/search.html")

            def registered() -> bool | None:
                try:
                    return cs.get_session("browser-s1") is not None
                except SessionNotFound:
                    return None

            eventually(registered, "the session registered by the page")
            # The page saw the service's answer, which needs CORS to allow its origin.
            eventually(lambda: page.evaluate("searchtrail.pending() === 0") or None, "queue")
            page.evaluate("document.getElementById('r1').click()")
            page.wait_for("Page.loadEventFired")
            assert page.evaluate("location.pathname") == "/next.html"

            def clicked() -> list[tuple[str, str | None]] | None:
                events = cs.get_session("browser-s1").events
                return [(e.event_type, e.object_id) for e in events] or None

            assert eventually(clicked, "the click sent on leaving the page") == [("click", "sku-1")]
            stored = cs.get_session("browser-s1")
            assert stored.search_query == "red shoes"
            assert [r.object_id for r in stored.search_results] == ["sku-1", "sku-2"]
        assert key.split("_", 2)[2] not in service.log.read_text()


RETRY_PAGE = """<!doctype html>
<html><body>
<script src="{service}/st.js" data-key="{key}" data-flush-ms="0" data-session="late"></script>
<button id="b" data-st-object="sku-9">add</button>
</body></html>
"""


def test_a_refused_push_is_retried_until_the_session_exists(
    database_url: str, tmp_path: Path
) -> None:
    """The backend registers sessions itself, later than the page sends its first click."""
    with Clickstream(database_url) as cs:
        key = cs.keys.create("shop pages", ["ingest"]).key
    site: dict[str, str] = {}
    with pages(site) as origin:
        env = {"SEARCHTRAIL_CORS_ORIGINS": f'["{origin}"]'}
        with (
            serve(database_url, tmp_path, env=env) as service,
            Clickstream(database_url) as cs,
            chromium(tmp_path / "profile") as page,
        ):
            site["/retry.html"] = RETRY_PAGE.format(service=service.url, key=key)
            page.call("Network.enable")
            page.goto(f"{origin}/retry.html")
            page.evaluate("document.getElementById('b').click()")

            def push_answered(status: int) -> Callable[[dict[str, Any]], bool]:
                def check(params: dict[str, Any]) -> bool:
                    response = params["response"]
                    return "/session/events" in response["url"] and response["status"] == status

                return check

            page.wait_for("Network.responseReceived", push_answered(404))
            assert page.evaluate("searchtrail.pending()") == 1
            cs.create_session(session_id="late", search_results=[{"object_id": "sku-9"}])
            page.wait_for("Network.responseReceived", push_answered(200))
            assert eventually(lambda: page.evaluate("searchtrail.pending() === 0") or None, "sent")
            assert [e.object_id for e in cs.get_session("late").events] == ["sku-9"]
