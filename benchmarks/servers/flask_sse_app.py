"""Flask-SSE (served by gunicorn's gevent worker, with Redis at ``BENCH_REDIS_URL``).

Flask-SSE only streams Redis pub/sub channels, so it takes part in the fan-out scenario only:
its stream view is ``/sub?channel=C`` and ``/publish`` calls ``sse.publish``. Every subscriber
holds its own Redis connection.
"""

from __future__ import annotations

import os

from common import event, int_arg
from flask import Flask, request
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
# The blueprint's own view, at the same path as the other implementations' subscribers.
app.add_url_rule("/sub", "sub", sse.stream)


@app.get("/health")
def health() -> str:
    return "ok"


@app.post("/publish")
def publish() -> str:
    seq = int_arg(request.args.get("seq"), 0)
    sse.publish(event(seq), channel=request.args.get("channel", "c"))
    return "ok"
