"""A Flask app behind Flask-Compress, told to compress event streams with every coding it has.

``/ticks`` streams an event every 50 ms; ``/ticks?compressible=1`` removes the stream's
``Content-Encoding: identity`` header first, so that Flask-Compress takes the body over.
``/marker`` logs a line, for the tests to know that what was logged before it is in the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from flask_compress import Compress

from sse_sync import ServerSentEvent, sse_response
from tests.integration.apps import server_watchdog

server_watchdog.start()

#: The codings Flask-Compress may pick for a stream, the client's choice among them.
CODINGS = ["zstd", "br", "gzip", "deflate"]

app = Flask(__name__)
app.config.update(
    COMPRESS_MIMETYPES=["text/event-stream"],
    COMPRESS_ALGORITHM=CODINGS,
    COMPRESS_ALGORITHM_STREAMING=CODINGS,
    COMPRESS_STREAMS=True,
)
Compress(app)


@app.get("/ready")
def ready() -> str:
    return "ok"


@app.get("/ticks")
def ticks() -> Any:
    def gen() -> Iterator[ServerSentEvent]:
        n = 0
        while True:
            n += 1
            yield ServerSentEvent(data=n, id=str(n))
            time.sleep(0.05)

    response = sse_response(gen())
    if request.args.get("compressible"):
        del response.headers["Content-Encoding"]
    return response


@app.get("/marker")
def marker() -> str:
    app.logger.warning("marker")
    return "ok"
