"""What a client gets when the source fails, when headers go out, and stop_at_end, in process."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, abort, g, request, stream_with_context
from pydantic import BaseModel
from werkzeug.exceptions import Forbidden
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from sse_sync import EventStreamView, MemoryBroker, last_event_id, sse_response, sse_view
from sse_sync._event import PING

END_FRAME = b"event: end\nid: sse_sync:end\ndata: \n\n"


class Price(BaseModel):
    symbol: str
    value: float


def _forbidden() -> Iterator[Any]:
    abort(403)
    yield "never"


def _broken() -> Iterator[Any]:
    raise RuntimeError("broken before the first item")
    yield "never"


class Prices(EventStreamView):
    schema = Price

    def events(self, symbol: str) -> Iterator[Any]:
        if symbol == "none":
            abort(404)
        yield {"symbol": symbol}  # no value: does not match the schema


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)

    @app.get("/forbidden")
    def forbidden() -> Any:
        return sse_response(_forbidden())

    @app.get("/broken")
    def broken() -> Any:
        return sse_response(_broken())

    @app.get("/decorated")
    @sse_view
    def decorated() -> Iterator[Any]:
        if request.args.get("user") != "ada":
            abort(403)
        yield "hello"

    @app.get("/late")
    def late() -> Any:
        def gen() -> Iterator[Any]:
            yield "first"
            raise RuntimeError("broken after the first item")

        return sse_response(gen(), ping=None, stop_at_end=request.args.get("stop") == "1")

    @app.get("/empty")
    def empty() -> Any:
        return sse_response(iter(()), ping=None)

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers["X-After"] = "ran"
        return response

    @app.errorhandler(403)
    def no_entry(error: Forbidden) -> tuple[str, int]:
        return "no entry", 403

    Prices.register(app, "/prices/<symbol>")
    return app


def body(response: Any) -> bytes:
    return b"".join(response.response)


def test_abort_before_the_first_item_is_the_views_error(app: Flask) -> None:
    """abort(403) in the source before its first item answers 403 through Flask's handlers."""
    response = app.test_client().get("/forbidden")
    assert response.status_code == 403
    assert response.data == b"no entry"
    assert response.headers["X-After"] == "ran"


def test_exception_before_the_first_item_is_a_500_logged_once(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other exception before the first item is a 500, logged once with its traceback."""
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/broken")
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.name == app.logger.name
    assert isinstance(record.exc_info[1], RuntimeError)  # type: ignore[index]
    assert "broken before the first item" in caplog.text


def test_sse_view_and_class_views_answer_with_the_sources_error(app: Flask) -> None:
    """@sse_view and EventStreamView answer with the error raised before the first item."""
    client = app.test_client()
    assert client.get("/decorated").status_code == 403
    response = client.get("/decorated?user=ada", buffered=False)
    assert (response.status_code, body(response)) == (200, b'data: "hello"\n\n')
    assert client.get("/prices/none").status_code == 404
    assert client.get("/prices/ABC").status_code == 500  # the first item does not match schema


def test_error_after_the_first_item_ends_the_stream_and_is_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """After the first item the status is 200: an error ends the stream and is logged once."""
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/late", buffered=False)
        assert (response.status_code, body(response)) == (200, b'data: "first"\n\n')
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.name == "sse_sync"
    assert "broken after the first item" in str(record.exc_info[1])  # type: ignore[index]


def test_empty_source_is_an_empty_stream(app: Flask) -> None:
    """A source that ends without an item is a 200 with an empty body, as before."""
    response = app.test_client().get("/empty", buffered=False)
    assert (response.status_code, body(response)) == (200, b"")


def test_bare_werkzeug_app_answers_with_the_sources_http_error() -> None:
    """In a bare Werkzeug app, an HTTPException is the answer; another error goes to the server."""

    @Request.application  # type: ignore[arg-type]
    def wsgi_app(request: Request) -> Response:
        return sse_response(_forbidden() if request.path == "/forbidden" else _broken())

    client = Client(wsgi_app)
    response = client.get("/forbidden")
    assert response.status_code == 403
    assert b"Forbidden" in response.data
    with pytest.raises(RuntimeError, match="broken before the first item"):
        client.get("/broken")


def test_quiet_source_sends_headers_with_a_ping_at_the_open_deadline() -> None:
    """A source with nothing to say yet gets its headers out with a ping at open_timeout."""
    release = threading.Event()

    def quiet() -> Iterator[str]:
        release.wait(10)
        yield "late"

    app = Flask(__name__)
    app.add_url_rule("/quiet", "quiet", lambda: sse_response(quiet(), ping=None, open_timeout=0.05))
    response = app.test_client().get("/quiet", buffered=False)
    chunks = iter(response.response)
    assert response.status_code == 200
    assert next(chunks) == PING  # the test client read this first chunk to return the response
    release.set()
    assert list(chunks) == [b'data: "late"\n\n']
    response.close()


def test_error_after_the_open_deadline_only_ends_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once open_timeout has passed, the status is 200: a later error ends the stream, logged."""
    release = threading.Event()

    def slow_to_fail() -> Iterator[str]:
        release.wait(10)
        raise RuntimeError("too late for a status")
        yield "never"

    @Request.application  # type: ignore[arg-type]
    def wsgi_app(request: Request) -> Response:
        return sse_response(slow_to_fail(), ping=None, open_timeout=0.05)

    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        response = Client(wsgi_app).get("/", buffered=False)
        chunks = iter(response.response)
        assert (response.status_code, next(chunks)) == (200, PING)
        release.set()
        assert list(chunks) == []
    [record] = caplog.records
    assert "too late for a status" in str(record.exc_info[1])  # type: ignore[index]


def test_head_starts_nothing_in_a_bare_werkzeug_app() -> None:
    """A HEAD request is answered without starting the source."""
    started = threading.Event()

    def gen() -> Iterator[int]:
        started.set()
        yield 1

    @Request.application  # type: ignore[arg-type]
    def wsgi_app(request: Request) -> Response:
        return sse_response(gen())

    response = Client(wsgi_app).head("/")
    assert (response.status_code, response.data) == (200, b"")
    assert not started.is_set()


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan"), True, "1", None])
def test_open_timeout_must_be_seconds(seconds: Any) -> None:
    """open_timeout is finite seconds >= 0; anything else is a ValueError naming it."""
    with pytest.raises(ValueError, match="Expected open_timeout to be finite seconds >= 0"):
        sse_response([], open_timeout=seconds)


def test_stop_at_end_sends_an_end_event_after_the_last_item_or_an_error(app: Flask) -> None:
    """With stop_at_end, the source's end, even by an error, is followed by the end event."""
    app.add_url_rule(
        "/finite", "finite", lambda: sse_response(iter([1, 2]), ping=None, stop_at_end=True)
    )
    client = app.test_client()
    response = client.get("/finite", buffered=False)
    assert body(response) == b"data: 1\n\ndata: 2\n\n" + END_FRAME
    response = client.get("/late?stop=1", buffered=False)
    assert body(response) == b'data: "first"\n\n' + END_FRAME


def test_stop_at_end_answers_the_reconnect_after_the_end_event_with_204() -> None:
    """A client reconnecting with the end event's id gets a 204; the source never starts."""
    app = Flask(__name__)
    started: list[str | None] = []

    @app.get("/job")
    def job() -> Any:
        seen = last_event_id()  # the end event's id is not the application's

        def gen() -> Iterator[int]:
            started.append(seen)
            yield 1

        return sse_response(gen(), ping=None, stop_at_end=True)

    client = app.test_client()
    response = client.get("/job", headers={"Last-Event-ID": "sse_sync:end"})
    assert (response.status_code, response.data) == (204, b"")
    response = client.get("/job?lastEventId=sse_sync:end")
    assert response.status_code == 204
    assert started == []
    response = client.get("/job", headers={"Last-Event-ID": "7"}, buffered=False)
    assert (response.status_code, body(response)) == (200, b"data: 1\n\n" + END_FRAME)
    assert started == ["7"]


def test_stop_at_end_only_applies_to_iterables() -> None:
    """A broker subscription is read directly: stop_at_end is a TypeError there."""
    with pytest.raises(TypeError, match="stop_at_end only apply to iterable sources"):
        sse_response(MemoryBroker().subscribe("news"), stop_at_end=True)


def test_the_views_g_values_are_read_but_not_overwritten() -> None:
    """The source reads g values of the view; what it sets does not change the view's g."""
    app = Flask(__name__)
    seen: dict[str, Any] = {}

    @app.get("/g")
    def view() -> Any:
        g.user = "ada"

        def gen() -> Iterator[Any]:
            g.user = "changed by the stream"
            g.setdefault("lang", "en")
            yield {"user": g.user, "keys": sorted(g), "in": "lang" in g}

        response = sse_response(gen(), ping=None, open_timeout=5)
        seen["view's user"] = g.user
        return response

    response = app.test_client().get("/g", buffered=False)
    assert body(response) == (
        b'data: {"user":"changed by the stream","keys":["lang","user"],"in":true}\n\n'
    )
    assert seen == {"view's user": "ada"}


def test_a_stream_opened_but_never_sent_stops_its_source() -> None:
    """A view that builds a stream, then returns something else, leaves no producer behind."""
    finished = threading.Event()
    app = Flask(__name__)

    def endless() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            finished.set()

    @app.get("/changed-its-mind")
    def changed_its_mind() -> Any:
        response = sse_response(endless(), queue_size=1, open_timeout=5)
        del response  # the first item was read in the view: the source is running
        return "", 204

    assert app.test_client().get("/changed-its-mind").status_code == 204
    assert finished.wait(5)


def test_stream_with_context_generators_start_with_the_first_iteration() -> None:
    """A stream_with_context generator is not read in the view: its early error ends the stream."""
    app = Flask(__name__)

    @app.get("/wrapped")
    def wrapped() -> Any:
        @stream_with_context
        def gen() -> Iterator[Any]:
            if request.args.get("deny"):
                abort(403)
            yield request.args.get("q")

        return sse_response(gen(), ping=None)

    client = app.test_client()
    response = client.get("/wrapped?q=x", buffered=False)
    assert (response.status_code, body(response)) == (200, b'data: "x"\n\n')
    response = client.get("/wrapped?deny=1", buffered=False)
    assert (response.status_code, body(response)) == (200, b"")


def test_a_stream_the_view_does_not_return_is_stopped_when_the_request_ends() -> None:
    """A stream opened in a view that then raises is closed with the request, not by the GC."""
    import gc

    ran: list[str] = []
    opened = threading.Event()

    def gen() -> Iterator[Any]:
        try:
            opened.set()
            while True:  # until the queue is full: then held by backpressure
                yield "more"
        finally:
            ran.append("finally")

    app = Flask(__name__)

    @app.get("/")
    def view() -> Any:
        stream = sse_response(gen(), ping=None)  # noqa: F841  # held by the traceback's frame
        raise RuntimeError("the view failed after building its stream")

    gc.disable()
    try:
        response = app.test_client().get("/")
        assert response.status_code == 500
        assert opened.is_set()
        deadline = threading.Event()
        for _ in range(100):
            if ran:
                break
            deadline.wait(0.05)
        assert ran == ["finally"]
    finally:
        gc.enable()


def test_views_take_stop_at_end_and_open_timeout() -> None:
    """@sse_view and EventStreamView pass stop_at_end and open_timeout on to the response."""
    app = Flask(__name__)

    def quiet() -> Iterator[int]:
        threading.Event().wait(0.3)  # past open_timeout, well before the default 0.5 s
        yield 1

    @app.get("/view")
    @sse_view(ping=None, stop_at_end=True, open_timeout=0.05)
    def view() -> Iterator[int]:
        return quiet()

    class Job(EventStreamView):
        ping = None
        stop_at_end = True
        open_timeout = 0.05

        def events(self) -> Iterator[int]:
            return quiet()

    Job.register(app, "/class")
    client = app.test_client()
    for path in ("/view", "/class"):
        response = client.get(path, buffered=False)
        assert body(response) == PING + b"data: 1\n\n" + END_FRAME
        again = client.get(path, headers={"Last-Event-ID": "sse_sync:end"})
        assert again.status_code == 204
