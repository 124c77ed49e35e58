"""The main demo: a live dashboard fed by one event stream.

Run it with ``python3 dev.py demo`` (gunicorn, one gevent worker) and open http://127.0.0.1:8000.

A background publisher writes market prices, server metrics and log lines into an in-memory
history every ``SSE_SYNC_DEMO_INTERVAL`` seconds (default 1). Each browser tab streams them
from ``/stream`` with plain blocking code; a reconnecting browser sends ``Last-Event-ID`` and
gets exactly the events it missed. "Drop connection" asks the server to end that tab's
stream, so you can watch the browser reconnect and resume with no gap.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from flask import Flask, abort, request
from pydantic import BaseModel

from sse_sync import ServerSentEvent, last_event_id, sse_response

INTERVAL = float(os.environ.get("SSE_SYNC_DEMO_INTERVAL", "1.0"))
HISTORY = 1000
SYMBOLS = {"ACME": 120.0, "GLOBEX": 42.5, "INITECH": 7.25}

app = Flask(__name__)


class Price(BaseModel):
    symbol: str
    price: float
    change: float
    at: datetime


class Metrics(BaseModel):
    cpu: float
    memory: float
    requests_per_second: int
    at: datetime


class Feed:
    """A tiny in-process broker: a bounded history plus a condition to wait on."""

    def __init__(self, history: int) -> None:
        self._events: deque[ServerSentEvent] = deque(maxlen=history)
        self._next_id = 1
        self._changed = threading.Condition()

    def publish(self, data: Any = None, *, event: str, raw_data: str | None = None) -> None:
        with self._changed:
            self._events.append(
                ServerSentEvent(data=data, raw_data=raw_data, event=event, id=str(self._next_id))
            )
            self._next_id += 1
            self._changed.notify_all()

    def after(self, last_id: int, timeout: float) -> list[ServerSentEvent]:
        """Events with an id above ``last_id``; waits up to ``timeout`` seconds for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._next_id - 1 > last_id, timeout)
            return [e for e in self._events if int(e.id or 0) > last_id]

    @property
    def last_id(self) -> int:
        with self._changed:
            return self._next_id - 1


feed = Feed(HISTORY)
_drop_requests: set[str] = set()
_publisher_started = threading.Lock()


def _publish_forever() -> None:
    rng = random.Random(7)
    previous = dict(SYMBOLS)
    tick = 0
    while True:
        tick += 1
        now = datetime.now(timezone.utc)
        for symbol, base in SYMBOLS.items():
            value = base * (1 + 0.04 * math.sin(tick / 9 + len(symbol)) + rng.uniform(-0.01, 0.01))
            price = Price(symbol=symbol, price=round(value, 2), change=0.0, at=now)
            price.change = round(price.price - previous[symbol], 2)
            previous[symbol] = price.price
            feed.publish(price, event="price")
        feed.publish(
            Metrics(
                cpu=round(35 + 25 * math.sin(tick / 5) + rng.uniform(-5, 5), 1),
                memory=round(61 + 8 * math.sin(tick / 17), 1),
                requests_per_second=int(900 + 300 * math.sin(tick / 3) + rng.randint(-50, 50)),
                at=now,
            ),
            event="metrics",
        )
        line = (
            f"{now:%H:%M:%S} INFO  worker-{tick % 4} served /api/orders in {rng.randint(3, 90)} ms"
        )
        if tick % 7 == 0:  # a multi-line entry: raw_data keeps every line exactly
            line = (
                f"{now:%H:%M:%S} WARN  slow query ({rng.randint(300, 900)} ms)\n"
                "    SELECT * FROM orders\n"
                "    WHERE status = 'open'"
            )
        feed.publish(raw_data=line, event="log")
        time.sleep(INTERVAL)


def _start_publisher() -> None:
    # Started on the first request, inside the server's worker (after gevent has patched).
    if _publisher_started.acquire(blocking=False):
        threading.Thread(target=_publish_forever, name="demo-publisher", daemon=True).start()


@app.get("/")
def index() -> Any:
    _start_publisher()
    return app.send_static_file("demo.html")


@app.get("/stream")
def stream() -> Any:
    """The dashboard's stream: resumes after ``Last-Event-ID``, else starts with recent events."""
    _start_publisher()
    client = request.args.get("client", "")
    resume = last_event_id()
    start = int(resume) if resume and resume.isdigit() else max(0, feed.last_id - 20)

    def events() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(comment=f"resuming after {start}", retry=1000)
        cursor = start
        while client not in _drop_requests:
            for event in feed.after(cursor, timeout=1.0):
                yield event
                cursor = int(event.id or cursor)
        _drop_requests.discard(client)  # the stream ends; the browser reconnects by itself

    return sse_response(events(), ping=15.0)


@app.post("/drop")
def drop() -> Any:
    """End one tab's stream (the browser then reconnects with Last-Event-ID)."""
    client = request.args.get("client", "")
    if not client:
        abort(400, "client is required")
    _drop_requests.add(client)
    return "", 204


SAMPLES: list[ServerSentEvent] = [
    ServerSentEvent(raw_data="plain text", event="sample", id="s1"),
    ServerSentEvent(
        raw_data="line one\nline two\r\nline three\rline four", event="sample", id="s2"
    ),
    ServerSentEvent(raw_data="", event="sample", id="s3"),
    ServerSentEvent(raw_data="  two leading spaces", event="sample", id="s4"),
    ServerSentEvent(
        raw_data="caf\u00e9 \u2014 \u65e5\u672c \U0001f680 \u2028 sep", event="sample", id="s5"
    ),
    ServerSentEvent(raw_data="trailing newline\n", event="sample", id="s6"),
    ServerSentEvent(data={"json": ["x", 1, None], "text": "a\nb"}, event="sample", id="s7"),
    ServerSentEvent(data="unnamed", id="s8"),
]


@app.get("/stream/samples")
def samples() -> Any:
    """Tricky payloads, for checking what a browser receives against what was sent."""
    return sse_response(SAMPLES, ping=None)


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
