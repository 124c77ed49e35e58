"""The classic Flask "time.sleep" SSE demo, migrated by wrapping its generator.

Before (the usual Flask snippet: hand-made frames, a worker pinned per stream, no pings,
no disconnect handling)::

    def event_stream():
        while True:
            time.sleep(1)
            yield {"time": datetime.now().isoformat()}

    @app.get("/stream")
    def stream():
        frames = (f"data: {json.dumps(item)}\\n\\n" for item in event_stream())
        return Response(frames, mimetype="text/event-stream")

After: the same generator, wrapped::

    return sse_response(event_stream())

    gunicorn -k gevent examples.classic:app   # then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime

from flask import Flask

from sse_sync import sse_response

DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "1.0"))

app = Flask(__name__)

PAGE = """<!doctype html>
<title>Server time</title>
<h1>Server time: <span id="time">…</span></h1>
<script>
  const source = new EventSource("/stream");
  source.onmessage = (event) => {
    document.getElementById("time").textContent = JSON.parse(event.data).time;
  };
</script>
"""


def event_stream() -> Iterator[dict[str, str]]:
    while True:
        time.sleep(DELAY)
        yield {"time": datetime.now().isoformat()}


@app.get("/")
def index() -> str:
    return PAGE


@app.get("/stream")
def stream() -> object:
    return sse_response(event_stream())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
