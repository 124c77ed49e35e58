"""Raw log lines: ``raw_data`` is sent as is, one ``data:`` line per line of text.

gunicorn -k gevent examples.logs:app
curl -N http://127.0.0.1:8000/logs/stream
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask

from sse_sync import ServerSentEvent, sse_response

DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "1.0"))

app = Flask(__name__)

LINES = [
    "2026-11-21 10:00:00 INFO  worker booted",
    "2026-11-21 10:00:01 WARN  slow query (812 ms)\n    SELECT * FROM orders",
    "2026-11-21 10:00:02 INFO  request served",
]


@app.get("/logs/stream")
def stream_logs() -> object:
    def gen() -> Iterator[ServerSentEvent]:
        for line in LINES:
            yield ServerSentEvent(raw_data=line, event="log")
            time.sleep(DELAY)

    return sse_response(gen())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
