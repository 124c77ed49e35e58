"""The broker examples do what their docstrings say; the gunicorn config loads."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sse_sync.testing import override_ping, read_events

ROOT = Path(__file__).resolve().parent.parent


def test_broker_app_publishes_and_resumes() -> None:
    """POST /prices reaches /prices/stream; Last-Event-ID resumes after the given event."""
    module = importlib.import_module("examples.broker_app")
    client = module.app.test_client()
    with override_ping(0.05):
        stream = client.get("/prices/stream", buffered=False)
    assert client.post("/prices", json={"symbol": "ACME", "price": 12.5}).status_code == 204
    assert client.post("/prices", json={"symbol": "ACME", "price": 13.0}).status_code == 204
    first, second = read_events(stream, 2)
    stream.close()
    assert (first.type, first.json()) == ("price", {"symbol": "ACME", "price": 12.5})
    with override_ping(0.05):
        resumed = client.get("/prices/stream", headers={"Last-Event-ID": first.last_event_id})
    assert read_events(resumed, 1)[0].json() == second.json()
    resumed.close()


def test_broker_app_dashboard_takes_several_channels() -> None:
    """/dashboard/stream streams several channels in one response."""
    module = importlib.import_module("examples.broker_app")
    client = module.app.test_client()
    with override_ping(0.05):
        stream = client.get("/dashboard/stream", buffered=False)
    module.broker.publish("news", {"title": "hi"}, event="news")
    client.post("/prices", json={"symbol": "ACME", "price": 1.0})
    events = read_events(stream, 2)
    stream.close()
    assert [e.type for e in events] == ["news", "price"]
    assert "news=" in events[1].last_event_id and "prices=" in events[1].last_event_id


@pytest.mark.redis
def test_redis_app(redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Redis example authorizes per user and delivers notifications to their owner."""
    monkeypatch.setenv("SSE_BROKER_URL", redis_server.url)
    sys.modules.pop("examples.redis_app", None)
    module = importlib.import_module("examples.redis_app")
    try:
        client = module.app.test_client()
        denied = client.get("/stream?channel=user:bob", headers={"X-User": "ann"})
        assert denied.status_code == 403
        with override_ping(0.05):
            stream = client.get(
                "/stream?channel=news&channel=user:ann", headers={"X-User": "ann"}, buffered=False
            )
        client.post("/users/ann/notify", json={"text": "for ann"})
        client.post("/users/bob/notify", json={"text": "for bob"})
        client.post("/news", json={"title": "hi"})
        events = read_events(stream, 2)
        stream.close()
        assert [(e.type, e.json()) for e in events] == [
            ("notification", {"text": "for ann"}),
            ("news", {"title": "hi"}),
        ]
    finally:
        module.sse.broker.close()
        sys.modules.pop("examples.redis_app", None)


def test_gunicorn_config_is_valid() -> None:
    """gunicorn accepts examples/gunicorn.conf.py (sse_sync's gevent worker, 10,000 connections)."""
    code = (
        "from gunicorn.app.wsgiapp import WSGIApplication\n"
        "import sys\n"
        "sys.argv = ['gunicorn', '-c', 'examples/gunicorn.conf.py', 'examples.broker_app:app']\n"
        "app = WSGIApplication()\n"
        "cfg = app.cfg\n"
        "assert cfg.worker_class_str == 'sse_sync.gunicorn.GeventWorker', cfg.worker_class_str\n"
        "from sse_sync.gunicorn import GeventWorker\n"
        "assert cfg.worker_class is GeventWorker\n"
        "assert cfg.worker_connections == 10000\n"
        "assert cfg.graceful_timeout == 10 and cfg.max_requests == 100000\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)
