"""Type-checked with mypy --strict, never executed: brokers and the extension in use."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, request
from pydantic import BaseModel

from sse_sync import (
    SSE,
    Broker,
    EventStreamResponse,
    MemoryBroker,
    RedisBroker,
    ServerSentEvent,
    Subscription,
    last_event_id,
    sse_response,
)
from sse_sync.brokers import ChannelLog, Counters, Store
from tests.sqlite_broker import SQLiteBroker

app = Flask(__name__)
redis_broker = RedisBroker.from_url(
    "redis://localhost:6379/0",
    history=10_000,
    max_pending=500,
    max_event_size=64 * 1024,
    idempotency_window=60.0,
)
memory_broker: Broker = MemoryBroker(1000, max_pending=100, max_event_size=4096)


class Price(BaseModel):
    symbol: str
    price: float


@app.post("/prices")
def publish() -> tuple[str, int]:
    event_id: str = redis_broker.publish("prices", Price(symbol="A", price=1.0), event="price")
    memory_broker.publish("prices", raw_data=event_id, retry=1000, idempotency_key=event_id)
    return "", 204


@app.get("/prices/stream")
def prices() -> EventStreamResponse:
    subscription: Subscription = redis_broker.subscribe("prices", last_event_id=last_event_id())
    return sse_response(subscription, max_lifetime=3600.0)


@app.get("/dashboard")
def dashboard() -> EventStreamResponse:
    channels = request.args.getlist("channel")
    return sse_response(memory_broker.subscribe(channels, last_event_id()), ping=5.0)


def consume(broker: Broker) -> Iterator[object]:
    with broker.subscribe(["a", "b"]) as sub:
        events: list[ServerSentEvent] | None = sub.read_events(1.0)
        frames: bytes | None = sub.read_frames(None)
        cursor: str | None = sub.cursor
        yield events, frames, cursor
        for event in sub:
            yield event.data


sse = SSE(app, broker=memory_broker, authorize=lambda channel: channel.startswith("public"))


@sse.authorize
def may_subscribe(channel: str) -> bool:
    return channel == "news"


stats: dict[str, int] = redis_broker.stats()
news_id: str = sse.publish("news", {"title": "hi"}, event="news")


def shut_down(broker: Broker) -> dict[str, int]:
    counters: dict[str, int] = broker.stats()
    broker.close()
    return counters


app_counters: dict[str, int] = sse.broker.stats()
sse.broker.close()
shut_down(redis_broker)
shut_down(memory_broker)


# A broker of one's own, on the extension point (tests/sqlite_broker.py): both protocols.
def as_store(store: Store) -> Subscription:
    return Subscription(store, ["a", "b"], None, 10)


sqlite_broker: Broker = SQLiteBroker(":memory:", 100, max_pending=10)
as_store(SQLiteBroker())
as_store(MemoryBroker())
as_store(redis_broker)
log: ChannelLog | None = MemoryBroker().attach("a")
counters: Counters = redis_broker.counters
