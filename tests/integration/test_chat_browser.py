"""The chat example in Chromium: tokens stream into the page; Stop or a closed tab hang up.

The upstream (the fake model's stream) must be closed within a second of the browser going
away, on every server the library supports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import ARTIFACTS, LiveServer, start_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHAT_APP = "tests.integration.apps.chat_app:app"
#: How soon after Stop or a closed tab the upstream must be closed (seconds).
HANG_UP_WITHIN = 1.0


@pytest.fixture(
    scope="module",
    params=[pytest.param("gevent", marks=pytest.mark.gevent), "gthread", "werkzeug"],
)
def chat(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The chat example under gunicorn gevent, gunicorn gthread or Werkzeug's threaded server."""
    server = start_server(request.param, CHAT_APP, env={"SSE_SYNC_EXAMPLE_DELAY": "0.05"})
    yield server
    server.stop()


def _calls(server: LiveServer) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = server.state()["calls"]
    return calls


def _ask(chromium: Any, server: LiveServer, prompt: str) -> tuple[Any, dict[str, Any]]:
    """Open the page, send ``prompt``, wait for a few tokens; return the page and its call."""
    before = len(_calls(server))
    page = chromium.new_page(viewport={"width": 900, "height": 600})
    page.set_default_timeout(20_000)
    page.goto(server.url + "/")
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_function("window.chatLog.tokens.length >= 5")
    (call,) = _calls(server)[before:]
    assert call["prompt"] == prompt
    assert call["closed"] is None  # still generating
    return page, call


def _closed_after(server: LiveServer, call_id: int, since: float) -> dict[str, Any]:
    """Wait until the call's upstream is closed; check it was within HANG_UP_WITHIN of since."""

    def closed() -> dict[str, Any] | None:
        call = next(c for c in _calls(server) if c["id"] == call_id)
        return call if call["closed"] is not None else None

    call = wait_until(closed, timeout=10)
    assert not call["finished"]
    assert call["closed"] - since < HANG_UP_WITHIN, f"upstream closed late: {call}"
    return call


def test_tokens_stream_into_the_page_and_stop_closes_the_upstream(
    browser: Any,
    chat: LiveServer,
    request: pytest.FixtureRequest,
) -> None:
    """Tokens show up as they arrive; Stop aborts the fetch and the upstream closes within 1 s."""
    page, call = _ask(browser, chat, "Hello, stream")
    try:
        page.wait_for_function("window.chatLog.tokens.length >= 25")
        assert page.get_attribute("#status", "data-state") == "streaming"
        since = time.time()
        page.click("#stop")
        closed = _closed_after(chat, call["id"], since)
        page.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
        tokens = page.evaluate("window.chatLog.tokens")
        assert len(tokens) <= closed["tokens"]  # the page shows no more than the model produced
        text = page.text_content("#answer")
        assert text == "".join(tokens)  # each token appended as it came, spaces included
        assert text.startswith('You said: "Hello, stream". Server-sent events are a simple way')
        assert page.is_enabled("#send")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"chat-{request.node.callspec.params['chat']}.png"
        page.screenshot(path=str(shot))
    finally:
        page.close()


def test_closing_the_tab_closes_the_upstream(browser: Any, chat: LiveServer) -> None:
    """Closing the tab mid-answer closes the upstream within a second."""
    page, call = _ask(browser, chat, "Goodbye")
    since = time.time()
    page.close()
    _closed_after(chat, call["id"], since)
