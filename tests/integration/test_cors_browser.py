"""Cross-origin streams in headless Chromium: a page on one port reads an API on another.

The page is served by Werkzeug's threaded server at http://127.0.0.1:PAGE; the API, under
gunicorn with gevent, allows that origin only. The same page loaded as http://localhost:PAGE
is another origin, which the API refuses. A trial had found the extension reflecting any
``Origin`` with credentials when configured with ``"*"``: a page must read only what the
API's ``CORS`` value lets it.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import LiveServer, start_server

pytestmark = [pytest.mark.integration, pytest.mark.gevent, pytest.mark.browser]

APP = "tests.integration.apps.cors_app:app"

# Opens an EventSource and resolves with the messages it got: "ok" after `count` of them,
# "failed" when the browser fails the connection (a CORS refusal), "timeout" after 10 s.
_OPEN = """([url, withCredentials, count]) => new Promise((resolve) => {
  const got = [];
  const source = new EventSource(url, {withCredentials});
  const done = (outcome) => { source.close(); resolve({outcome, got}); };
  setTimeout(() => done("timeout"), 10000);
  source.onmessage = (e) => {
    got.push([JSON.parse(e.data), e.lastEventId]);
    if (got.length >= count) done("ok");
  };
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) done("failed"); };
})"""

# fetch() with a custom header (or a JSON POST), then the body read as a stream to its end.
_FETCH = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    const reader = response.body.getReader();
    let text = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return {status: response.status, text};
      text += new TextDecoder().decode(value);
    }
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[LiveServer, LiveServer]]:
    """The page server, then the API allowing only the page's origin."""
    page = start_server("werkzeug", APP)
    api = start_server("gevent", APP, env={"SSE_SYNC_CORS_PAGE": page.url})
    yield page, api
    api.stop()
    page.stop()


@pytest.fixture(scope="module")
def context(browser: Any, servers: tuple[LiveServer, LiveServer]) -> Iterator[Any]:
    """A browser context with a session cookie for 127.0.0.1, the host of both servers."""
    context = browser.new_context()
    context.add_cookies([{"name": "session", "value": "ann", "url": servers[1].url}])
    yield context
    context.close()


def _page(context: Any, url: str) -> Any:
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    return page


@pytest.fixture(scope="module")
def allowed_page(context: Any, servers: tuple[LiveServer, LiveServer]) -> Iterator[Any]:
    """A page at the origin the API allows."""
    page = _page(context, servers[0].url)
    yield page
    page.close()


@pytest.fixture(scope="module")
def refused_page(context: Any, servers: tuple[LiveServer, LiveServer]) -> Iterator[Any]:
    """The same page at http://localhost:PORT, an origin the API does not list."""
    page = _page(context, servers[0].url.replace("127.0.0.1", "localhost"))
    yield page
    page.close()


def _seen(api: LiveServer) -> list[tuple[str, str, str | None]]:
    """The requests the API has seen: method, path and Origin."""
    return [tuple(row) for row in api.state()["seen"] if row[1] != "/state"]


def _preflights(api: LiveServer) -> list[str]:
    return [path for method, path, _ in _seen(api) if method == "OPTIONS"]


@pytest.mark.parametrize(
    ("path", "with_credentials", "expected"),
    [
        ("/plain", False, [["anonymous", "1"], ["resumed after 1", "2"]]),
        ("/decorated", False, [["anonymous", ""]]),
        ("/decorated", True, [["ann", ""]]),
        ("/prices", False, [["anonymous", ""]]),
    ],
)
def test_an_allowed_origin_reads_every_entry_point(
    allowed_page: Any,
    servers: tuple[LiveServer, LiveServer],
    path: str,
    with_credentials: bool,
    expected: list[list[str]],
) -> None:
    """sse_response, sse_view and EventStreamView streams reach the allowed page, cookies too.

    EventSource sends no preflight, not even when it reconnects with Last-Event-ID.
    """
    api = servers[1]
    before = _preflights(api)
    result = allowed_page.evaluate(_OPEN, [api.url + path, with_credentials, len(expected)])
    assert result == {"outcome": "ok", "got": expected}
    assert _preflights(api) == before


def test_an_allowed_origin_reads_the_extension_with_cookies(
    allowed_page: Any, servers: tuple[LiveServer, LiveServer]
) -> None:
    """The extension's stream, with SSE_CORS_CREDENTIALS, reaches a withCredentials page."""
    api = servers[1]
    first = api_publish(api, {"n": 1})
    api_publish(api, {"n": 2})
    url = f"{api.url}/stream?lastEventId={first}"
    result = allowed_page.evaluate(_OPEN, [url, True, 1])
    assert result["outcome"] == "ok"
    assert [data for data, _ in result["got"]] == [{"n": 2}]


@pytest.mark.parametrize(
    ("path", "with_credentials"),
    [
        ("/plain", False),
        ("/decorated", True),
        ("/prices", False),
        ("/stream", True),
        # Allowed origin, but this CORS value has no credentials: the browser refuses.
        ("/plain?credentials", True),
    ],
)
def test_a_refused_origin_reads_nothing(
    refused_page: Any,
    allowed_page: Any,
    servers: tuple[LiveServer, LiveServer],
    path: str,
    with_credentials: bool,
) -> None:
    """Another origin, or credentials the CORS value does not allow, fail the EventSource.

    The server did answer: the browser refused to let the page read the answer.
    """
    page = allowed_page if path.endswith("?credentials") else refused_page
    api = servers[1]
    before = len(_seen(api))
    result = page.evaluate(_OPEN, [api.url + path, with_credentials, 1])
    assert result == {"outcome": "failed", "got": []}
    origin = page.evaluate("location.origin")
    assert _seen(api)[before:] == [("GET", path.partition("?")[0], origin)]


def test_fetch_with_a_custom_header_is_preflighted(
    allowed_page: Any, refused_page: Any, servers: tuple[LiveServer, LiveServer]
) -> None:
    """fetch() with a custom header and cookies passes sse_view's preflight; others fail it."""
    api = servers[1]
    init = {"headers": {"X-Token": "t"}, "credentials": "include"}
    before = _preflights(api)
    result = allowed_page.evaluate(_FETCH, [api.url + "/decorated", init])
    assert result == {"status": 200, "text": 'data: "ann"\n\n'}
    assert _preflights(api) == [*before, "/decorated"]
    refused = refused_page.evaluate(_FETCH, [api.url + "/decorated", init])
    assert "Failed to fetch" in refused["error"]


def test_a_json_post_stream_is_preflighted(
    allowed_page: Any, servers: tuple[LiveServer, LiveServer]
) -> None:
    """A JSON POST to an sse_view(cors=...) route passes its preflight and streams the answer."""
    api = servers[1]
    init = {
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": '{"words": ["hello", "world"]}',
    }
    before = _preflights(api)
    result = allowed_page.evaluate(_FETCH, [api.url + "/chat", init])
    assert result == {"status": 200, "text": 'data: "hello"\n\ndata: "world"\n\n'}
    assert _preflights(api) == [*before, "/chat"]


def api_publish(api: LiveServer, data: Any) -> str:
    """Publish ``data`` on the API's default channel; return the event's id."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        body = json.dumps(data)
        conn.request("POST", "/publish", body, {"Content-Type": "application/json"})
        return str(json.loads(conn.getresponse().read())["id"])
    finally:
        conn.close()
