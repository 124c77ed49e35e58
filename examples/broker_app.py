"""Fan-out with replay in one process: a MemoryBroker, a publish endpoint and a stream.

gunicorn -k gevent -w 1 --worker-connections 10000 examples.broker_app:app
curl -N http://127.0.0.1:8000/prices/stream &                   # a subscriber
curl -X POST -H 'Content-Type: application/json' \\
     -d '{"symbol": "ACME", "price": 12.5}' http://127.0.0.1:8000/prices
curl -N -H 'Last-Event-ID: <an id you saw>' http://127.0.0.1:8000/prices/stream   # resumes

A MemoryBroker lives in one process: run one worker (gevent holds thousands of streams), or
use RedisBroker (examples/redis_app.py) for several workers and hosts.
"""

from __future__ import annotations

from flask import Flask, request
from pydantic import BaseModel

from sse_sync import MemoryBroker, last_event_id, sse_response

app = Flask(__name__)
broker = MemoryBroker(history=1000)


class Price(BaseModel):
    symbol: str
    price: float


@app.post("/prices")
def publish_price() -> tuple[str, int]:
    broker.publish("prices", Price(**request.get_json()), event="price")
    return "", 204


@app.get("/prices/stream")
def prices() -> object:
    # No producer thread: the response waits on the subscription itself.
    return sse_response(broker.subscribe("prices", last_event_id=last_event_id()))


@app.get("/dashboard/stream")
def dashboard() -> object:
    # Several channels in one connection (browsers allow six per site over HTTP/1.1); the
    # event ids are cursors that resume every channel.
    channels = request.args.getlist("channel") or ["prices", "news"]
    return sse_response(broker.subscribe(channels, last_event_id=last_event_id()))


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
