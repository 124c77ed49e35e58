"""sse_sync.testing: reading events from test responses, overriding pings, cleanup checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from sse_sync import ServerSentEvent, sse_response
from sse_sync.testing import assert_cleaned_up, override_ping, read_events


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.extensions["closed"] = threading.Event()
    app.extensions["release"] = threading.Event()

    @app.get("/forever")
    def forever() -> Any:
        def gen() -> Iterator[Any]:
            try:
                n = 0
                while True:
                    n += 1
                    yield ServerSentEvent(data=n, event="tick", id=str(n))
            finally:
                app.extensions["closed"].set()

        return sse_response(gen(), queue_size=2)

    @app.get("/three")
    def three() -> Any:
        return sse_response([1, 2, 3], ping=None)

    @app.get("/quiet")
    def quiet() -> Any:
        def gen() -> Iterator[Any]:
            yield ServerSentEvent(comment="hi")
            app.extensions["release"].wait(10)

        return sse_response(gen(), ping=15)

    return app


def test_read_events_in_batches_then_cleanup(app: Flask) -> None:
    """read_events returns count events at a time, and assert_cleaned_up passes after close."""
    response = app.test_client().get("/forever", buffered=False)
    first = read_events(response, count=3)
    assert [(e.type, e.data, e.last_event_id) for e in first] == [
        ("tick", "1", "1"),
        ("tick", "2", "2"),
        ("tick", "3", "3"),
    ]
    assert [e.data for e in read_events(response, count=2)] == ["4", "5"]
    response.close()
    assert_cleaned_up(response)
    assert app.extensions["closed"].is_set()


def test_read_to_the_end(app: Flask) -> None:
    """Without count, read_events reads until the stream ends."""
    response = app.test_client().get("/three", buffered=False)
    assert [e.data for e in read_events(response)] == ["1", "2", "3"]
    with pytest.raises(AssertionError, match="ended after 0 events, expected 1"):
        read_events(response, count=1)


def test_timeout_names_what_came(app: Flask) -> None:
    """A stream that does not deliver in time raises TimeoutError."""
    response = app.test_client().get("/quiet", buffered=False)
    with pytest.raises(TimeoutError, match=r"Expected 1 events within 0.2 s, got \[\]"):
        read_events(response, count=1, timeout=0.2)
    app.extensions["release"].set()
    response.close()
    assert_cleaned_up(response)


def test_override_ping_makes_pings_visible(app: Flask) -> None:
    """override_ping wins over the view's ping=, without touching private names."""
    with override_ping(0.01):
        response = app.test_client().get("/quiet", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b": hi\n\n"
    assert next(chunks) == b": ping\n\n"
    app.extensions["release"].set()
    response.close()


def test_assert_cleaned_up_needs_a_closed_stream(app: Flask) -> None:
    """assert_cleaned_up on an open stream says to close it first."""
    response = app.test_client().get("/three", buffered=False)
    with pytest.raises(AssertionError, match="call response.close"):
        assert_cleaned_up(response)
    response.close()
    assert_cleaned_up(response)


@pytest.mark.parametrize("bad", [0, -1.0, True])
def test_override_ping_rejects_bad_values(bad: Any) -> None:
    """Ping overrides must be positive seconds or None."""
    with pytest.raises(ValueError, match="ping"), override_ping(bad):
        pass
