"""Errors before the first item, prompt headers and stop_at_end on real servers and in Chromium."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import (
    LiveServer,
    StreamClient,
    start_server,
    wait_until,
)

pytestmark = pytest.mark.integration

ERRORS_APP = "tests.integration.apps.errors_app:app"
KINDS = ["gevent", "gthread", "werkzeug"]

#: The default open_timeout is 0.5 s; a read timeout well above it, far below the 10 s a quiet
#: source waits, tells "headers at the open deadline" from "headers with the first event".
HEADERS_WITHIN = 3.0


@pytest.fixture(params=KINDS, scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The errors app under each server kind, shared by the tests of this module."""
    live = start_server(request.param, ERRORS_APP)
    yield live
    live.stop()


def get(server: LiveServer, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """One request on a new connection; the response is read to its end."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/forbidden", 403),
        ("/broken", 500),
        ("/decorated", 403),
        ("/prices/ABC", 500),
        ("/bare/forbidden", 403),
        ("/bare/broken", 500),
    ],
)
def test_error_before_the_first_item_is_the_status(
    server: LiveServer, path: str, status: int
) -> None:
    """A source failing before its first item answers with its status, not a 200 stream."""
    response = get(server, path)
    assert response.status == status
    assert "text/event-stream" not in (response.getheader("Content-Type") or "")


@pytest.mark.parametrize("path", ["/broken", "/bare/broken"])
def test_error_before_the_first_item_is_logged_once(server: LiveServer, path: str) -> None:
    """The 500's exception is logged once, with its traceback, by Flask or by the server."""
    tag = f"{path.replace('/', '-')}-{uuid.uuid4().hex}"
    marker = f"RuntimeError: boom before the first item {tag}"
    assert get(server, f"{path}?tag={tag}").status == 500
    wait_until(lambda: marker in server.log)
    start = server.log.index(marker)
    # The traceback is logged with it; and once only (sse_sync adds nothing).
    assert "Traceback (most recent call last)" in server.log[:start]
    wait_until(lambda: server.state())  # a later request: anything logged twice is in by now
    assert server.log.count(marker) == 1


def test_quiet_stream_sends_its_headers_at_the_open_deadline(server: LiveServer) -> None:
    """A source silent for 10 s still has its status, headers and a ping within the deadline."""
    with StreamClient(server.port, "/quiet/get", timeout=HEADERS_WITHIN) as client:
        assert client.response.status == 200
        assert client.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert client.read_until(lambda b: b == b": ping\n\n", timeout=HEADERS_WITHIN)


def test_head_starts_no_source(server: LiveServer) -> None:
    """A HEAD request gets the stream's headers at once and starts nothing."""
    response = get(server, "/quiet/head", method="HEAD")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert server.state()["started"].get("head", 0) == 0


# Opens an EventSource; resolves once the browser closed it for good (readyState CLOSED),
# with every message and end event it saw.
_UNTIL_CLOSED = """(url) => new Promise((resolve) => {
  const seen = [];
  const source = new EventSource(url);
  source.onmessage = (event) => seen.push(event.data);
  source.addEventListener("end", (event) => seen.push("end " + event.lastEventId));
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) resolve(seen);
  };
})"""

# Opens an EventSource and keeps it open (window.flaky), counting its errors.
_KEEP_OPEN = """(url) => {
  window.flaky = new EventSource(url);
}"""


@pytest.fixture(scope="module")
def browser_page(browser: Any) -> Iterator[tuple[Any, LiveServer]]:
    """A page of the errors app under gunicorn's gevent worker, in headless Chromium."""
    live = start_server("gevent", ERRORS_APP)
    page = browser.new_page()
    try:
        page.set_default_timeout(20_000)
        page.goto(live.url + "/")
        yield page, live
    finally:
        page.close()
        live.stop()


def requests_to(server: LiveServer, path: str) -> int:
    return int(server.state()["requests"].get(path, 0))


@pytest.mark.browser
@pytest.mark.gevent
def test_chromium_does_not_reconnect_after_a_403(browser_page: tuple[Any, LiveServer]) -> None:
    """EventSource fails the connection on the 403 and never asks again, unlike after a 200."""
    page, server = browser_page
    assert page.evaluate(_UNTIL_CLOSED, "/forbidden") == []
    # A stream that fails after its first event is reconnected to every 100 ms meanwhile.
    page.evaluate(_KEEP_OPEN, "/flaky/control")
    wait_until(lambda: requests_to(server, "/flaky/control") >= 3)
    page.evaluate("window.flaky.close()")
    assert requests_to(server, "/forbidden") == 1


@pytest.mark.browser
@pytest.mark.gevent
@pytest.mark.parametrize(("query", "events"), [("", ["1", "2"]), ("?fail=1", ["1"])])
def test_chromium_stops_after_the_end_event(
    browser_page: tuple[Any, LiveServer], query: str, events: list[str]
) -> None:
    """With stop_at_end, EventSource reconnects once after the end event, gets 204 and stops."""
    page, server = browser_page
    path = f"/job/{'failing' if query else 'done'}"
    assert page.evaluate(_UNTIL_CLOSED, path + query) == [*events, "end sse_sync:end"]
    assert requests_to(server, path) == 2
