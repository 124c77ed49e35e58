"""A blocking, reconnecting ``EventSource`` client over httpx, and the event-stream parser.

It behaves like a browser's ``EventSource`` (WHATWG HTML, "Server-sent events"):
https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface

* It reconnects when the connection drops or the server ends the stream, after the
  reconnection time the server set with ``retry:`` (3000 ms until it sets one, as browsers
  do), and sends the last event id back in a ``Last-Event-ID`` header.
* Reconnections that fail in a row wait longer and longer (capped exponential backoff with
  jitter), so a server that is down is not hammered. The spec allows this ("user agents may
  wait longer [...] if the previous attempts failed").
* It can send any method with a body (``method="POST", json={...}``), which a browser's
  ``EventSource`` cannot: each reconnection repeats the same request, body included.
* It never reconnects after the server "fails the connection": a status other than 200, or a
  ``Content-Type`` other than ``text/event-stream``. A ``204 No Content`` is the server's way to
  say "stop": iteration just ends. Any other status or type raises :class:`EventSourceError`.

httpx is imported when an :class:`EventSource` is created (``pip install 'sse_sync[client]'``).
It works the same under gevent (with ``gevent.monkey.patch_all()``) as with threads.
"""

from __future__ import annotations

import random
import re
import socket
import threading
from collections.abc import Generator, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from ._parse import EventParser, MessageEvent, iter_events

if TYPE_CHECKING:
    import httpx

__all__ = ["EventParser", "EventSource", "EventSourceError", "MessageEvent", "iter_events"]

#: The reconnection time, in milliseconds, until the server sets one (what browsers use).
DEFAULT_RETRY = 3000
#: Seconds to wait for a connection when no ``timeout`` is given.
DEFAULT_CONNECT_TIMEOUT = 10.0

# Backoff never doubles from less than this (seconds), so "retry: 0" cannot make a failing
# reconnect loop spin.
_MIN_BACKOFF_BASE = 0.01
# An HTTP method is a token (RFC 9110, section 5.6.2).
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Methods whose requests must not carry a body here, as in fetch() ("Request with GET/HEAD
# method cannot have body"); a HEAD response has no body to stream either.
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})
# Past this many doublings the cap has long been reached; keeps 2 ** n a small float.
_MAX_DOUBLINGS = 32


def _import_httpx() -> ModuleType:
    try:
        import httpx
    except ImportError as exc:
        msg = "EventSource requires the 'httpx' package: pip install 'sse_sync[client]'"
        raise ImportError(msg) from exc
    return httpx


class EventSourceError(Exception):
    """The server failed the connection, or reconnecting was given up; the stream is over.

    Raised from the iteration of an :class:`EventSource`:

    * when the server answers with a status other than 200 (204 ends the iteration without
      an error) or a ``Content-Type`` other than ``text/event-stream``: the spec's "fail the
      connection", never retried;
    * when ``max_retries`` reconnections in a row failed with a network error; that error is
      the exception's ``__cause__``.

    :param message: what went wrong.
    :param status_code: the response's status, when there was a response.
    :param content_type: the response's ``Content-Type``, when there was a response.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, content_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.content_type = content_type


class _Stop(Exception):
    """The server answered 204 No Content: stop without reconnecting."""


def _encode_body(
    lib: ModuleType, method: str, url: str, json: Any, content: object, data: object
) -> tuple[bytes | None, str | None]:
    """Check the request body arguments and encode them once: ``(body, its Content-Type)``.

    The bytes are kept so that every reconnection sends exactly the same body.
    """
    bodies = (("json", json), ("content", content), ("data", data))
    given = [name for name, value in bodies if value is not None]
    if not given:
        return None, None
    if len(given) > 1:
        msg = (
            f"Expected at most one of json=, content= and data=, got {' and '.join(given)}; "
            "pass the request body once"
        )
        raise ValueError(msg)
    if method in _NO_BODY_METHODS:
        msg = (
            f"Expected no request body with method={method!r}, got {given[0]}=; pass "
            "method='POST' (or another method that takes a body), as fetch() requires too"
        )
        raise ValueError(msg)
    if content is not None and not isinstance(content, (bytes, str)):
        msg = (
            f"Expected content to be bytes or str (a body that can be sent again on each "
            f"reconnection), got {type(content).__name__}; read it into bytes first"
        )
        raise TypeError(msg)
    if data is not None and not isinstance(data, Mapping):
        msg = (
            f"Expected data to be a mapping of form fields, got {type(data).__name__}; "
            "pass a raw body as content="
        )
        raise TypeError(msg)
    request = lib.Request(method, url, json=json, content=content, data=data)
    content_type: str | None = request.headers.get("Content-Type")
    return request.content, content_type


def _mime_essence(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _interrupt(response: httpx.Response) -> None:
    """Make a read blocked on ``response`` (in another thread or greenlet) return now.

    Closing a socket does not wake a thread blocked in ``recv()`` on it; ``shutdown()`` does
    (the read returns end-of-file), and under gevent it also wakes the waiting greenlet. The
    reading side then sees a network error and cleans up the response itself.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected: nothing is blocked on it
    else:
        # A custom transport without a socket (e.g. httpx.MockTransport): closing the
        # response is the best we can do.
        response.close()


class EventSource:
    """Iterate over the events of an event stream, reconnecting like a browser does.

    .. code-block:: python

        from sse_sync.client import EventSource

        with EventSource("http://localhost:8000/items/stream", timeout=30.0) as source:
            for event in source:
                print(event.type, event.last_event_id, event.json())

    Iteration blocks until the next event. It ends when the server answers ``204 No
    Content``, when :meth:`close` is called (from any thread or greenlet), or when
    ``max_retries`` is exhausted after a clean end of the stream. It raises
    :class:`EventSourceError` when the server fails the connection (another non-200 status,
    or a ``Content-Type`` that is not ``text/event-stream``) or when ``max_retries`` is
    exhausted after network errors. Only one thread may iterate at a time.

    To stream the answer to a ``POST`` (an LLM-style chat endpoint, say), pass the method
    and a body, as with httpx. Each reconnection sends the same method and the same body
    bytes again, with ``Last-Event-ID``, so the server can resume:

    .. code-block:: python

        with EventSource(
            "http://localhost:8000/chat", method="POST", json={"prompt": "Hi"}, max_retries=0
        ) as source:
            for event in source:
                print(event.data, end="")

    :param url: the event stream's URL.
    :param method: the HTTP method, upper-cased as httpx does. ``GET`` and ``HEAD`` take no
        body (as in ``fetch()``); ``HEAD`` has no response body to stream, so it is refused.
    :param headers: extra request headers, e.g. ``{"Authorization": "Bearer ..."}``. The
        client sends ``Accept: text/event-stream``, ``Cache-Control: no-store``, the body's
        ``Content-Type`` (unless given here) and, when reconnecting, ``Last-Event-ID``.
    :param json: a request body to send as JSON (``Content-Type: application/json``).
    :param content: a raw request body, ``bytes`` or ``str`` (UTF-8); set its
        ``Content-Type`` in ``headers``. Iterators and files are refused: the body is sent
        again on each reconnection.
    :param data: form fields to send URL-encoded
        (``Content-Type: application/x-www-form-urlencoded``).
    :param last_event_id: the id to resume after on the first connection (sent as
        ``Last-Event-ID``); must not contain NUL, CR or LF.
    :param timeout: seconds, or an :class:`httpx.Timeout`. A float limits connecting and each
        read: set it above the server's ping interval and a dead connection is found (and
        reconnected) after that long. ``None`` (the default) allows
        ``DEFAULT_CONNECT_TIMEOUT`` seconds to connect and waits for ever for the next
        read, like a browser, since a stream may be quiet for a long time. With ``client=``,
        ``None`` means the client's own timeout.
    :param auth: an httpx auth (``("user", "password")`` for basic auth, or an
        :class:`httpx.Auth`); with ``client=``, ``None`` means the client's own.
    :param client: an :class:`httpx.Client` to send requests with (for proxies, TLS settings,
        cookies, transports, ...). It is not closed by :meth:`close`; one the event source
        creates itself is.
    :param retry: the reconnection time in milliseconds until the server sets one.
    :param max_retries: how many reconnections in a row may happen without an event arriving
        in between; ``None`` (the default) reconnects for ever, ``0`` never reconnects.
    :param max_backoff: the longest wait in seconds between failing reconnections (unless
        the server's ``retry`` is longer).
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        last_event_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        client: httpx.Client | None = None,
        retry: int = DEFAULT_RETRY,
        max_retries: int | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        lib = _import_httpx()
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            msg = f"Expected method to be an HTTP method such as 'GET' or 'POST', got {method!r}"
            raise ValueError(msg)
        method = method.upper()
        if method == "HEAD":
            msg = (
                "Expected a method whose response has a body, got 'HEAD'; "
                "use 'GET' to read an event stream"
            )
            raise ValueError(msg)
        body, body_type = _encode_body(lib, method, url, json, content, data)
        if last_event_id is not None and any(c in last_event_id for c in "\0\r\n"):
            msg = f"Expected last_event_id without NUL, CR or LF, got {last_event_id!r}"
            raise ValueError(msg)
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            msg = f"Expected retry to be milliseconds (an int >= 0), got {retry!r}"
            raise ValueError(msg)
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            msg = f"Expected max_retries to be an int >= 0 or None, got {max_retries!r}"
            raise ValueError(msg)
        if not max_backoff > 0:
            msg = f"Expected max_backoff to be seconds > 0, got {max_backoff!r}"
            raise ValueError(msg)
        self.url = url
        self.method = method
        self._headers = lib.Headers({"Accept": "text/event-stream", "Cache-Control": "no-store"})
        if headers is not None:
            self._headers.update(headers)
        if body_type is not None and "Content-Type" not in self._headers:
            self._headers["Content-Type"] = body_type
        self._body = body
        self._last_event_id = last_event_id or ""
        self._retry = retry
        self._server_retry: int | None = None
        self._max_retries = max_retries
        self._announced = False  # whether the current connection was announced (200, SSE)
        self._max_backoff = max_backoff
        # None: the client's own (ours is built with the right default timeout).
        self._auth = auth
        self._timeout = timeout
        if timeout is None and client is None:
            timeout = lib.Timeout(DEFAULT_CONNECT_TIMEOUT, read=None)
        self._owns_client = client is None
        self._client: httpx.Client = (
            lib.Client(timeout=timeout, follow_redirects=True) if client is None else client
        )
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._busy = False  # a thread is inside __next__
        self._finished = False
        self._response: httpx.Response | None = None
        self._events = self._run()

    @property
    def last_event_id(self) -> str:
        """The id of the last event received (``""`` if none had one); sent on reconnect."""
        return self._last_event_id

    @property
    def retry(self) -> int:
        """The current reconnection time in milliseconds (the server's, once it set one)."""
        return self._retry

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called or the iteration ended."""
        return self._closed.is_set()

    def __iter__(self) -> EventSource:
        return self

    def __next__(self) -> MessageEvent:
        with self._lock:
            stop = self._closed.is_set()
            if not stop:
                if self._busy:
                    msg = "This EventSource is already being iterated in another thread"
                    raise RuntimeError(msg)
                self._busy = True
        if stop:
            self._finish()
            raise StopIteration
        done = False
        try:
            return next(self._events)
        except BaseException:
            done = True  # ended, failed, or interrupted (GreenletExit, KeyboardInterrupt)
            raise
        finally:
            with self._lock:
                self._busy = False
                done = done or self._closed.is_set()
            if done:
                self._finish()

    def close(self) -> None:
        """Stop the event source; safe from any thread or greenlet, and idempotent.

        A read blocked in another thread or greenlet returns at once and that iteration
        ends; so does a wait before reconnecting. A connection attempt in progress is not
        interrupted: it ends within the connect timeout, and then the iteration ends. (An
        open connection is shut down, so with an injected HTTP/2 client, other requests
        sharing that connection fail too.)
        """
        with self._lock:
            self._closed.set()
            response = self._response
            busy = self._busy
        if response is not None:
            _interrupt(response)
        if not busy:
            self._finish()
        # Else the iterating thread finishes when its read returns.

    def _finish(self) -> None:
        with self._lock:
            self._closed.set()
            if self._finished:
                return
            self._finished = True
        self._events.close()  # closes an open response (the generator's finally)
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EventSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def reconnect_delay(self, attempt: int) -> float:
        """Seconds this source waits before the ``attempt``-th reconnection in a row that
        brought no event: the server's (or the ``retry``) reconnection time first, then
        doubling, with jitter, up to ``max_backoff`` (never below the server's ``retry``).

        :param attempt: 1 for the first reconnection after events, 2 after one that failed...
        """
        base = self._retry / 1000
        if attempt <= 1:
            return min(base, threading.TIMEOUT_MAX)
        # Repeated failures: double from the reconnection time up to the cap, with "equal
        # jitter" (half fixed, half random) so that clients do not reconnect in lockstep.
        cap = max(self._max_backoff, base)
        doublings = min(attempt - 1, _MAX_DOUBLINGS)
        backoff = min(cap, max(base, _MIN_BACKOFF_BASE) * 2.0**doublings)
        delay = max(base, backoff / 2 + random.uniform(0, backoff / 2))
        return min(delay, threading.TIMEOUT_MAX)

    def _run(self) -> Generator[MessageEvent, None, None]:
        lib = _import_httpx()
        retryable = (
            lib.TimeoutException,
            lib.NetworkError,
            lib.RemoteProtocolError,
            lib.ProxyError,
        )
        attempt = 0  # reconnections since the last event (bounded by max_retries)
        failures = 0  # connections in a row that failed before being announced (backoff)
        while True:
            self._announced = False
            error: Exception | None = None
            try:
                for event in self._connect():
                    attempt = 0
                    yield event
            except _Stop:
                return
            except retryable as exc:
                error = exc
            except Exception:
                if self._closed.is_set():
                    return  # the connection was torn down by close(): not an error
                raise
            if self._closed.is_set():
                return
            if self._max_retries is not None and attempt >= self._max_retries:
                if error is None:
                    return  # the server ended the stream cleanly: so does the iteration
                msg = (
                    f"Gave up on the event stream at {self.url!r} after {attempt} failed "
                    f"reconnection(s) in a row (max_retries={self._max_retries}): {error}"
                )
                raise EventSourceError(msg) from error
            attempt += 1
            # A stream that was announced (200, text/event-stream) and then ended is healthy:
            # reconnect after the server's retry, as browsers do; back off only on failures.
            failures = 0 if self._announced else failures + 1
            if self._closed.wait(self.reconnect_delay(max(failures, 1))):
                return

    def _connect(self) -> Iterator[MessageEvent]:
        """Open one connection and yield its events; raises ``_Stop`` on 204."""
        headers = self._headers.copy()
        if self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        client = self._client
        method, url, body = self.method, self.url, self._body
        if self._timeout is None:
            request = client.build_request(method, url, headers=headers, content=body)
        else:
            request = client.build_request(
                method, url, headers=headers, content=body, timeout=self._timeout
            )
        # Redirects are followed, as fetch does (a 303 turns a POST into a GET without a
        # body); the next reconnection sends the original request to self.url again.
        if self._auth is None:
            response = client.send(request, stream=True, follow_redirects=True)
        else:
            response = client.send(request, stream=True, auth=self._auth, follow_redirects=True)
        with self._lock:
            if self._closed.is_set():
                response.close()
                return
            self._response = response
        try:
            self._check(response)
            self._announced = True  # the spec's "announce the connection"
            parser = EventParser(last_event_id=self._last_event_id, retry=self._server_retry)
            for chunk in response.iter_bytes():
                events = parser.feed(chunk)
                if parser.retry is not None:
                    self._server_retry = self._retry = parser.retry
                for event in events:
                    self._last_event_id = event.last_event_id
                    yield event
                # A blank line sets the last event id even when it dispatches nothing.
                self._last_event_id = parser.last_event_id
        finally:
            with self._lock:
                self._response = None
            response.close()

    def _check(self, response: httpx.Response) -> None:
        """Fail the connection unless the response is an event stream (raise; ``_Stop``: 204)."""
        if response.status_code == 204:
            raise _Stop
        content_type = response.headers.get("Content-Type", "")
        if response.status_code != 200:
            msg = (
                f"Expected response status 200 from the event stream at {self.url!r}, got "
                f"{response.status_code} {response.reason_phrase}; the connection failed and "
                "is not retried (send 204 No Content to stop a client without an error)"
            )
            raise EventSourceError(msg, status_code=response.status_code, content_type=content_type)
        if _mime_essence(content_type) != "text/event-stream":
            msg = (
                f"Expected response header Content-Type to be 'text/event-stream' at "
                f"{self.url!r}, got {content_type!r}; the connection failed and is not retried"
            )
            raise EventSourceError(msg, status_code=response.status_code, content_type=content_type)
