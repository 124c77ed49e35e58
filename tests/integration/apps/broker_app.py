"""The app of the broker integration tests: the SSE extension, configured from the environment.

``SSE_BROKER_URL`` (default ``memory://``), ``SSE_HISTORY``, ``SSE_MAX_PENDING``, ``SSE_PING``
and ``SSE_MAX_LIFETIME`` go to the extension's config. ``POST /publish/<channel>`` publishes
(``{"items": [...], "event": ..., "pad": n}``: one event per item, each item's data padded
with ``n`` characters), ``GET /stream?channel=...`` is the extension's view, ``GET /state``
reports this worker's pid and broker counters.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, jsonify, request

from sse_sync import SSE
from tests.integration.apps import server_watchdog

server_watchdog.start()

app = Flask(__name__)
app.config["SSE_BROKER_URL"] = os.environ.get("SSE_BROKER_URL", "memory://")
for key, kind in [
    ("SSE_HISTORY", int),
    ("SSE_MAX_PENDING", int),
    ("SSE_PING", float),
    ("SSE_MAX_LIFETIME", float),
]:
    if os.environ.get(key):
        app.config[key] = kind(os.environ[key])
app.config["SSE_REDIS_PREFIX"] = os.environ.get("SSE_REDIS_PREFIX", "sse:")
app.config["SSE_PUBLIC_CHANNELS"] = "*"  # every test channel is open: no authorize hook here
sse = SSE(app)


@app.post("/publish/<channel>")
def publish(channel: str) -> Any:
    body = request.get_json()
    pad = "x" * int(body.get("pad", 0))
    ids = []
    for item in body["items"]:
        data = {"n": item, "pad": pad} if pad else item
        ids.append(sse.publish(channel, data, event=body.get("event")))
    return jsonify(ids=ids, at=time.time(), pid=os.getpid())


@app.get("/state")
def state() -> Any:
    return jsonify(pid=os.getpid(), **sse.broker.stats())
