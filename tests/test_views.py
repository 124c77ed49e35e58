"""EventStreamView as fastapi-views users expect it: event dicts, query parameters, ids, retry."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from flask import Flask
from pydantic import BaseModel
from werkzeug.test import TestResponse

from sse_sync import EventStreamView, MemoryBroker, ServerSentEvent, event_stream_route, sse_view
from sse_sync.testing import read_events


class Price(BaseModel):
    symbol: str
    value: float


class Summary(BaseModel):
    count: int


def body(response: TestResponse) -> bytes:
    try:
        return b"".join(response.response)
    finally:
        response.close()


class Prices(EventStreamView):
    schema = Price
    ping = None

    def events(self, symbol: str, count: int = 2, scale: float = 1.0) -> Iterator[Any]:
        for i in range(count):
            yield {"event": "price", "data": {"symbol": symbol, "value": i * scale}}

    @event_stream_route("/summary", schema=Summary)
    def summary(self, symbol: str, since: datetime.date) -> Iterator[Any]:
        yield {"event": "summary", "data": {"count": since.day}}

    @event_stream_route("/tags", schema=dict[str, object])
    def tags(
        self, symbol: str, tag: list[str], mode: Literal["all", "any"] = "any"
    ) -> Iterator[Any]:
        yield {"data": {"tags": tag, "mode": mode}}


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    Prices.register(app, "/prices/<symbol>")
    return app


def test_event_dicts_are_events_whose_data_the_schema_validates(app: Flask) -> None:
    """A fastapi-views event dict is one event; its data is validated and serialized by schema."""
    response = app.test_client().get("/prices/ABC", buffered=False)
    assert body(response) == (
        b'event: price\ndata: {"symbol":"ABC","value":0.0}\n\n'
        b'event: price\ndata: {"symbol":"ABC","value":1.0}\n\n'
    )


def test_query_parameters_are_converted_from_annotations(app: Flask) -> None:
    """Parameters not in the URL rule come from the query string, converted by pydantic."""
    client = app.test_client()
    response = client.get("/prices/ABC?count=3&scale=0.5", buffered=False)
    assert body(response).count(b"event: price") == 3
    response = client.get("/prices/ABC/summary?since=2026-11-21", buffered=False)
    assert body(response) == b'event: summary\ndata: {"count":21}\n\n'
    response = client.get("/prices/ABC/tags?tag=a&tag=b&mode=all", buffered=False)
    assert body(response) == b'data: {"tags":["a","b"],"mode":"all"}\n\n'


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/prices/ABC?count=many",
            "Invalid query parameter &#39;count&#39;: Input should be a valid integer",
        ),
        (
            "/prices/ABC/summary",
            "Missing query parameter &#39;since&#39;: expected ?since=&lt;date&gt;",
        ),
        ("/prices/ABC/summary?since=soon", "Invalid query parameter &#39;since&#39;"),
        ("/prices/ABC/tags", "Missing query parameter &#39;tag&#39;"),
        ("/prices/ABC/tags?tag=a&mode=some", "Input should be &#39;all&#39; or &#39;any&#39;"),
    ],
)
def test_missing_or_invalid_query_parameters_answer_400(
    app: Flask, path: str, message: str
) -> None:
    """A missing or invalid query parameter is a 400 naming it, before any stream starts."""
    response = app.test_client().get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)


def test_schema_mismatch_of_an_event_dict_ends_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An event dict whose data does not match the schema raises with pydantic's reason."""
    app = Flask(__name__)

    class Bad(EventStreamView):
        schema = Price
        ping = None

        def events(self) -> Iterator[Any]:
            yield {"event": "price", "data": {"symbol": "A", "value": 1}}
            yield {"event": "price", "data": {"symbol": "A"}}
            yield {"event": "price", "data": {"symbol": "never", "value": 2}}

    Bad.register(app, "/bad")
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        data = body(app.test_client().get("/bad", buffered=False))
    assert data == b'event: price\ndata: {"symbol":"A","value":1.0}\n\n'
    assert "Bad.events yielded data that does not match schema Price" in caplog.text
    assert "Field required" in caplog.text


def test_event_id_hook_and_retry() -> None:
    """event_id() names events without an id of their own; retry is sent once, first."""
    app = Flask(__name__)

    class Numbered(EventStreamView):
        retry = 5000
        ping = None

        def events(self) -> Iterator[Any]:
            yield {"event": "n", "data": 1}
            yield {"event": "n", "data": 2, "id": "own"}
            yield ServerSentEvent(data=3)
            yield ServerSentEvent(comment="no data, no id")
            yield b"data: pre-framed\n\n"
            yield "data: frame as text\n\n"
            yield 4

        def event_id(self, item: Any) -> str | None:
            self.n = getattr(self, "n", 0) + 1
            return f"e{self.n}"

    Numbered.register(app, "/n")
    assert body(app.test_client().get("/n", buffered=False)) == (
        b"retry: 5000\n\nid: e1\nevent: n\ndata: 1\n\n"
        b"event: n\nid: own\ndata: 2\n\n"
        b"id: e2\ndata: 3\n\n"
        b": no data, no id\n\n"
        b"data: pre-framed\n\n"
        b"data: frame as text\n\n"
        b"id: e3\ndata: 4\n\n"
    )


def test_bad_event_id_or_retry_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    """An id with a line break ends the stream with the reason; a negative retry is a 500."""
    app = Flask(__name__)

    class BadId(EventStreamView):
        ping = None

        def events(self) -> Iterator[int]:
            yield 1
            yield 2

        def event_id(self, item: Any) -> str | None:
            return "ok" if item == 1 else "a\nb"

    class BadRetry(EventStreamView):
        retry = -1

        def events(self) -> Iterator[int]:
            yield 1

    BadId.register(app, "/id")
    BadRetry.register(app, "/retry")
    with caplog.at_level(logging.ERROR):
        assert body(app.test_client().get("/id", buffered=False)) == b"id: ok\ndata: 1\n\n"
        assert "without NUL, CR or LF" in caplog.text
        assert app.test_client().get("/retry").status_code == 500
    assert "milliseconds >= 0" in caplog.text


def test_class_items_rules(caplog: pytest.LogCaptureFixture) -> None:
    """items on the class picks the rules; the default rules warn about event dicts there."""
    app = Flask(__name__)

    class Starlette(EventStreamView):
        items = "sse-starlette"
        ping = None

        def events(self) -> Iterator[Any]:
            yield {"event": "score", "data": 3, "id": "1"}
            yield "plain text"

    class Default(EventStreamView):
        items = "default"
        ping = None

        def events(self) -> Iterator[Any]:
            yield {"event": "score", "data": 3}

    Starlette.register(app, "/starlette")
    Default.register(app, "/default")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert body(client.get("/starlette", buffered=False)) == (
            b"event: score\nid: 1\ndata: 3\n\ndata: plain text\n\n"
        )
        assert caplog.text == ""
        assert body(client.get("/default", buffered=False)) == (
            b'data: {"event":"score","data":3}\n\n'
        )
    assert "items='fastapi-views'" in caplog.text


def test_schema_with_sse_starlette_rules_serializes_json() -> None:
    """With a schema, data is the schema's JSON whatever the rules; other fields stay."""
    app = Flask(__name__)

    class Typed(EventStreamView):
        items = "sse-starlette"
        schema = Price
        ping = None

        def events(self) -> Iterator[Any]:
            yield {"event": "p", "data": {"symbol": "A", "value": "1.5"}, "comment": 7}
            yield {"event": "nodata"}

    Typed.register(app, "/typed")
    assert body(app.test_client().get("/typed", buffered=False)) == (
        b': 7\nevent: p\ndata: {"symbol":"A","value":1.5}\n\nevent: nodata\n\n'
    )


def test_unknown_items_rules_are_rejected() -> None:
    """A misspelt items value fails at register() or at decoration, not at request time."""

    class Wrong(EventStreamView):
        items = "starlette"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="got 'starlette'"):
        Wrong.register(Flask(__name__), "/wrong")
    with pytest.raises(ValueError, match="got 'views'"):
        sse_view(items="views")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"ping": 0}, "Expected ping to be finite seconds > 0 or None, got 0"),
        ({"queue_size": 0}, "Expected queue_size to be an int >= 1, got 0"),
        ({"runner": "fiber"}, "Expected runner to be 'auto', 'greenlet' or 'thread'"),
        ({"close_timeout": -1}, "Expected close_timeout to be finite seconds >= 0"),
        ({"headers": {"Connection": "close"}}, "Expected no hop-by-hop header"),
    ],
)
def test_bad_options_fail_where_the_view_is_defined(option: dict[str, Any], message: str) -> None:
    """A bad stream option fails at decoration or at register(), not at the first request."""
    with pytest.raises(ValueError, match=message):
        sse_view(**option)
    view = type("View", (EventStreamView,), option)
    with pytest.raises(ValueError, match=message):
        view.register(Flask(__name__), "/view")


def test_views_stream_a_subscription_their_view_returns() -> None:
    """@sse_view and EventStreamView stream a broker subscription: no producer option is set."""
    app = Flask(__name__)
    broker = MemoryBroker()

    @app.get("/decorated")
    @sse_view(open_timeout=0.01)
    def decorated() -> Any:
        return broker.subscribe("news")

    class News(EventStreamView):
        open_timeout = 0.01

        def events(self) -> Any:
            return broker.subscribe("news")

    News.register(app, "/class")
    client = app.test_client()
    for path in ("/decorated", "/class"):
        response = client.get(path, buffered=False)  # after the subscription's first read
        assert response.status_code == 200
        broker.publish("news", path)
        [event] = read_events(response, 1)
        assert event.json() == path
        response.close()
