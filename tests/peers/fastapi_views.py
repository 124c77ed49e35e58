"""fastapi-views' SSE example (examples/sse.py): a view class yielding event dicts.

``class SSEView(ServerSideEventsAPIView)`` becomes ``class SSEView(EventStreamView)``,
``response_schema`` is ``schema``, ``@sse_route(path, response_model=M)`` is
``@event_stream_route(path, schema=M)`` and ``router.register_view(SSEView, prefix="/sse")``
is ``SSEView.register(app, "/sse")``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask
from pydantic import BaseModel

from sse_sync import EventStreamView, event_stream_route


class APIModel(BaseModel):
    id: int
    name: str


class SSEView(EventStreamView):
    """
    Automatic server side event view based on `events` method
    """

    schema = APIModel

    def events(self) -> Iterator[Any]:
        yield {"event": "data", "data": {"id": 1, "name": "test"}}
        time.sleep(2)
        yield {"event": "data", "data": {"id": 2, "name": "test2"}}

    @event_stream_route("/custom-function", schema=APIModel)
    def function_sse_route(self) -> Iterator[Any]:
        yield {"event": "data", "data": {"id": 1, "name": "test"}}
        time.sleep(2)
        yield {"event": "data", "data": {"id": 2, "name": "test2"}}


class Quote(BaseModel):
    symbol: str
    price: float


class QuoteView(EventStreamView):
    """Query parameters, as fastapi-views fills them: GET /quotes?symbol=AAPL&count=2."""

    schema = Quote

    def events(self, symbol: str, count: int = 3) -> Iterator[Any]:
        for i in range(count):
            yield {"event": "price", "data": {"symbol": symbol, "price": 182.5 + i}}
            time.sleep(1)


def register(app: Flask) -> None:
    SSEView.register(app, "/sse")
    QuoteView.register(app, "/quotes")
