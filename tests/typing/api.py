"""Type-checked with mypy --strict, never executed: the public API as users write it."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from werkzeug.wrappers import Response

import sse_sync.metrics
from sse_sync import (
    EventStreamResponse,
    EventStreamView,
    ServerSentEvent,
    StreamClosed,
    event_stream_route,
    last_event_id,
    sse_response,
    sse_view,
    stream_closed,
    wait_closed,
)

app = Flask(__name__)


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/stream")
def stream_items() -> EventStreamResponse:
    start = int(last_event_id() or 0)

    def gen() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(comment="stream of item updates")
        for i in range(start, 10):
            yield ServerSentEvent(data=Item(name="x", price=i), event="item", id=str(i), retry=5000)
            time.sleep(1)

    return sse_response(gen(), ping=5.0, headers={"X-A": "b"}, runner="thread", queue_size=8)


@app.get("/job")
def job() -> EventStreamResponse:
    return sse_response(iter([1, 2]), open_timeout=1.0, stop_at_end=True)


@app.get("/ticks")
@sse_view(ping=None)
def ticks() -> Iterator[int]:
    yield 1


@app.get("/plain")
@sse_view
def plain() -> Iterator[int]:
    yield 1


@app.get("/starlette")
@sse_view(items="sse-starlette")
def starlette() -> Iterator[dict[str, object]]:
    yield {"data": 1, "event": "n"}


frames: EventStreamResponse = sse_response(iter(["data: x\n\n"]), items="default")
direct = EventStreamResponse(iter([1]), queue_size=256, runner="auto", close_timeout=1.0)


@app.after_request
def leave_streams_alone(response: Response) -> Response:
    if isinstance(response, EventStreamResponse):
        response.headers["X-Stream"] = "1"
    return response


response: Response = ticks()
frame: bytes = ServerSentEvent(raw_data="x").encode()
maybe_id: str | None = last_event_id({"HTTP_LAST_EVENT_ID": "1"})


class Stream(EventStreamView):
    schema = Item
    ping = 2.0
    retry = 5000
    items = "fastapi-views"

    def events(self, **view_args: object) -> Iterator[Item]:
        yield Item(name="a", price=1)

    def event_id(self, item: object) -> str | None:
        return None

    @event_stream_route("/more", schema=int)
    def more(self, count: int = 1) -> Iterator[int]:
        yield count


Stream.register(app, "/stream")


@app.get("/polling")
@sse_view
def polling() -> Iterator[int]:
    try:
        while not wait_closed(0.5):
            if not stream_closed():
                yield 1
    except StreamClosed:
        raise


sse_sync.metrics.enable()
sse_sync.metrics.enable(registry=CollectorRegistry())
sse_sync.metrics.disable()
