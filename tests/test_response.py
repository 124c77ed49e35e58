"""EventStreamResponse in Flask and bare Werkzeug apps, via test clients (buffered=False)."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask import (
    Flask,
    appcontext_popped,
    appcontext_pushed,
    g,
    request,
    request_tearing_down,
    url_for,
)
from pydantic import BaseModel
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from sse_sync import (
    SSE,
    EventStreamResponse,
    EventStreamView,
    MemoryBroker,
    ServerSentEvent,
    event_stream_route,
    sse_response,
    sse_view,
)


class Price(BaseModel):
    symbol: str
    value: float


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)

    @app.before_request
    def set_user() -> None:
        g.user = "ada"

    @app.get("/items")
    def items() -> Any:
        def gen() -> Iterator[Any]:
            yield ServerSentEvent(comment="items")
            for i in range(3):
                yield ServerSentEvent(
                    data={"i": i, "q": request.args.get("q"), "user": g.user}, id=str(i)
                )

        return sse_response(gen(), ping=None)

    @app.get("/custom")
    def custom() -> Any:
        return sse_response(
            [1], headers={"Cache-Control": "no-store", "X-Extra": "1"}, status=201, ping=None
        )

    @app.get("/decorated/<int:n>")
    @sse_view(ping=None)
    def decorated(n: int) -> Iterator[int]:
        yield from range(n)

    @app.get("/forbidden")
    @sse_view
    def forbidden() -> Any:
        return Response("no", status=403)

    return app


def body(response: Any) -> bytes:
    return b"".join(response.response)


def test_flask_view_streams_events_with_headers(app: Flask) -> None:
    """A Flask view returns an event stream with the SSE headers and the yielded events."""
    response = app.test_client().get("/items?q=z", buffered=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Connection" not in response.headers
    assert "Content-Length" not in response.headers
    expected = b": items\n\n" + b"".join(
        b'id: %d\ndata: {"i":%d,"q":"z","user":"ada"}\n\n' % (i, i) for i in range(3)
    )
    assert body(response) == expected
    response.close()


def test_user_headers_override_and_add(app: Flask) -> None:
    """Headers given by the user replace defaults of the same name and add new ones."""
    response = app.test_client().get("/custom", buffered=False)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Extra"] == "1"
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert body(response) == b"data: 1\n\n"


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade"])
def test_hop_by_hop_headers_are_rejected(name: str) -> None:
    """PEP 3333 forbids hop-by-hop headers in an app's response."""
    with pytest.raises(ValueError, match="hop-by-hop"):
        sse_response([], headers={name: "x"})


@pytest.mark.parametrize("source", ["text", b"bytes", {"a": 1}, 42, None])
def test_non_iterable_sources_are_rejected(source: Any) -> None:
    """A string, bytes, mapping or non-iterable is a TypeError naming what came."""
    with pytest.raises(TypeError, match=type(source).__name__):
        sse_response(source)


def test_head_request_starts_nothing(app: Flask) -> None:
    """A HEAD request gets the headers and never starts the producer."""
    started = threading.Event()

    def gen() -> Iterator[int]:
        started.set()
        yield 1

    app.add_url_rule("/head", "head", lambda: sse_response(gen()), methods=["GET", "HEAD"])
    response = app.test_client().head("/head")
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.data == b""
    assert not started.is_set()


def test_unstarted_response_starts_nothing_and_closes() -> None:
    """Building and closing a response without iterating it runs nothing."""
    started = threading.Event()

    def gen() -> Iterator[int]:
        started.set()
        yield 1

    response = sse_response(gen())
    assert isinstance(response, EventStreamResponse)
    response.close()
    response.close()
    assert not started.is_set()


def test_bare_werkzeug_app() -> None:
    """sse_response works in a plain Werkzeug WSGI app, without Flask."""

    @Request.application  # type: ignore[arg-type]
    def wsgi_app(request: Request) -> Response:
        return sse_response((ServerSentEvent(data=i, event="n") for i in range(2)), ping=None)

    response = Client(wsgi_app).get("/", buffered=False)
    assert b"".join(response.iter_encoded()) == b"event: n\ndata: 0\n\nevent: n\ndata: 1\n\n"
    response.close()


def test_in_process_close_stops_generator() -> None:
    """Calling the response as a WSGI app, reading a chunk, then close() runs the finally."""
    finished = threading.Event()

    def gen() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            finished.set()

    response = sse_response(gen(), ping=None, close_timeout=5)
    environ = {
        "REQUEST_METHOD": "GET",
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.input": None,
    }
    app_iter = response(environ, lambda status, headers, exc_info=None: None)
    assert next(iter(app_iter)).startswith(b"data: 1\n\n")
    app_iter.close()  # type: ignore[attr-defined]
    assert finished.is_set()


def test_sse_view_decorator(app: Flask) -> None:
    """@sse_view streams what a generator view yields and passes responses through."""
    client = app.test_client()
    response = client.get("/decorated/3", buffered=False)
    assert body(response) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert client.get("/forbidden").status_code == 403


class PriceStream(EventStreamView):
    schema = Price
    ping = None

    def events(self, symbol: str) -> Iterator[Any]:
        yield Price(symbol=symbol, value=1.0)
        yield {"symbol": symbol, "value": "2.5"}  # validated and coerced by the schema
        yield ServerSentEvent(data={"symbol": symbol, "value": 3}, event="price", id="3")
        yield ServerSentEvent(comment="no data to validate")
        if request.args.get("bad"):
            yield {"symbol": symbol}
            yield {"never": "sent"}

    @event_stream_route("/history")
    def history(self, symbol: str) -> Iterator[Any]:
        yield {"symbol": symbol, "value": 0}


@pytest.fixture
def view_app() -> Flask:
    app = Flask(__name__)
    PriceStream.register(app, "/prices/<symbol>/stream")
    return app


def test_class_view_validates_with_schema(view_app: Flask) -> None:
    """EventStreamView streams events(), serializing each event's data through the schema."""
    response = view_app.test_client().get("/prices/ABC/stream", buffered=False)
    assert body(response) == (
        b'data: {"symbol":"ABC","value":1.0}\n\n'
        b'data: {"symbol":"ABC","value":2.5}\n\n'
        b'event: price\nid: 3\ndata: {"symbol":"ABC","value":3.0}\n\n'
        b": no data to validate\n\n"
    )


def test_class_view_invalid_data_logs_and_ends(
    view_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Data that does not match the schema is logged with the reason; the stream ends cleanly."""
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        response = view_app.test_client().get("/prices/ABC/stream?bad=1", buffered=False)
        data = body(response)
    assert data.endswith(b": no data to validate\n\n")
    assert b"never" not in data
    assert "does not match schema Price" in caplog.text
    assert "value" in caplog.text and "Field required" in caplog.text


def test_class_view_extra_route(view_app: Flask) -> None:
    """Methods marked with event_stream_route are streams below the class's rule."""
    response = view_app.test_client().get("/prices/XYZ/stream/history", buffered=False)
    assert body(response) == b'data: {"symbol":"XYZ","value":0.0}\n\n'
    assert {r.endpoint for r in view_app.url_map.iter_rules()} >= {
        "price_stream",
        "price_stream_history",
    }


def test_event_stream_route_needs_a_slash() -> None:
    """A route suffix must start with '/'."""
    with pytest.raises(ValueError, match="starting with '/'"):
        event_stream_route("history")


def test_producer_options_are_rejected_for_a_subscription() -> None:
    """Options that only a producer uses are a TypeError with a source read directly."""
    subscription = MemoryBroker().subscribe("news")
    sse_response(subscription, ping=5, max_lifetime=60)  # these apply to every stream
    with pytest.raises(TypeError, match="queue_size, runner only apply to iterable sources"):
        sse_response(subscription, queue_size=8, runner="thread")


@pytest.mark.parametrize(
    "option",
    [{"queue_size": 256}, {"runner": "auto"}, {"close_timeout": 1.0}, {"items": "default"}],
)
def test_producer_options_at_their_default_value_are_rejected_too(option: dict[str, Any]) -> None:
    """A producer's option passed with a subscription is refused even at its default value."""
    [name] = option
    with pytest.raises(TypeError, match=f"^{name} only apply to iterable sources"):
        sse_response(MemoryBroker().subscribe("news"), **option)


def test_encode_with_items_at_its_default_value_is_refused() -> None:
    """encode= replaces the items rules: both together are a TypeError, whatever items says."""
    with pytest.raises(TypeError, match="Expected either encode= or items="):
        sse_response(iter([1]), encode=lambda item: b"data: x\n\n", items="default")


def test_view_helpers_pass_stream_options() -> None:
    """@sse_view and EventStreamView pass headers (and the other stream options) through."""
    app = Flask(__name__)

    @app.get("/decorated")
    @sse_view(ping=None, headers={"X-Stream": "d"}, max_lifetime=30, close_timeout=2)
    def decorated() -> Iterator[int]:
        yield 1

    class Stream(EventStreamView):
        ping = None
        headers = {"X-Stream": "c"}
        max_lifetime = 30.0

        def events(self) -> Iterator[int]:
            yield 2

    Stream.register(app, "/class")
    client = app.test_client()
    for path, tag, data in (("/decorated", "d", b"data: 1\n\n"), ("/class", "c", b"data: 2\n\n")):
        response = client.get(path, buffered=False)
        assert response.headers["X-Stream"] == tag
        assert body(response) == data
        response.close()


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def test_generator_sees_the_views_contextvars_and_url_for() -> None:
    """The producer runs in a copy of the view's contextvars: its own, and url_for, work."""
    app = Flask(__name__)

    @app.get("/items/<int:n>")
    def items(n: int) -> Any:
        REQUEST_ID.set(f"req-{n}")

        def gen() -> Iterator[Any]:
            yield {
                "id": REQUEST_ID.get(),
                "next": url_for("items", n=n + 1),
                "n": request.view_args,
            }
            REQUEST_ID.set("changed in the stream")

        return sse_response(gen(), ping=None)

    response = app.test_client().get("/items/7", buffered=False)
    assert body(response) == b'data: {"id":"req-7","next":"/items/8","n":{"n":7}}\n\n'
    response.close()
    # The test client ran the view in this context; what the stream set stayed in its copy.
    assert REQUEST_ID.get() == "req-7"


def test_teardown_signal_receivers_run_for_the_stream_too() -> None:
    """A receiver of request_tearing_down runs for the view and again when the stream ends."""
    app = Flask(__name__)
    threads: list[str] = []

    def on_teardown(sender: Flask, **extra: Any) -> None:
        threads.append(threading.current_thread().name)

    @app.get("/s")
    def stream() -> Any:
        return sse_response(iter([1]), ping=None)

    with request_tearing_down.connected_to(on_teardown, app):
        response = app.test_client().get("/s", buffered=False)
        assert body(response) == b"data: 1\n\n"
        response.close()
    # The source starts in the view, so a short stream may end before the view is torn down.
    assert sorted(threads) == ["MainThread", "sse_sync-producer"]


def _db_app(view_db: str | None) -> tuple[Flask, list[tuple[str, str | None]]]:
    """An app whose teardown pops g.db, and a view whose source reads (or opens) g.db twice.

    The source's second step waits for the view's teardown.
    """
    app = Flask(__name__)
    calls: list[tuple[str, str | None]] = []
    view_torn_down = threading.Event()

    @app.teardown_appcontext
    def close_db(exc: BaseException | None) -> None:
        calls.append((threading.current_thread().name, g.pop("db", None)))
        if threading.current_thread().name == "MainThread":
            view_torn_down.set()

    @app.get("/db")
    def with_db() -> Any:
        g.user = "ada"
        if view_db is not None:
            g.db = view_db

        def gen() -> Iterator[Any]:
            if view_db is None and "db" not in g:  # get_db(), in the first step: in the view
                g.db = f"{g.user}'s stream connection"
            yield g.get("db")
            view_torn_down.wait(5)
            yield g.get("db")

        return sse_response(gen(), ping=None, open_timeout=5)

    return app, calls


def test_what_the_source_opens_through_g_outlives_the_views_teardown() -> None:
    """What the source sets on g in its first step is its own: only its teardown sees it."""
    app, calls = _db_app(view_db=None)
    response = app.test_client().get("/db", buffered=False)
    assert body(response) == b'data: "ada\'s stream connection"\n\n' * 2
    response.close()
    assert calls == [("MainThread", None), ("sse_sync-producer", "ada's stream connection")]


def test_the_source_reads_the_views_g_and_leaves_its_teardown_to_the_view() -> None:
    """The source sees what the view put on g until the view's teardown, which alone closes it."""
    app, calls = _db_app(view_db="view's connection")
    response = app.test_client().get("/db", buffered=False)
    assert body(response) == b'data: "view\'s connection"\n\ndata: null\n\n'
    response.close()
    assert calls == [("MainThread", "view's connection"), ("sse_sync-producer", None)]


def test_after_request_hooks_see_an_event_stream_response() -> None:
    """Flask keeps every entry point's stream an EventStreamResponse for after_request hooks."""
    app = Flask(__name__)
    app.config["SSE_PUBLIC_CHANNELS"] = "*"
    SSE(app)
    seen: dict[str, bool] = {}

    @app.after_request
    def look(response: flask.Response) -> flask.Response:
        seen[request.path] = isinstance(response, EventStreamResponse)
        return response

    @app.get("/view")
    def view() -> Any:
        return sse_response(iter([1]), ping=None)

    @app.get("/decorated")
    @sse_view(ping=None)
    def decorated() -> Iterator[int]:
        yield 1

    class Stream(EventStreamView):
        ping = None

        def events(self) -> Iterator[int]:
            yield 1

    Stream.register(app, "/class")
    app.get("/plain")(lambda: "not a stream")
    client = app.test_client()
    for path in ("/view", "/decorated", "/class", "/stream?channel=news", "/plain"):
        response = client.get(path, buffered=False)
        response.close()
    assert seen == {
        "/view": True,
        "/decorated": True,
        "/class": True,
        "/stream": True,
        "/plain": False,
    }


def test_the_apps_response_class_is_a_base_of_its_streams() -> None:
    """A stream built in a view is also of the app's response_class, whose behaviour applies."""

    class Tagged(flask.Response):
        def get_wsgi_headers(self, environ: Any) -> Any:
            headers = super().get_wsgi_headers(environ)
            headers["X-Tagged"] = type(self).__name__
            return headers

    app = Flask(__name__)
    app.response_class = Tagged
    kinds: list[tuple[bool, bool]] = []

    @app.after_request
    def look(response: flask.Response) -> flask.Response:
        kinds.append((isinstance(response, Tagged), isinstance(response, EventStreamResponse)))
        return response

    @app.get("/s")
    def stream() -> Any:
        return sse_response(iter([1]), ping=None)

    response = app.test_client().get("/s", buffered=False)
    assert body(response) == b"data: 1\n\n"
    assert response.headers["X-Tagged"] == "EventStreamResponse"
    assert response.mimetype == "text/event-stream"
    assert kinds == [(True, True)]
    response.close()


def test_the_streams_app_context_is_pushed_in_the_view_and_popped_at_its_end() -> None:
    """The stream's own app context sends appcontext_pushed in the view, _popped at its end."""
    app = Flask(__name__)
    signals: list[tuple[str, str]] = []

    def on_pushed(sender: Flask, **extra: Any) -> None:
        signals.append(("pushed", threading.current_thread().name))

    def on_popped(sender: Flask, **extra: Any) -> None:
        signals.append(("popped", threading.current_thread().name))

    @app.get("/s")
    def stream() -> Any:
        signals.clear()  # from the view's own context on: the stream's come next
        return sse_response(iter([1]), ping=None)

    with appcontext_pushed.connected_to(on_pushed, app):
        with appcontext_popped.connected_to(on_popped, app):
            response = app.test_client().get("/s", buffered=False)
            assert body(response) == b"data: 1\n\n"
            response.close()
    assert ("pushed", "MainThread") in signals
    assert ("popped", "sse_sync-producer") in signals
    assert signals.index(("pushed", "MainThread")) < signals.index(("popped", "sse_sync-producer"))


def test_the_streams_g_is_of_the_apps_globals_class() -> None:
    """An app's own app_ctx_globals_class makes the stream's g too, reading the view's values."""
    app = Flask(__name__)

    class Globals(app.app_ctx_globals_class):  # type: ignore[name-defined,misc]
        def language(self) -> str:
            return str(self.get("lang", "en"))

    app.app_ctx_globals_class = Globals

    @app.get("/s")
    def stream() -> Any:
        g.lang = "fr"

        def gen() -> Iterator[Any]:
            yield {"own": isinstance(g._get_current_object(), Globals), "lang": g.language()}

        return sse_response(gen(), ping=None)

    response = app.test_client().get("/s", buffered=False)
    assert body(response) == b'data: {"own":true,"lang":"fr"}\n\n'
    response.close()


class _OldSource:
    """A FrameSource of an older protocol: read_frames() and close() only."""

    def read_frames(self, timeout: float | None) -> bytes | None:
        return b""

    def close(self) -> None:
        pass


def test_a_source_missing_hooks_is_refused_when_the_response_is_built() -> None:
    """A FrameSource without attach()/wake_reader() fails at once, naming what it lacks."""
    with pytest.raises(TypeError, match=r"_OldSource without attach\(\), wake_reader\(\)"):
        sse_response(_OldSource())
