"""sse_sync.metrics: each family moves as streams and brokers work, through public behaviour."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, abort
from prometheus_client import CollectorRegistry, generate_latest
from werkzeug.test import EnvironBuilder

import sse_sync.metrics
from sse_sync import EventStreamResponse, MemoryBroker, RedisBroker, sse_response, wait_closed

from .conftest import wait_until

#: The families the issue names, as exposed, with their types.
FAMILIES = {
    "sse_sync_streams_open": "gauge",
    "sse_sync_streams_opened_total": "counter",
    "sse_sync_streams_closed_total": "counter",
    "sse_sync_events_sent_total": "counter",
    "sse_sync_pings_sent_total": "counter",
    "sse_sync_bytes_sent_total": "counter",
    "sse_sync_published_total": "counter",
    "sse_sync_delivery_seconds": "histogram",
    "sse_sync_replay_resets_total": "counter",
    "sse_sync_subscriber_overflows_total": "counter",
    "sse_sync_broker_reconnects_total": "counter",
}
CLOSE_REASONS = ("client_gone", "source_end", "source_error", "drain", "max_lifetime", "overflow")


class Metrics:
    """The samples of one registry that ``sse_sync.metrics.enable()`` registered into."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def __call__(self, name: str, **labels: str) -> float:
        """The sample's value now (0 when absent)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def closed(self) -> dict[str, float]:
        """``sse_sync_streams_closed_total`` by reason, the reasons counted so far only."""
        counts = {r: self("sse_sync_streams_closed_total", reason=r) for r in CLOSE_REASONS}
        return {reason: count for reason, count in counts.items() if count}

    def families(self) -> dict[str, str]:
        """Exposed family name -> type, from the text exposition (``_created`` left out)."""
        text = generate_latest(self.registry).decode()
        found = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
        return {name: kind for name, kind in found.items() if not name.endswith("_created")}


@contextlib.contextmanager
def enabled(*registries: CollectorRegistry) -> Iterator[None]:
    """Enable metrics into each of ``registries`` in turn; disable them afterwards."""
    try:
        for registry in registries:
            sse_sync.metrics.enable(registry)
        yield
    finally:
        sse_sync.metrics.disable()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """Metrics enabled into a registry of this test's own; disabled afterwards."""
    registry = CollectorRegistry()
    with enabled(registry):
        yield Metrics(registry)


def call(response: EventStreamResponse, method: str = "GET") -> Any:
    """Call ``response`` as a WSGI app, as a server does; returns its body (an iterable)."""
    environ = EnvironBuilder(method=method).get_environ()
    return response(environ, lambda status, headers, exc_info=None: None)


def quiet() -> Iterator[int]:
    """A source that yields nothing until its stream closes."""
    wait_closed(30.0)
    yield from ()


def items(n: int) -> Iterable[int]:
    yield from range(n)


def test_enable_registers_the_families(metrics: Metrics) -> None:
    """enable() registers exactly the issue's families under their exposed names."""
    assert metrics.families() == FAMILIES


def test_enable_twice_with_one_registry_is_harmless() -> None:
    """Enabling again with the same registry registers nothing twice and counts once."""
    registry = CollectorRegistry()
    with enabled(registry, registry):
        list(call(sse_response(items(2))))
    metrics = Metrics(registry)
    assert metrics.families() == FAMILIES
    assert metrics("sse_sync_streams_opened_total") == 1
    assert metrics("sse_sync_events_sent_total") == 2


def test_enable_with_another_registry_moves_the_metrics_there() -> None:
    """After enable(second), streams are counted in the second registry, not the first."""
    first, second = CollectorRegistry(), CollectorRegistry()
    with enabled(first, second):
        list(call(sse_response(items(1))))
    assert Metrics(first)("sse_sync_streams_opened_total") == 0
    assert Metrics(second)("sse_sync_streams_opened_total") == 1


def test_enable_without_a_registry_uses_the_default_one() -> None:
    """enable() registers into prometheus_client's REGISTRY (in a fresh process)."""
    code = (
        "import prometheus_client, sse_sync.metrics\n"
        "sse_sync.metrics.enable()\n"
        "sse_sync.metrics.enable()\n"
        "value = prometheus_client.REGISTRY.get_sample_value('sse_sync_streams_open')\n"
        "assert value == 0.0, value\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus_client, enable() raises ImportError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'sse_sync[metrics]'")):
        sse_sync.metrics.enable()


def test_a_stream_that_ends_is_counted_with_its_events_and_bytes(metrics: Metrics) -> None:
    """A generator of 3 items: one stream opened and closed (source_end), 3 events, its bytes."""
    body = call(sse_response(items(3)))
    chunks = list(body)
    body.close()
    assert metrics("sse_sync_streams_opened_total") == 1
    assert metrics("sse_sync_streams_open") == 0
    assert metrics.closed() == {"source_end": 1}
    assert metrics("sse_sync_events_sent_total") == 3
    assert metrics("sse_sync_bytes_sent_total") == len(b"".join(chunks))
    assert metrics("sse_sync_pings_sent_total") == 0


def test_an_open_stream_is_in_the_gauge_until_the_client_goes(metrics: Metrics) -> None:
    """Open, the stream is in streams_open; closed by the server, it is client_gone."""
    body = call(sse_response(quiet(), ping=None, open_timeout=0))
    assert next(body) == b": ping\n\n"  # the opening ping of a quiet stream
    assert metrics("sse_sync_streams_open") == 1
    assert metrics("sse_sync_pings_sent_total") == 1
    body.close()
    body.close()
    assert metrics("sse_sync_streams_open") == 0
    assert metrics.closed() == {"client_gone": 1}


def test_pings_are_counted_with_their_bytes(metrics: Metrics) -> None:
    """Every ': ping' written is counted, and its bytes, but not as an event."""
    body = call(sse_response(quiet(), ping=0.02, open_timeout=0))
    chunks = [next(body) for _ in range(4)]
    body.close()
    assert set(chunks) == {b": ping\n\n"}
    assert metrics("sse_sync_pings_sent_total") == 4
    assert metrics("sse_sync_bytes_sent_total") == 4 * len(b": ping\n\n")
    assert metrics("sse_sync_events_sent_total") == 0


def test_a_source_error_after_the_first_item_is_counted(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A generator raising after its first item ends its stream as source_error."""

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("boom")

    body = call(sse_response(failing()))
    list(body)
    body.close()
    assert metrics.closed() == {"source_error": 1}
    assert metrics("sse_sync_events_sent_total") == 1
    assert "boom" in caplog.text


def test_max_lifetime_is_counted(metrics: Metrics) -> None:
    """A stream ended by max_lifetime is counted so, its retry hint in the bytes."""
    body = call(sse_response(quiet(), ping=None, open_timeout=0, max_lifetime=0.1))
    chunks = list(body)
    body.close()
    assert chunks[-1].startswith(b"retry: ")
    assert metrics.closed() == {"max_lifetime": 1}
    assert metrics("sse_sync_bytes_sent_total") == len(b"".join(chunks))
    assert metrics("sse_sync_events_sent_total") == 0


def test_an_overflowing_subscriber_is_counted(metrics: Metrics) -> None:
    """A subscriber that falls behind is counted as an overflow, and its stream as one."""
    broker = MemoryBroker(history=4, max_pending=2)
    body = call(sse_response(broker.subscribe("c"), ping=None, open_timeout=0))
    assert next(body) == b": ping\n\n"  # subscribed and waiting
    for i in range(3):
        broker.publish("c", i)
    assert list(body) == []  # ended: the client reconnects and replays
    body.close()
    assert metrics("sse_sync_subscriber_overflows_total") == 1
    assert metrics.closed() == {"overflow": 1}
    assert metrics("sse_sync_streams_open") == 0


def test_broker_events_publish_delivery_and_resets(metrics: Metrics) -> None:
    """A MemoryBroker publish is counted; its delivery is timed; a bad Last-Event-ID resets."""
    broker = MemoryBroker()
    body = call(sse_response(broker.subscribe("c", last_event_id="nope"), open_timeout=0))
    assert next(body).startswith(b"event: reset\n")
    assert metrics("sse_sync_replay_resets_total", reason="unknown") == 1
    broker.publish("c", 1)
    broker.publish("c", 2)
    frames = b""
    while frames.count(b"\n\n") < 2:
        frames += next(body)
    body.close()
    assert metrics("sse_sync_published_total") == 2
    assert metrics("sse_sync_events_sent_total") == 3  # the reset and the two events
    writes = metrics("sse_sync_delivery_seconds_count")
    assert 1 <= writes <= 2  # one sample per write of broker events (1 or 2 writes)
    assert 0 <= metrics("sse_sync_delivery_seconds_sum") < 10
    assert metrics("sse_sync_delivery_seconds_bucket", le="+Inf") == writes


def test_a_head_request_is_not_a_stream(metrics: Metrics) -> None:
    """HEAD sends no body: nothing is counted as a stream."""
    app = Flask(__name__)
    app.get("/s")(lambda: sse_response(items(3)))
    response = app.test_client().head("/s")
    assert response.status_code == 200
    response.close()
    assert metrics("sse_sync_streams_opened_total") == 0
    assert metrics.closed() == {}


def test_a_source_refusing_before_its_first_item_is_not_a_stream(metrics: Metrics) -> None:
    """abort(403) before the first item answers 403: not counted as a stream."""
    app = Flask(__name__)

    def refused() -> Iterator[int]:
        abort(403)
        yield 1

    app.get("/s")(lambda: sse_response(refused()))
    response = app.test_client().get("/s")
    assert response.status_code == 403
    assert metrics("sse_sync_streams_opened_total") == 0
    assert metrics("sse_sync_streams_open") == 0
    assert metrics.closed() == {}


def test_a_stream_the_view_did_not_send_is_not_counted(metrics: Metrics) -> None:
    """A view that built a stream, then answered otherwise, opened no stream."""
    app = Flask(__name__)

    @app.get("/s")
    def view() -> Any:
        sse_response(items(2))  # opened here (its first items read), then dropped
        return "nope", 403

    assert app.test_client().get("/s").status_code == 403
    assert metrics("sse_sync_streams_opened_total") == 0
    assert metrics("sse_sync_streams_open") == 0
    assert metrics.closed() == {}


def test_a_stream_opened_before_enable_is_not_counted_when_it_ends() -> None:
    """The gauge stays balanced: a stream opened while disabled never decrements it."""
    body = call(sse_response(quiet(), ping=None, open_timeout=0))
    next(body)
    registry = CollectorRegistry()
    with enabled(registry):
        body.close()
    metrics = Metrics(registry)
    assert metrics("sse_sync_streams_open") == 0
    assert metrics.closed() == {}


def test_disable_stops_counting(metrics: Metrics) -> None:
    """After disable(), streams and publishes are not counted; the families stay."""
    sse_sync.metrics.disable()
    list(call(sse_response(items(2))))
    MemoryBroker().publish("c", 1)
    assert metrics("sse_sync_streams_opened_total") == 0
    assert metrics("sse_sync_published_total") == 0
    assert metrics.families() == FAMILIES


@pytest.mark.redis
def test_redis_publish_delivery_and_reconnect(metrics: Metrics, redis_server: Any) -> None:
    """Through Redis: publishes, delivery (from the stream id's time) and a reader reconnect."""
    broker = RedisBroker.from_url(redis_server.url, block=0.5, prefix="metrics:")
    try:
        body = call(sse_response(broker.subscribe("r"), ping=None, open_timeout=0))
        assert next(body) == b": ping\n\n"
        broker.publish("r", 1)
        assert b"data: 1\n" in next(body)
        assert metrics("sse_sync_published_total") == 1
        assert metrics("sse_sync_delivery_seconds_count") == 1
        assert metrics("sse_sync_delivery_seconds_sum") < 10
        redis_server.restart()  # no persistence: the stream is gone, the reader reconnects
        assert next(body).startswith(b"event: reset\n")
        assert metrics("sse_sync_broker_reconnects_total") >= 1
        assert metrics("sse_sync_replay_resets_total", reason="lost") == 1
        body.close()
    finally:
        broker.close()
    wait_until(lambda: metrics("sse_sync_streams_open") == 0)
    assert metrics.closed() == {"client_gone": 1}
