"""``sse_sync.client.EventSource`` against a real Werkzeug server on a local port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sse_sync import ServerSentEvent, sse_response
from sse_sync.client import EventSource, EventSourceError, MessageEvent

from .blocking import watch_blocking
from .conftest import wait_until

#: Every read in these tests times out after this many seconds (it is also the connect timeout).
TIMEOUT = 5.0
#: How long a stopping iteration may take.
DEADLINE = 2.0

Handler = Callable[[Request, int], Response]


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    at: float
    method: str = "GET"
    body: bytes = b""


@dataclass
class Server:
    """A threaded Werkzeug server whose routes each test sets; it records every request."""

    url: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    #: Set at teardown: server generators blocked on it finish.
    release: threading.Event = field(default_factory=threading.Event)

    def app(self, environ: dict[str, object], start_response: Callable[..., object]) -> object:
        request = Request(environ)
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = request.get_data()
        self.seen.append(Seen(request.path, headers, time.monotonic(), request.method, body))
        handler = self.routes.get(request.path)
        if handler is None:
            response = Response("not found", status=404)
        else:
            count = sum(1 for s in self.seen if s.path == request.path)
            response = handler(request, count)
        return response(environ, start_response)  # type: ignore[arg-type]

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def blocking(self, *events: ServerSentEvent) -> Response:
        """A stream that sends ``events`` and then stays open (without pings) until teardown."""

        def gen() -> Iterator[ServerSentEvent]:
            yield from events
            self.release.wait(30)

        return sse_response(gen(), ping=None)


@pytest.fixture
def server() -> Iterator[Server]:
    """A Werkzeug threaded server on 127.0.0.1 and a free port."""
    srv = Server()
    httpd = make_server("127.0.0.1", 0, srv.app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    srv.url = f"http://127.0.0.1:{httpd.server_port}"
    try:
        yield srv
    finally:
        srv.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


def take(source: EventSource, n: int) -> list[MessageEvent]:
    """The next ``n`` events of ``source``."""
    out = []
    for event in source:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_reads_events(server: Server) -> None:
    """Events arrive with their type, data, id and retry, in order."""
    server.routes["/s"] = lambda req, n: server.blocking(
        ServerSentEvent(data={"a": 1}, id="1", retry=40),
        ServerSentEvent(raw_data="two\nlines", event="named"),
        ServerSentEvent(comment="ignored"),
        ServerSentEvent(raw_data="", id="3"),
    )
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        events = take(source, 3)
        assert source.last_event_id == "3"
        assert source.retry == 40
    assert events == [
        MessageEvent("message", '{"a":1}', "1", 40),
        MessageEvent("named", "two\nlines", "1", 40),
        MessageEvent("message", "", "3", 40),
    ]
    assert events[0].json() == {"a": 1}


def test_sends_event_stream_headers_and_custom_headers(server: Server) -> None:
    """The request carries Accept, Cache-Control, the caller's headers and basic auth."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with EventSource(
        server.url + "/s",
        headers={"X-Token": "abc", "Accept": "text/event-stream"},
        auth=("user", "pw"),
        timeout=TIMEOUT,
    ) as source:
        take(source, 1)
    (seen,) = server.requests("/s")
    assert seen.headers["accept"] == "text/event-stream"
    assert seen.headers["cache-control"] == "no-store"
    assert seen.headers["x-token"] == "abc"
    assert seen.headers["authorization"] == "Basic dXNlcjpwdw=="
    assert "last-event-id" not in seen.headers


def test_first_connection_sends_given_last_event_id(server: Server) -> None:
    """last_event_id= is sent as Last-Event-ID on the first connection."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with EventSource(server.url + "/s", last_event_id="41", timeout=TIMEOUT) as source:
        (event,) = take(source, 1)
    assert server.requests("/s")[0].headers["last-event-id"] == "41"
    assert event.last_event_id == "41"  # no id in the event: the stream's id carries on


def test_reconnects_with_last_event_id_after_stream_ends(server: Server) -> None:
    """When the server ends the stream, the client reconnects and sends Last-Event-ID."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response(
                [ServerSentEvent(data=1, id="1", retry=10), ServerSentEvent(data=2, id="2")]
            )
        if n == 2:
            # An id-only frame dispatches nothing but still moves the last event id.
            return sse_response([ServerSentEvent(id="2b")])
        return server.blocking(ServerSentEvent(data=3, id="3"))

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        events = take(source, 3)
    assert [(e.data, e.last_event_id) for e in events] == [("1", "1"), ("2", "2"), ("3", "3")]
    sent = [s.headers.get("last-event-id") for s in server.requests("/s")]
    assert sent == [None, "2", "2b"]


def test_partial_event_at_stream_end_is_discarded(server: Server) -> None:
    """An event cut off by the end of the stream is dropped and the client resumes after it."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response([ServerSentEvent(data=1, id="1", retry=10), b"id: 2\ndata: 2"])
        return server.blocking(ServerSentEvent(data=3, id="3"))

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        events = take(source, 2)
    assert [e.data for e in events] == ["1", "3"]
    assert server.requests("/s")[1].headers["last-event-id"] == "1"


def test_reconnects_after_read_timeout(server: Server) -> None:
    """A stream quiet for longer than the read timeout is a dead connection: reconnect."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return server.blocking(ServerSentEvent(data=1, id="1", retry=10))
        return server.blocking(ServerSentEvent(data=2, id="2"))

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", timeout=0.3) as source:
        events = take(source, 2)
    assert [e.data for e in events] == ["1", "2"]
    assert server.requests("/s")[1].headers["last-event-id"] == "1"


def test_honours_retry_from_server(server: Server) -> None:
    """The client waits the server's retry before reconnecting, not its 3000 ms default."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response([ServerSentEvent(data=1, retry=300)])
        return server.blocking(ServerSentEvent(data=2))

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        take(source, 2)
        assert source.retry == 300
    first, second = server.requests("/s")
    assert 0.3 <= second.at - first.at < 2.5


def test_default_retry_is_3000_ms() -> None:
    """Until the server sets one, the reconnection time is the browsers' 3000 ms."""
    with EventSource("http://127.0.0.1:9/") as source:
        assert source.retry == 3000


def test_backoff_grows_with_failures_and_is_capped() -> None:
    """The first reconnection waits retry; repeated failures wait longer, up to max_backoff."""
    with EventSource("http://127.0.0.1:9/", retry=100, max_backoff=1.0) as source:
        assert source.reconnect_delay(1) == 0.1
        for attempt in range(2, 40):
            backoff = min(1.0, 0.1 * 2 ** (attempt - 1))
            delay = source.reconnect_delay(attempt)
            assert max(0.1, backoff / 2) <= delay <= backoff


def test_server_retry_longer_than_max_backoff_is_honoured() -> None:
    """A server retry above max_backoff is still waited for, as the spec asks."""
    with EventSource("http://127.0.0.1:9/", retry=5000, max_backoff=1.0) as source:
        assert source.reconnect_delay(1) == 5.0
        assert source.reconnect_delay(5) == 5.0


def test_stops_on_204(server: Server) -> None:
    """A 204 No Content ends the iteration without an error and without reconnecting."""
    server.routes["/s"] = lambda req, n: Response(status=204)
    with EventSource(server.url + "/s", retry=10, timeout=TIMEOUT) as source:
        assert list(source) == []
        assert source.closed
    assert len(server.requests("/s")) == 1


def test_204_after_events_ends_iteration(server: Server) -> None:
    """A server can stop a reconnecting client with 204 after a stream."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response([ServerSentEvent(data=1, retry=10)])
        return Response(status=204)

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        assert [e.data for e in source] == ["1"]
    assert len(server.requests("/s")) == 2


def test_fails_on_500(server: Server) -> None:
    """A 500 fails the connection: EventSourceError with the status, no reconnection."""
    server.routes["/s"] = lambda req, n: Response("boom", status=500)
    with EventSource(server.url + "/s", retry=10, timeout=TIMEOUT) as source:
        with pytest.raises(EventSourceError, match="Expected response status 200") as info:
            next(source)
        assert list(source) == []  # the iteration is over
    assert info.value.status_code == 500
    assert len(server.requests("/s")) == 1


def test_fails_on_wrong_content_type(server: Server) -> None:
    """A 200 that is not text/event-stream fails the connection, naming the type it got."""
    server.routes["/s"] = lambda req, n: Response("data: x\n\n", mimetype="text/plain")
    with EventSource(server.url + "/s", retry=10, timeout=TIMEOUT) as source:
        with pytest.raises(EventSourceError, match="'text/plain; charset=utf-8'") as info:
            next(source)
    assert info.value.content_type == "text/plain; charset=utf-8"
    assert len(server.requests("/s")) == 1


def test_content_type_parameters_and_case_are_accepted(server: Server) -> None:
    """Text/Event-Stream with parameters is an event stream (the MIME essence is compared)."""
    server.routes["/s"] = lambda req, n: Response(
        "data: x\n\n", headers={"Content-Type": "Text/Event-Stream;charset=UTF-8"}
    )
    with EventSource(server.url + "/s", max_retries=0, timeout=TIMEOUT) as source:
        assert [e.data for e in source] == ["x"]


def test_follows_redirects(server: Server) -> None:
    """A redirect is followed, as fetch does."""
    server.routes["/old"] = lambda req, n: Response(status=307, headers={"Location": "/s"})
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with EventSource(server.url + "/old", timeout=TIMEOUT) as source:
        assert [e.data for e in take(source, 1)] == ["1"]


def test_max_retries_zero_ends_after_clean_stream(server: Server) -> None:
    """With max_retries=0, a stream the server ends cleanly ends the iteration."""
    server.routes["/s"] = lambda req, n: sse_response([ServerSentEvent(data=1)])
    with EventSource(server.url + "/s", max_retries=0, timeout=TIMEOUT) as source:
        assert [e.data for e in source] == ["1"]
    assert len(server.requests("/s")) == 1


def test_max_retries_counts_reconnections_without_events(server: Server) -> None:
    """max_retries bounds reconnections in a row that bring no event; an event resets it."""

    def handler(req: Request, n: int) -> Response:
        if n == 2:
            return sse_response([ServerSentEvent(data=n)])
        return sse_response([ServerSentEvent(comment="nothing")])

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", retry=1, max_retries=2, timeout=TIMEOUT) as source:
        assert [e.data for e in source] == ["2"]
    assert len(server.requests("/s")) == 4  # 1 empty, 1 with an event, then 2 empty


def test_max_retries_after_network_errors_raises() -> None:
    """Failing to connect max_retries times in a row raises EventSourceError from the error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more: every connection attempt is refused.
    with EventSource(
        f"http://127.0.0.1:{port}/", retry=1, max_retries=2, timeout=TIMEOUT
    ) as source:
        with pytest.raises(EventSourceError, match="after 2 failed reconnection") as info:
            next(source)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def _read_in_thread(source: EventSource) -> tuple[threading.Thread, list[MessageEvent]]:
    got: list[MessageEvent] = []

    def read() -> None:
        for event in source:
            got.append(event)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader, got


def test_close_from_another_thread_stops_blocked_read(server: Server) -> None:
    """close() from another thread makes an iteration blocked on a quiet stream end promptly."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    source = EventSource(server.url + "/s", timeout=TIMEOUT)
    with watch_blocking() as blocking:
        reader, got = _read_in_thread(source)
        # The reader is back inside next(), blocked reading the socket.
        wait_until(lambda: got and blocking.blocked(reader.ident, "recv"))
    start = time.monotonic()
    source.close()
    reader.join(DEADLINE)
    assert not reader.is_alive(), "the iteration did not stop after close()"
    assert time.monotonic() - start < DEADLINE
    assert source.closed
    assert [e.data for e in got] == ["1"]
    assert len(server.requests("/s")) == 1  # closed, not reconnected


def test_close_from_another_thread_stops_reconnect_wait(server: Server) -> None:
    """close() during the wait before a reconnection ends the iteration at once."""
    server.routes["/s"] = lambda req, n: sse_response([ServerSentEvent(data=1, retry=60_000)])
    source = EventSource(server.url + "/s", timeout=TIMEOUT)
    with watch_blocking() as blocking:
        reader, got = _read_in_thread(source)
        # The stream ended: the reader waits (60 s) to reconnect.
        wait_until(lambda: got and blocking.blocked(reader.ident, "wait"))
    source.close()
    reader.join(DEADLINE)
    assert not reader.is_alive(), "the iteration did not stop after close()"
    assert len(server.requests("/s")) == 1


def test_close_between_events_closes_the_connection(server: Server) -> None:
    """close() while no thread is iterating closes the connection; iteration then ends."""
    server.routes["/s"] = lambda req, n: server.blocking(
        ServerSentEvent(data=1), ServerSentEvent(data=2)
    )
    responses: list[httpx.Response] = []
    client = httpx.Client(timeout=TIMEOUT, event_hooks={"response": [responses.append]})
    source = EventSource(server.url + "/s", client=client)
    assert next(source).data == "1"
    [response] = responses
    source.close()
    assert response.is_closed
    assert list(source) == []
    client.close()
    source.close()  # idempotent


def test_injected_client_is_used_and_left_open(server: Server) -> None:
    """An injected httpx.Client sends the requests and is not closed by close()."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with httpx.Client(headers={"X-From-Client": "yes"}, timeout=TIMEOUT) as client:
        with EventSource(server.url + "/s", client=client) as source:
            take(source, 1)
        assert not client.is_closed
    assert server.requests("/s")[0].headers["x-from-client"] == "yes"


def test_concurrent_iteration_is_refused(server: Server) -> None:
    """A second thread iterating the same EventSource gets a RuntimeError."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        with watch_blocking() as blocking:
            reader, got = _read_in_thread(source)
            # The reader is inside next(), blocked reading the socket.
            wait_until(lambda: got and blocking.blocked(reader.ident, "recv"))
        with pytest.raises(RuntimeError, match="already being iterated"):
            next(source)
    reader.join(DEADLINE)
    assert not reader.is_alive()


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_rejects_bad_last_event_id(value: str) -> None:
    """A last_event_id that cannot be a header value or an id raises ValueError."""
    with pytest.raises(ValueError, match="without NUL, CR or LF"):
        EventSource("http://127.0.0.1:9/", last_event_id=value)


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx, creating an EventSource says which extra to install."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"pip install 'sse_sync\[client\]'"):
        EventSource("http://127.0.0.1:9/")


_GEVENT_CLIENT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json, sys, threading, time

    import gevent
    from sse_sync.client import EventSource

    source = EventSource(sys.argv[1], timeout=5.0)
    got = []
    first = threading.Event()  # gevent's, after patch_all()

    def read():
        for event in source:
            got.append(event.data)
            first.set()

    reader = gevent.spawn(read)
    first.wait(5)  # returns once the reader greenlet blocks on the socket again
    start = time.monotonic()
    source.close()
    reader.join(5)
    print(json.dumps({"got": got, "dead": reader.dead, "took": time.monotonic() - start}))
    """
)


def test_works_under_gevent_and_closes_from_another_greenlet(server: Server) -> None:
    """Under gevent's monkey-patching, events arrive and close() from a greenlet stops a read."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data="g"))
    proc = subprocess.run(
        [sys.executable, "-c", _GEVENT_CLIENT, server.url + "/s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["got"] == ['"g"']
    assert result["dead"] is True
    assert result["took"] < DEADLINE


def test_healthy_quiet_streams_do_not_back_off() -> None:
    """A stream that was announced and then ended is reconnected after retry, without backoff."""
    import httpx

    connections: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        connections.append(request.headers.get("Last-Event-ID"))
        if len(connections) <= 5:
            body = b"id: 7\nretry: 1\n: ping\n\n"  # announced, no event, then the end
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)
        return httpx.Response(204)

    waits: list[int] = []
    client = httpx.Client(transport=httpx.MockTransport(handler))
    with EventSource("http://test/stream", client=client) as source:
        real_delay = source.reconnect_delay
        source.reconnect_delay = lambda failures: waits.append(failures) or real_delay(failures)  # type: ignore[method-assign]
        assert list(source) == []
    client.close()
    assert waits == [1] * 5  # always the server's retry: never a growing backoff
    assert connections == [None, "7", "7", "7", "7", "7"]


def test_failed_connections_back_off() -> None:
    """Connections that fail before being announced count up the backoff."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    waits: list[int] = []
    client = httpx.Client(transport=httpx.MockTransport(handler))
    with EventSource("http://test/stream", client=client, retry=1, max_retries=4) as source:
        source.reconnect_delay = lambda failures: waits.append(failures) or 0.0  # type: ignore[method-assign]
        with pytest.raises(EventSourceError, match="after 4 failed"):
            list(source)
    client.close()
    assert waits == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("body", "wire", "content_type"),
    [
        ({"json": {"prompt": "hi", "n": 2}}, b'{"prompt":"hi","n":2}', "application/json"),
        ({"data": {"q": "a b", "n": "1"}}, b"q=a+b&n=1", "application/x-www-form-urlencoded"),
        ({"content": "caf\u00e9"}, "caf\u00e9".encode(), None),
        ({"content": b"\x00raw"}, b"\x00raw", None),
    ],
)
def test_post_body_is_sent_again_on_reconnect(
    server: Server, body: dict[str, Any], wire: bytes, content_type: str | None
) -> None:
    """A reconnection repeats the method and the exact body bytes, with Last-Event-ID."""

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response([ServerSentEvent(data=1, id="1", retry=10)])
        return server.blocking(ServerSentEvent(data=2, id="2"))

    server.routes["/s"] = handler
    with EventSource(server.url + "/s", method="POST", timeout=TIMEOUT, **body) as source:
        events = take(source, 2)
    assert [(e.data, e.last_event_id) for e in events] == [("1", "1"), ("2", "2")]
    first, second = server.requests("/s")
    assert (first.method, first.body) == (second.method, second.body) == ("POST", wire)
    assert first.headers.get("content-type") == second.headers.get("content-type") == content_type
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "1"
    assert second.headers["accept"] == "text/event-stream"


def test_any_method_and_a_given_content_type(server: Server) -> None:
    """Other methods stream too; a Content-Type in headers= wins over the body's."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=req.method))
    with EventSource(
        server.url + "/s",
        method="put",
        json=[1],
        headers={"Content-Type": "application/vnd.chat+json"},
        timeout=TIMEOUT,
    ) as source:
        assert source.method == "PUT"
        assert [e.data for e in take(source, 1)] == ['"PUT"']
    (seen,) = server.requests("/s")
    assert seen.headers["content-type"] == "application/vnd.chat+json"
    assert seen.body == b"[1]"


def test_get_sends_no_body(server: Server) -> None:
    """The default GET sends neither a body nor a Content-Type."""
    server.routes["/s"] = lambda req, n: server.blocking(ServerSentEvent(data=1))
    with EventSource(server.url + "/s", timeout=TIMEOUT) as source:
        take(source, 1)
    (seen,) = server.requests("/s")
    assert (seen.method, seen.body) == ("GET", b"")
    assert "content-type" not in seen.headers
    assert "content-length" not in seen.headers


def test_redirected_post_reconnects_with_the_original_request(server: Server) -> None:
    """A 303 after a POST is followed with a GET, as fetch does; a reconnect POSTs again."""
    server.routes["/chat"] = lambda req, n: Response(status=303, headers={"Location": "/s"})

    def handler(req: Request, n: int) -> Response:
        if n == 1:
            return sse_response([ServerSentEvent(data=1, id="1", retry=10)])
        return server.blocking(ServerSentEvent(data=2, id="2"))

    server.routes["/s"] = handler
    with EventSource(server.url + "/chat", method="POST", json={"a": 1}, timeout=TIMEOUT) as source:
        assert [e.data for e in take(source, 2)] == ["1", "2"]
    assert [(s.method, s.body) for s in server.requests("/chat")] == [("POST", b'{"a":1}')] * 2
    assert server.requests("/chat")[1].headers["last-event-id"] == "1"
    assert [s.method for s in server.requests("/s")] == ["GET", "GET"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "POST", "json": {}, "content": b""}, ValueError, "got json and content"),
        ({"method": "POST", "data": {}, "content": "x"}, ValueError, "got content and data"),
        ({"json": {"a": 1}}, ValueError, "no request body with method='GET', got json="),
        ({"method": "get", "data": {"a": "1"}}, ValueError, "method='GET', got data="),
        ({"method": "HEAD"}, ValueError, "got 'HEAD'"),
        ({"method": "PO ST"}, ValueError, "got 'PO ST'"),
        ({"method": ""}, ValueError, "got ''"),
        ({"method": "POST", "content": iter([b"x"])}, TypeError, "got list_iterator"),
        ({"method": "POST", "data": b"a=1"}, TypeError, "pass a raw body as content="),
    ],
)
def test_rejects_bad_request_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Two bodies, a body with GET, HEAD, a malformed method or an unreplayable body raise."""
    with pytest.raises(error, match=match):
        EventSource("http://127.0.0.1:9/", **kwargs)
