"""A resumable stream: a reconnecting client sends ``Last-Event-ID`` and misses nothing.

gunicorn -k gevent examples.resumable:app
curl -N http://127.0.0.1:8000/counter                        # from the start
curl -N -H 'Last-Event-ID: 3' http://127.0.0.1:8000/counter  # resumes after event 3
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask

from sse_sync import ServerSentEvent, last_event_id, sse_response

DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "1.0"))
COUNT = 6

app = Flask(__name__)


@app.get("/counter")
def counter() -> object:
    last = last_event_id()  # the Last-Event-ID header, else ?lastEventId=
    # Anything a client sends: use it only if it is one of our ids (str.isdigit() alone
    # accepts "²", which int() refuses).
    start = int(last) + 1 if last and last.isascii() and last.isdigit() and len(last) < 10 else 1

    def gen() -> Iterator[ServerSentEvent]:
        for n in range(start, COUNT + 1):
            yield ServerSentEvent(data={"n": n}, id=str(n), retry=2000)
            time.sleep(DELAY)

    return sse_response(gen())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
