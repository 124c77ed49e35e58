"""The app of the metrics integration tests: sse_sync.metrics enabled, ``/metrics`` exposed.

``GET /stream?n=N`` sends N events (the first is the serving worker's pid), then stays open,
with a ping every ``SSE_PING`` seconds (15), until the client goes or the worker stops.
``GET /metrics`` is the view of docs/operations.md: with ``PROMETHEUS_MULTIPROC_DIR`` set,
every worker's values, summed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

import sse_sync.metrics
from sse_sync import sse_response, wait_closed
from tests.integration.apps import server_watchdog

server_watchdog.start()
sse_sync.metrics.enable()

app = Flask(__name__)


@app.get("/stream")
def stream() -> Any:
    n = int(request.args.get("n", "3"))

    def events() -> Iterator[Any]:
        yield {"pid": os.getpid()}
        yield from range(1, n)
        wait_closed(600.0)

    return sse_response(events(), ping=float(os.environ.get("SSE_PING", "15")))


@app.get("/metrics")
def metrics() -> Response:
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@app.get("/state")
def state() -> Any:
    return jsonify(pid=os.getpid())
