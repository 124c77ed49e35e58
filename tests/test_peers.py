"""Each peer's tutorial, migrated by one line, sends exactly these bytes (in process)."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator

import pytest
from flask import Flask

from . import peers

ITEMS = [
    b'{"name":"Plumbus","price":32.99}',
    b'{"name":"Portal Gun","price":999.99}',
    b'{"name":"Meeseeks Box","price":49.99}',
]

#: path -> the exact body of the stream.
WIRE = {
    "/naive/stream": b"".join(b"data: Message %d\n\n" % i for i in range(1, 6)),
    "/naive/starlette": b"".join(b"data: Message %d\n\n" % i for i in range(1, 6)),
    "/fastapi-sse/items/stream-no-async": b"".join(b"data: %s\n\n" % item for item in ITEMS),
    "/fastapi-sse/items/stream": b": stream of item updates\n\n"
    + b"".join(
        b"event: item_update\nid: %d\nretry: 5000\ndata: %s\n\n" % (i, item)
        for i, item in enumerate(ITEMS, 1)
    ),
    "/fastapi-sse/logs/stream": (
        b"data: 2025-01-01 INFO  Application started\n\n"
        b"data: 2025-01-01 DEBUG Connected to database\n\n"
        b"data: 2025-01-01 WARN  High memory usage detected\n\n"
    ),
    "/fastapi-sse/items/resume": b"".join(
        b"id: %d\ndata: %s\n\n" % (i, item) for i, item in enumerate(ITEMS)
    ),
    "/sse-starlette/events": b"".join(b"data: Event %d\n\n" % i for i in range(10)),
    "/sse-starlette/numbers": b"".join(b"data: %d\n\n" % i for i in range(1, 6)),
    "/sse-starlette/multiline": (
        b"event: multiline\nid: 1\ndata: First line\ndata: with newlines\ndata: inside\n\n"
        b"event: multiline\nid: 2\ndata: Second message\n\n"
        b"event: multiline\nid: 3\ndata: Third line\ndata: with CRLF\n\n"
        b"event: multiline\nid: 4\ndata: Final message\n\n"
    ),
    "/sse-starlette/text": b"data: hello\n\ndata: two\ndata: lines\n\ndata: last\n\n",
    "/sse": (
        b'event: data\ndata: {"id":1,"name":"test"}\n\n'
        b'event: data\ndata: {"id":2,"name":"test2"}\n\n'
    ),
    "/sse/custom-function": (
        b'event: data\ndata: {"id":1,"name":"test"}\n\n'
        b'event: data\ndata: {"id":2,"name":"test2"}\n\n'
    ),
    "/quotes?symbol=AAPL&count=2": (
        b'event: price\ndata: {"symbol":"AAPL","price":182.5}\n\n'
        b'event: price\ndata: {"symbol":"AAPL","price":183.5}\n\n'
    ),
}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """Every tutorial, without its pauses."""
    for module in peers.MODULES:
        if hasattr(module, "time"):
            monkeypatch.setattr(module, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    yield peers.create_app()


@pytest.mark.parametrize("path", list(WIRE))
def test_tutorial_sends_exact_bytes(
    app: Flask, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The migrated tutorial's stream is exactly the expected frames, with no warning."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        response = app.test_client().get(path, buffered=False)
        try:
            assert response.status_code == 200
            assert response.mimetype == "text/event-stream"
            assert b"".join(response.response) == WIRE[path]
        finally:
            response.close()
    assert caplog.records == []


def test_fastapi_resume_tutorial_skips_what_was_seen(app: Flask) -> None:
    """FastAPI's resume tutorial, ported to last_event_id(), starts after Last-Event-ID."""
    response = app.test_client().get(
        "/fastapi-sse/items/resume", headers={"Last-Event-ID": "0"}, buffered=False
    )
    assert b"".join(response.response) == b"id: 1\ndata: %s\n\nid: 2\ndata: %s\n\n" % (
        ITEMS[1],
        ITEMS[2],
    )
    response.close()


def test_fastapi_views_query_parameter_is_required(app: Flask) -> None:
    """fastapi-views' required query parameter, missing, is a 400 naming it."""
    response = app.test_client().get("/quotes")
    assert response.status_code == 400
    assert "Missing query parameter &#39;symbol&#39;" in response.get_data(as_text=True)
