"""The main demo: a live dashboard fed by one event stream.

Run it with ``python3 dev.py demo`` (gunicorn, one gevent worker) and open http://127.0.0.1:8000.

A background publisher puts market prices, server metrics and log lines on a ``MemoryBroker``
channel every ``SSE_SYNC_DEMO_INTERVAL`` seconds (default 1). Each browser tab streams the
channel from ``/stream``; a reconnecting browser sends ``Last-Event-ID`` and gets exactly the
events it missed from the broker's history. "Drop connection" asks the server to end that
tab's stream, so you can watch the browser reconnect and resume with no gap.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import weakref
from datetime import datetime, timezone
from typing import Any

from flask import Flask, abort, request
from pydantic import BaseModel

from sse_sync import MemoryBroker, ServerSentEvent, Subscription, last_event_id, sse_response

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


broker = MemoryBroker(history=HISTORY)
CHANNEL = "dashboard"
# The open stream of each browser tab, so that "Drop connection" can end it.
_streams: weakref.WeakValueDictionary[str, Subscription] = weakref.WeakValueDictionary()
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
            broker.publish(CHANNEL, price, event="price")
        broker.publish(
            CHANNEL,
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
        broker.publish(CHANNEL, raw_data=line, event="log")
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
    """The dashboard's stream: what came after ``Last-Event-ID``, then live events."""
    _start_publisher()
    subscription = broker.subscribe(CHANNEL, last_event_id=last_event_id())
    _streams[request.args.get("client", "")] = subscription
    return sse_response(subscription, ping=15.0)


@app.post("/drop")
def drop() -> Any:
    """End one tab's stream: the browser then reconnects with ``Last-Event-ID`` by itself."""
    client = request.args.get("client", "")
    if not client:
        abort(400, "client is required")
    subscription = _streams.pop(client, None)
    if subscription is not None:
        subscription.close()
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
