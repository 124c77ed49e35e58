"""Pydantic items, streamed: each model becomes ``data: {json}``.

gunicorn -k gevent examples.items:app        # or: python examples/items.py
curl -N http://127.0.0.1:8000/items/stream
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask
from pydantic import BaseModel

from sse_sync import sse_response

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
    def gen() -> Iterator[Item]:
        for item in ITEMS:
            yield item  # a pydantic model -> data: {json}
            time.sleep(DELAY)  # plain blocking code is fine

    return sse_response(gen())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
