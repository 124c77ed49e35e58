"""sse_sync: the endpoints of ``common`` as a Flask app (served by gunicorn, gevent or gthread).

``BENCH_BROKER`` picks the broker behind ``/sub`` and ``/publish``: ``memory`` (default) or
``redis`` (with ``BENCH_REDIS_URL``). ``/idle`` is a broker subscription on a quiet channel:
one greenlet per stream, no producer. ``/idle_gen`` is a blocking generator: a producer
greenlet per stream besides the request's, blocked in ``queue.get()``; sse_sync pings for it.
``BENCH_METRICS=1`` (``run.py --metrics``) enables ``sse_sync.metrics``, to measure what they cost.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from typing import Any

from common import PING, event, float_arg, int_arg, server_stats
from flask import Flask, request

from sse_sync import MemoryBroker, RedisBroker, sse_response

app = Flask(__name__)

if os.environ.get("BENCH_METRICS") == "1":
    import sse_sync.metrics

    sse_sync.metrics.enable()


def _make_broker() -> MemoryBroker | RedisBroker:
    if os.environ.get("BENCH_BROKER", "memory") == "redis":
        return RedisBroker(os.environ["BENCH_REDIS_URL"])
    return MemoryBroker()


broker = _make_broker()


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/stream")
def stream() -> Any:
    n = int_arg(request.args.get("n"), 1000)

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(n):
            yield event(i)

    return sse_response(gen())


@app.get("/sleepy")
def sleepy() -> Any:
    n = int_arg(request.args.get("n"), 5)
    pause = float_arg(request.args.get("sleep"), 1.0)

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(n):
            if i:
                time.sleep(pause)  # plain blocking code
            yield event(i)

    return sse_response(gen())


@app.get("/idle")
def idle() -> Any:
    return sse_response(broker.subscribe("quiet"), ping=PING)


@app.get("/idle_gen")
def idle_gen() -> Any:
    changes: queue.Queue[dict[str, Any]] = queue.Queue()  # nothing is ever put in it

    def gen() -> Iterator[dict[str, Any]]:
        while True:
            yield changes.get()  # blocks for ever: the pings are sse_sync's

    return sse_response(gen(), ping=PING)


@app.get("/sub")
def sub() -> Any:
    return sse_response(broker.subscribe(request.args.get("channel", "c")))


@app.post("/publish")
def publish() -> str:
    seq = int_arg(request.args.get("seq"), 0)
    return broker.publish(request.args.get("channel", "c"), event(seq))


@app.get("/first")
def first() -> Any:
    return sse_response(iter([event(0)]))


@app.get("/stats")
def stats() -> dict[str, Any]:
    return server_stats()
