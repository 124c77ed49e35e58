"""FastAPI's ``fastapi.sse`` (served by uvicorn): the endpoints of ``common``.

Path operations are generators with ``response_class=EventSourceResponse`` and a typed return,
FastAPI's documented fast path (items are validated and serialized by pydantic-core). ``/sleepy``
is a *sync* generator with plain ``time.sleep``, which FastAPI iterates in anyio's thread pool.
FastAPI's ping interval is a private module constant; it is set to ``PING`` here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any

import fastapi.routing
from common import PING, event
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse

fastapi.routing._PING_INTERVAL = PING  # type: ignore[attr-defined]

app = FastAPI()

_subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "ok"


@app.get("/stream", response_class=EventSourceResponse)
async def stream(n: int = 1000) -> AsyncIterable[dict[str, Any]]:
    for i in range(n):
        yield event(i)


@app.get("/sleepy", response_class=EventSourceResponse)
def sleepy(n: int = 5, sleep: float = 1.0) -> Iterable[dict[str, Any]]:
    for i in range(n):
        if i:
            time.sleep(sleep)  # plain blocking code: runs in the thread pool
        yield event(i)


@app.get("/idle", response_class=EventSourceResponse)
async def idle() -> AsyncIterable[dict[str, Any]]:
    await asyncio.Event().wait()
    yield event(0)


@app.get("/sub", response_class=EventSourceResponse)
async def sub(channel: str = "c") -> AsyncIterable[dict[str, Any]]:
    q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    _subscribers.setdefault(channel, set()).add(q)
    try:
        while True:
            yield await q.get()
    finally:
        _subscribers[channel].discard(q)


@app.post("/publish", response_class=PlainTextResponse)
async def publish(channel: str = "c", seq: int = 0) -> str:
    item = event(seq)
    for q in list(_subscribers.get(channel, ())):
        q.put_nowait(item)
    return "ok"


@app.get("/first", response_class=EventSourceResponse)
async def first() -> AsyncIterable[dict[str, Any]]:
    yield event(0)
