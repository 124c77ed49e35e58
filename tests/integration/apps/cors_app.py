"""The app of the cross-origin browser tests: one CORS value on every entry point.

Started twice: once to serve the page (``GET /``), once as the API, with
``SSE_SYNC_CORS_PAGE`` set to the page's origin, the only one the API allows. Every stream
sends the ``session`` cookie it got, so a test sees whether credentials went through.
``GET /state`` lists the requests seen: method, path and ``Origin``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, jsonify, request

from sse_sync import (
    CORS,
    SSE,
    EventStreamView,
    ServerSentEvent,
    last_event_id,
    sse_response,
    sse_view,
)
from tests.integration.apps import server_watchdog

server_watchdog.start()

PAGE = os.environ.get("SSE_SYNC_CORS_PAGE")
#: Allows the page, without cookies.
allowed = CORS(PAGE) if PAGE else None
#: Allows the page, with cookies.
with_cookies = CORS(PAGE, credentials=True) if PAGE else None
SEEN: list[tuple[str, str, str | None]] = []

app = Flask(__name__)
app.config.update(SSE_CORS_ORIGINS=PAGE, SSE_CORS_CREDENTIALS=PAGE is not None, SSE_PING=1.0)
sse = SSE(app)  # GET /stream: only the default channel "sse" is public


@app.before_request
def note_request() -> None:
    SEEN.append((request.method, request.path, request.headers.get("Origin")))


@app.get("/")
def page() -> str:
    return "<!doctype html><title>page</title><p>cross-origin test page</p>"


@app.get("/state")
def state() -> Any:
    return jsonify(seen=SEEN)


@app.post("/publish")
def publish() -> Any:
    return jsonify(id=sse.publish("sse", request.get_json()))


def _who() -> str:
    return request.cookies.get("session", "anonymous")


@app.get("/plain")
def plain() -> Any:
    """Two connections: the first ends after one event, the reconnect gets the second."""
    resumed = last_event_id()

    def gen() -> Iterator[ServerSentEvent]:
        if resumed is None:
            yield ServerSentEvent(data=_who(), id="1", retry=100)
        else:
            yield ServerSentEvent(data=f"resumed after {resumed}", id="2")

    return sse_response(gen(), cors=allowed)


@app.get("/decorated")
@sse_view(cors=with_cookies)
def decorated() -> Iterator[str]:
    yield _who()


@app.post("/chat")
@sse_view(cors=allowed)
def chat() -> Iterator[str]:
    yield from request.get_json()["words"]


class Prices(EventStreamView):
    cors = allowed

    def events(self, **view_args: object) -> Iterator[str]:
        yield _who()


Prices.register(app, "/prices")
