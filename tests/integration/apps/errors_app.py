"""Sources that fail before or after their first item, quiet ones, and ``stop_at_end`` streams.

Served by gunicorn (gevent, gthread) and Werkzeug for tests/integration/test_errors.py.
``/state`` counts the requests of each path and the sources started per tag, so a test can
see reconnects and producers from another process. ``/bare/...`` is a bare Werkzeug app.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from flask import Flask, abort, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import Forbidden
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from sse_sync import EventStreamView, ServerSentEvent, sse_response, sse_view
from tests.integration.apps import server_watchdog

server_watchdog.start()

app = Flask(__name__)

_lock = threading.Lock()
_requests: Counter[str] = Counter()
_started: Counter[str] = Counter()

PAGE = "<!doctype html><title>errors</title>"


def _forbidden() -> Iterator[Any]:
    abort(403)
    yield "never"


def _broken(tag: str) -> Iterator[Any]:
    raise RuntimeError(f"boom before the first item {tag}")
    yield "never"


class Price(BaseModel):
    symbol: str
    value: float


class Prices(EventStreamView):
    schema = Price

    def events(self, symbol: str) -> Iterator[Any]:
        yield {"symbol": symbol}  # no value: the first item does not match the schema


@app.before_request
def count() -> None:
    with _lock:
        _requests[request.path] += 1


@app.get("/")
def page() -> Any:
    return PAGE


@app.get("/state")
def state() -> Any:
    with _lock:
        return jsonify(requests=dict(_requests), started=dict(_started))


@app.get("/forbidden")
def forbidden() -> Any:
    return sse_response(_forbidden())


@app.get("/broken")
def broken() -> Any:
    return sse_response(_broken(request.args.get("tag", "")))


@app.get("/decorated")
@sse_view
def decorated() -> Iterator[Any]:
    abort(403)
    yield "never"


Prices.register(app, "/prices/<symbol>")


@app.get("/quiet/<tag>")
def quiet(tag: str) -> Any:
    """Nothing for 10 s, then one event."""

    def gen() -> Iterator[Any]:
        with _lock:
            _started[tag] += 1
        time.sleep(10)
        yield "late"

    return sse_response(gen())


@app.get("/job/<name>")
def job(name: str) -> Any:
    """Two events (or one, then an error, with ``?fail=1``), then the end event."""

    def gen() -> Iterator[Any]:
        yield ServerSentEvent(data=1, id="1", retry=100)
        if request.args.get("fail"):
            raise RuntimeError("the job broke after its first event")
        yield ServerSentEvent(data=2, id="2")

    return sse_response(gen(), stop_at_end=True)


@app.get("/flaky/<name>")
def flaky(name: str) -> Any:
    """One event, then an error: without stop_at_end, EventSource comes back after 100 ms."""

    def gen() -> Iterator[Any]:
        yield ServerSentEvent(data=1, id="1", retry=100)
        raise RuntimeError("the stream broke after its first event")

    return sse_response(gen())


@Request.application  # type: ignore[arg-type]
def bare(request: Request) -> Response:
    """A bare Werkzeug app: no Flask request context."""
    if request.path == "/forbidden":
        return sse_response(_forbidden())
    if request.path == "/broken":
        return sse_response(_broken(request.args.get("tag", "")))
    raise Forbidden()


app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/bare": bare})  # type: ignore[method-assign]
