"""The demo in a real browser: headless Chromium's EventSource against sse_sync's worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import ARTIFACTS, LiveServer, start_server

pytestmark = [pytest.mark.integration, pytest.mark.gevent, pytest.mark.browser]


# What the page must show for /stream/samples: exactly what was sent (every line break as LF).
EXPECTED_SAMPLES = [
    {"type": "sample", "id": "s1", "data": "plain text"},
    {"type": "sample", "id": "s2", "data": "line one\nline two\nline three\nline four"},
    {"type": "sample", "id": "s3", "data": ""},
    {"type": "sample", "id": "s4", "data": "  two leading spaces"},
    {"type": "sample", "id": "s5", "data": "caf\u00e9 \u2014 \u65e5\u672c \U0001f680 \u2028 sep"},
    {"type": "sample", "id": "s6", "data": "trailing newline\n"},
    {"type": "sample", "id": "s7", "data": '{"json":["x",1,null],"text":"a\\nb"}'},
    {"type": "message", "id": "s8", "data": '"unnamed"'},
]


@pytest.fixture(scope="module")
def demo() -> Iterator[LiveServer]:
    """The README's demo as ``dev.py demo`` serves it (one sse_sync gevent worker), ticking
    every 0.2 s."""
    server = start_server(
        "sse_sync",
        "tests.integration.apps.demo_app:app",
        env={"SSE_SYNC_DEMO_INTERVAL": "0.2"},
        ready_path="/",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, demo: LiveServer) -> Iterator[Any]:
    """A page with the demo open."""
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.set_default_timeout(20_000)
    page.goto(demo.url + "/")
    yield page
    page.close()


def test_tricky_payloads_arrive_exactly(page: Any) -> None:
    """Multi-line, Unicode, empty and leading-space payloads reach the page exactly as sent."""
    page.wait_for_function("window.sseLog.samples.length === 8")
    assert page.evaluate("window.sseLog.samples") == EXPECTED_SAMPLES
    assert page.locator("#samples tr").count() == 8


def test_named_events_reach_their_listeners(page: Any) -> None:
    """price, metrics and log events reach addEventListener and render on the dashboard."""
    page.wait_for_function(
        "['price', 'metrics', 'log'].every(t => window.sseLog.events.some(e => e.type === t))"
    )
    assert page.locator(".ticker").count() == 3
    assert page.text_content("#status") == "live"
    logs = [e["data"] for e in page.evaluate("window.sseLog.events") if e["type"] == "log"]
    assert all(" served " in line or "\n    SELECT" in line for line in logs)


def test_dropped_connection_resumes_without_gap(page: Any) -> None:
    """When the server drops the stream the browser resumes from Last-Event-ID: no gap or repeat."""
    page.wait_for_function("window.sseLog.events.length >= 10")
    opens = page.evaluate("window.sseLog.opens")
    before = page.evaluate("window.sseLog.events.length")
    page.click("#drop")
    page.wait_for_function(f"window.sseLog.opens > {opens}")
    page.wait_for_function(f"window.sseLog.events.length > {before + 10}")
    ids = [int(e["id"].split(":")[1]) for e in page.evaluate("window.sseLog.events")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert page.text_content("#gaps") == "0"
    assert page.text_content("#repeats") == "0"
    assert page.text_content("#reconnects") != "0"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000


# Collects every event of a stream, whatever its type, until the one with data "last".
_COLLECT = """([url, types]) => new Promise((resolve) => {
  const got = [];
  const source = new EventSource(url);
  const take = (event) => {
    got.push([event.type, event.data, event.lastEventId]);
    if (event.data === "last") { source.close(); resolve(got); }
  };
  for (const type of types) source.addEventListener(type, take);
})"""


def test_browser_reads_interop_payloads_as_the_spec_says(browser: Any) -> None:
    """Chromium's EventSource reads the interop test's tricky payloads exactly as the spec says."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    from sse_sync import sse_response

    from ..test_interop import TRICKY, spec_events

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        if request.path == "/tricky":
            return sse_response(TRICKY, ping=None)
        return Response("<!doctype html><title>interop</title>", mimetype="text/html")

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    page = browser.new_page()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        page.goto(url + "/")
        types = sorted({e.event or "message" for e in TRICKY})
        got = page.evaluate(_COLLECT, [url + "/tricky", types])
    finally:
        page.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert [tuple(row) for row in got] == [(t, d, i) for t, d, i, _ in spec_events(TRICKY)]
