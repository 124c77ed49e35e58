"""Each peer's tutorial, migrated by one line, in Chromium's EventSource (gunicorn, gevent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import LiveServer, start_server

pytestmark = [pytest.mark.integration, pytest.mark.gevent, pytest.mark.browser]

# Collects the first `count` events of a stream (of the given types), then closes it.
_COLLECT = """([url, types, count]) => new Promise((resolve, reject) => {
  const got = [];
  const source = new EventSource(url);
  const timer = setTimeout(() => {
    source.close();
    reject(new Error("timeout, got " + JSON.stringify(got)));
  }, 15000);
  const take = (event) => {
    got.push([event.type, event.data, event.lastEventId]);
    if (got.length === count) { clearTimeout(timer); source.close(); resolve(got); }
  };
  for (const type of types) source.addEventListener(type, take);
})"""

ITEMS = [
    {"name": "Plumbus", "price": 32.99},
    {"name": "Portal Gun", "price": 999.99},
    {"name": "Meeseeks Box", "price": 49.99},
]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


#: path -> what the page's EventSource dispatches: (type, data, lastEventId).
SEEN: dict[str, list[tuple[str, str, str]]] = {
    "/naive/stream": [("message", f"Message {i}", "") for i in range(1, 6)],
    "/naive/starlette": [("message", f"Message {i}", "") for i in range(1, 6)],
    "/fastapi-sse/items/stream-no-async": [("message", _json(item), "") for item in ITEMS],
    "/fastapi-sse/items/stream": [
        ("item_update", _json(item), str(i)) for i, item in enumerate(ITEMS, 1)
    ],
    "/fastapi-sse/logs/stream": [
        ("message", "2025-01-01 INFO  Application started", ""),
        ("message", "2025-01-01 DEBUG Connected to database", ""),
        ("message", "2025-01-01 WARN  High memory usage detected", ""),
    ],
    "/sse-starlette/numbers": [("message", str(i), "") for i in range(1, 6)],
    "/sse-starlette/multiline": [
        ("multiline", "First line\nwith newlines\ninside", "1"),
        ("multiline", "Second message", "2"),
        ("multiline", "Third line\nwith CRLF", "3"),
        ("multiline", "Final message", "4"),
    ],
    "/sse-starlette/text": [
        ("message", "hello", ""),
        ("message", "two\nlines", ""),
        ("message", "last", ""),
    ],
    "/sse": [
        ("data", _json({"id": 1, "name": "test"}), ""),
        ("data", _json({"id": 2, "name": "test2"}), ""),
    ],
    "/sse/custom-function": [
        ("data", _json({"id": 1, "name": "test"}), ""),
        ("data", _json({"id": 2, "name": "test2"}), ""),
    ],
    "/quotes?symbol=AAPL&count=2": [
        ("price", _json({"symbol": "AAPL", "price": 182.5}), ""),
        ("price", _json({"symbol": "AAPL", "price": 183.5}), ""),
    ],
}


@pytest.fixture(scope="module")
def peers_server() -> Iterator[LiveServer]:
    """The tutorials under gunicorn with one gevent worker."""
    server = start_server("gevent", "tests.integration.apps.peers_app:app", ready_path="/")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, peers_server: LiveServer) -> Iterator[Any]:
    """A blank page on the tutorials' server."""
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(peers_server.url + "/")
    yield page
    page.close()


@pytest.mark.parametrize("path", list(SEEN))
def test_browser_sees_what_the_tutorial_meant(
    page: Any, peers_server: LiveServer, path: str
) -> None:
    """Chromium dispatches exactly the events the peer's tutorial meant, in order."""
    expected = SEEN[path]
    types = sorted({event_type for event_type, _, _ in expected})
    got = page.evaluate(_COLLECT, [peers_server.url + path, types, len(expected)])
    assert [tuple(row) for row in got] == expected
    assert "Traceback" not in peers_server.log
    assert "logged once per stream" not in peers_server.log


# The naive demo's page, as such tutorials write it: each message appended to a list.
_NAIVE_PAGE = """url => {
  document.body.innerHTML = '<ul id="messages"></ul>';
  const source = new EventSource(url);
  source.onmessage = (event) => {
    const li = document.createElement("li");
    li.textContent = event.data;
    document.getElementById("messages").appendChild(li);
    if (event.data === "Message 5") source.close();
  };
}"""


def test_naive_demo_shows_messages_in_the_page(page: Any, peers_server: LiveServer) -> None:
    """The classic naive demo's page lists Message 1 to Message 5, unquoted."""
    page.evaluate(_NAIVE_PAGE, peers_server.url + "/naive/stream")
    page.wait_for_function("document.querySelectorAll('#messages li').length === 5")
    texts = page.locator("#messages li").all_text_contents()
    assert texts == [f"Message {i}" for i in range(1, 6)]
