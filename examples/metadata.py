"""Event metadata: a comment, named events, ids and a reconnection time.

gunicorn -k gevent examples.metadata:app
curl -N http://127.0.0.1:8000/items/stream
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask
from pydantic import BaseModel

from sse_sync import ServerSentEvent, last_event_id, sse_response

DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "1.0"))

app = Flask(__name__)


class Item(BaseModel):
    name: str
    price: float


ITEMS = [
    Item(name="Plumbus", price=32.99),
    Item(name="Portal Gun", price=999.99),
    Item(name="Meeseeks Box", price=49.99),
]


@app.get("/items/stream")
def stream_items() -> object:
    last = last_event_id()  # anything a client sends: use it only if it is one of ours
    start = int(last) if last and last.isascii() and last.isdigit() and len(last) < 10 else 0

    def gen() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(comment="stream of item updates")
        for i, item in enumerate(ITEMS[start:], start + 1):
            yield ServerSentEvent(data=item, event="item_update", id=str(i), retry=5000)
            time.sleep(DELAY)

    return sse_response(gen())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
