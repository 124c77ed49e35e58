"""The app ``python -m sse_sync check`` is tested against, directly and behind nginx.

``GET /events`` streams numbered events (``id: 1``, ``id: 2``, ...) every ``pace`` seconds
(default 0.1), each with ``pad`` characters of padding in its data (default 0), with
``ping`` seconds between keep-alive comments (``none``: no pings; default 0.5). It resumes
after the ``Last-Event-ID`` it is sent, unless ``resume=ignore``: then it starts from 1 again,
as a server that ignores the header would. ``count`` limits the number of events (default: no
limit; the stream then stays open, idle). ``GET /page`` is an HTML page, ``GET /state`` answers
when the server is ready.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, request

from sse_sync import ServerSentEvent, last_event_id, sse_response
from tests.integration.apps import server_watchdog

server_watchdog.start()

app = Flask(__name__)


@app.get("/events")
def events() -> Any:
    pace = float(request.args.get("pace", "0.1"))
    pad = "x" * int(request.args.get("pad", "0"))
    ping_arg = request.args.get("ping", "0.5")
    count = int(request.args["count"]) if "count" in request.args else None
    resumed = last_event_id() if request.args.get("resume") != "ignore" else None
    start = int(resumed) + 1 if resumed else 1

    def gen() -> Iterator[ServerSentEvent]:
        numbers = itertools.count(start) if count is None else range(start, start + count)
        for n in numbers:
            yield ServerSentEvent(data={"n": n, "pad": pad}, event="tick", id=str(n))
            time.sleep(pace)
        time.sleep(3600)  # stays open, idle: only pings from here on

    return sse_response(gen(), ping=None if ping_arg == "none" else float(ping_arg))


@app.get("/page")
def page() -> Any:
    return "<!doctype html><title>not a stream</title>", 200, {"Content-Type": "text/html"}


@app.get("/state")
def state() -> Any:
    return {"ready": True}
