"""The naive Flask event stream: ``Response(gen(), mimetype="text/event-stream")`` on gevent.

What most Flask tutorials show: the generator formats ``data: <json>\\n\\n`` itself, pings by
yielding a comment after ``time.sleep``, and fan-out is a set of ``queue.Queue`` (cooperative
under gevent's monkey-patching), one per subscriber. Its blocking generator (``/idle_gen``)
pings the way such code must: it waits with a timeout of the ping interval and yields
``: ping`` when the wait times out, and it yields one first, as gunicorn sends the headers
only with the first chunk (sse_sync sends its first ping after ``open_timeout``, 0.5 s).
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from typing import Any

from common import PING, event, float_arg, int_arg, server_stats
from flask import Flask, Response, request

app = Flask(__name__)

_subscribers: dict[str, set[queue.Queue[str]]] = {}


def _frame(data: dict[str, Any]) -> str:
    return "data: " + json.dumps(data) + "\n\n"


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/stream")
def stream() -> Response:
    n = int_arg(request.args.get("n"), 1000)

    def gen() -> Iterator[str]:
        for i in range(n):
            yield _frame(event(i))

    return Response(gen(), mimetype="text/event-stream")


@app.get("/sleepy")
def sleepy() -> Response:
    n = int_arg(request.args.get("n"), 5)
    pause = float_arg(request.args.get("sleep"), 1.0)

    def gen() -> Iterator[str]:
        for i in range(n):
            if i:
                time.sleep(pause)
            yield _frame(event(i))

    return Response(gen(), mimetype="text/event-stream")


@app.get("/idle")
def idle() -> Response:
    def gen() -> Iterator[str]:
        while True:
            yield ": ping\n\n"
            time.sleep(PING)

    return Response(gen(), mimetype="text/event-stream")


@app.get("/idle_gen")
def idle_gen() -> Response:
    changes: queue.Queue[dict[str, Any]] = queue.Queue()  # nothing is ever put in it

    def gen() -> Iterator[str]:
        yield ": ping\n\n"
        while True:
            try:
                item = changes.get(timeout=PING)
            except queue.Empty:
                yield ": ping\n\n"
                continue
            yield _frame(item)

    return Response(gen(), mimetype="text/event-stream")


@app.get("/sub")
def sub() -> Response:
    channel = request.args.get("channel", "c")
    q: queue.Queue[str] = queue.Queue()
    _subscribers.setdefault(channel, set()).add(q)

    def gen() -> Iterator[str]:
        try:
            while True:
                try:
                    yield q.get(timeout=15.0)
                except queue.Empty:
                    yield ": ping\n\n"
        finally:
            _subscribers[channel].discard(q)

    return Response(gen(), mimetype="text/event-stream")


@app.post("/publish")
def publish() -> str:
    seq = int_arg(request.args.get("seq"), 0)
    frame = _frame(event(seq))
    for q in list(_subscribers.get(request.args.get("channel", "c"), ())):
        q.put(frame)
    return "ok"


@app.get("/first")
def first() -> Response:
    def gen() -> Iterator[str]:
        yield _frame(event(0))

    return Response(gen(), mimetype="text/event-stream")


@app.get("/stats")
def stats() -> dict[str, Any]:
    return server_stats()
