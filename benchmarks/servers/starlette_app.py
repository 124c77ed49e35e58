"""sse-starlette on Starlette (served by uvicorn): the endpoints of ``common``.

Each library's documented way: async generators of ``JSONServerSentEvent`` for streams that do
not block, and a *sync* generator with plain ``time.sleep`` for ``/sleepy`` (sse-starlette runs
it in anyio's thread pool). Fan-out is one ``asyncio.Queue`` per subscriber.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from common import PING, event, float_arg, int_arg
from sse_starlette import EventSourceResponse, JSONServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

_subscribers: dict[str, set[asyncio.Queue[JSONServerSentEvent]]] = {}


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def stream(request: Request) -> EventSourceResponse:
    n = int_arg(request.query_params.get("n"), 1000)

    async def gen() -> AsyncIterator[JSONServerSentEvent]:
        for i in range(n):
            yield JSONServerSentEvent(event(i))

    return EventSourceResponse(gen())


async def sleepy(request: Request) -> EventSourceResponse:
    n = int_arg(request.query_params.get("n"), 5)
    pause = float_arg(request.query_params.get("sleep"), 1.0)

    def gen() -> Iterator[JSONServerSentEvent]:
        for i in range(n):
            if i:
                time.sleep(pause)  # plain blocking code: runs in the thread pool
            yield JSONServerSentEvent(event(i))

    return EventSourceResponse(gen())


async def idle(request: Request) -> EventSourceResponse:
    async def gen() -> AsyncIterator[JSONServerSentEvent]:
        await asyncio.Event().wait()
        yield JSONServerSentEvent(event(0))

    return EventSourceResponse(gen(), ping=PING)


async def sub(request: Request) -> EventSourceResponse:
    channel = request.query_params.get("channel", "c")
    q: asyncio.Queue[JSONServerSentEvent] = asyncio.Queue()
    _subscribers.setdefault(channel, set()).add(q)

    async def gen() -> AsyncIterator[JSONServerSentEvent]:
        try:
            while True:
                yield await q.get()
        finally:
            _subscribers[channel].discard(q)

    return EventSourceResponse(gen())


async def publish(request: Request) -> PlainTextResponse:
    seq = int_arg(request.query_params.get("seq"), 0)
    item = JSONServerSentEvent(event(seq))
    for q in list(_subscribers.get(request.query_params.get("channel", "c"), ())):
        q.put_nowait(item)
    return PlainTextResponse("ok")


async def first(request: Request) -> EventSourceResponse:
    async def gen() -> AsyncIterator[JSONServerSentEvent]:
        yield JSONServerSentEvent(event(0))

    return EventSourceResponse(gen())


def _routes() -> list[Any]:
    return [
        Route("/health", health),
        Route("/stream", stream),
        Route("/sleepy", sleepy),
        Route("/idle", idle),
        Route("/sub", sub),
        Route("/publish", publish, methods=["POST"]),
        Route("/first", first),
    ]


app = Starlette(routes=_routes())
