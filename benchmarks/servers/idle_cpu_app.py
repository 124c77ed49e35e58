"""Idle event streams for ``benchmarks/idle_cpu.py``: nothing to send, a ping every ``PING`` s.

``/gen`` is a generator that blocks (``time.sleep``) and never yields: a producer per stream.
``/sub`` is a broker subscription to a quiet channel: no producer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from common import PING
from flask import Flask

from sse_sync import MemoryBroker, sse_response

app = Flask(__name__)
broker = MemoryBroker()


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/first")
def first() -> Any:
    return sse_response(iter([{"n": 0}]))


@app.get("/gen")
def gen() -> Any:
    def blocked() -> Iterator[Any]:
        time.sleep(24 * 3600)
        yield {"never": True}

    return sse_response(blocked(), ping=PING)


@app.get("/sub")
def sub() -> Any:
    return sse_response(broker.subscribe("quiet"), ping=PING)
