"""sse_sync's gunicorn gevent worker: fan-out written by the publisher, concurrent HTTP/2 streams.

.. code-block:: sh

    gunicorn -k sse_sync.gunicorn.GeventWorker myapp:app
    gunicorn -k sse_sync.gunicorn.GeventWorker --http-protocols h2,h1 \\
        --certfile cert.pem --keyfile key.pem myapp:app

It is gunicorn's gevent worker (``-k gevent``) with two changes.

**Fan-out over HTTP/1.x.** Under ``-k gevent``, each event published to a channel wakes the
greenlet of each subscriber's stream, which reads it and hands it to gunicorn to write: a
switch and a write per subscriber and event, which holds one worker to about 20,000 deliveries
a second. Here, when an sse_sync event stream is gunicorn's response body as it is (no
middleware wrapped it), the worker lets publishers write to its socket
(:meth:`sse_sync.ClientConnection.write_through`): a broker subscription whose stream waits for
events gets them written by the publisher, one non-blocking ``send`` each, as the HTTP chunk
gunicorn would have written, and its greenlet sleeps on. A client whose socket buffer is full
gets the rest from its own greenlet, as before. The pings of every such stream (a broker's or
a generator's) are written the same way, by a timer of the hub. Nothing else changes.

**HTTP/2.** gunicorn's own workers serve an HTTP/2 connection's streams one after the other
(``AsyncWorker.handle_http2``): an endless event stream holds back every other stream of its
connection, so a page opens one ``EventSource`` of several, and a closed one goes unnoticed
until its next write. This worker keeps gunicorn's HTTP/2 connection (its h2 state machine,
request parsing, flow-control accounting, limits) and changes who runs it: the connection's
greenlet only reads frames and hands each new stream to a greenlet of its own. HTTP/2 needs
``pip install 'sse_sync[http2]'``; HTTP/1.x needs gevent and gunicorn 27 or later (this
module imports gunicorn's HTTP/2 code), as ``[gevent]`` installs, not ``h2``. Only this module
imports gunicorn and gevent; ``import sse_sync`` does not load it.

Invariants, and why they hold:

1. Frames reach the socket whole and in the order h2 produced them. Greenlets switch only
   where they wait, and the h2 state machine never waits, so each call into it is atomic. The
   one wait that could cut a frame, a ``sendall`` that fills the socket buffer, runs under a
   gevent lock, and the bytes it sends are taken from h2 under that lock. HTTP/2 forbids TLS
   renegotiation (RFC 9113 section 9.2.1), so a write never has to read from the socket.
2. Only the connection's greenlet reads the socket. gunicorn's connection reads it itself in
   two places, while a response waits for window credit and while an application reads a
   request body (``pump``); here both wait instead until the reader has handled more frames.
   The reader never waits for window credit, so a stream that waits for ``WINDOW_UPDATE``
   cannot block the reader that brings it.
3. A stream the peer resets (``RST_STREAM``), or whose connection is gone, stops at once: its
   greenlet is interrupted with ``GreenletExit`` while it waits inside the response iterable's
   ``next()``, and gunicorn then calls the iterable's ``close()`` (PEP 3333), which for an
   sse_sync event stream closes the generator and runs its ``finally``. The exception is
   thrown from the hub, as gevent's ``Timeout`` is, so the greenlet is suspended when it is
   checked; it is never thrown while the greenlet holds the write lock (invariant 1): a reset
   that comes then ends the stream right after its write. A reset that comes while the
   greenlet is elsewhere (writing, ending the response) ends it before its next ``next()``.
4. The connection outlives its streams. When the worker stops (``alive`` false) it takes no
   new streams (``REFUSED_STREAM``), lets the open ones finish (sse_sync's streams end
   within about a second) and then closes with ``GOAWAY``. The reader sees ``alive`` each
   time a read returns or times out (after ``--keep-alive`` seconds). When the connection
   ends, its open streams are stopped as in 3. Either way the connection's greenlet returns
   only after every stream greenlet has ended, so gunicorn's graceful shutdown, which waits
   for the connection greenlets, waits for the streams too. (sse_sync's streams never shut
   the shared socket down: over TLS nothing can be written once the read side has ended, so
   one stream's drain would cut off the ``retry:`` frames of the others.)
5. Direct writes put on the wire exactly what gunicorn would. They are enabled only for an
   HTTP/1.x response whose body is the sse_sync ``EventStream`` itself (a middleware that
   wraps or rewrites the body, such as compression, keeps them off), started with gunicorn's
   own ``start_response`` and no ``Content-Length``, on a connection without TLS (a direct
   write goes to the TCP socket, under the TLS layer); each is framed as gunicorn frames that
   response (a chunk under HTTP/1.1, raw bytes under HTTP/1.0) and counted in its bytes sent.
   When they may happen, and how they never interleave with gunicorn's writes, is
   ``sse_sync._server``'s invariant 4 and ``sse_sync._stream``'s invariant 7.

Each HTTP/2 connection counts once against ``--worker-connections``; its concurrent streams
are bounded by ``--http2-max-concurrent-streams`` (100 by default).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gunicorn.http.wsgi import Response
from gunicorn.http2.connection import HTTP2ServerConnection
from gunicorn.http2.errors import HTTP2ConnectionError, HTTP2ErrorCode, HTTP2ProtocolError
from gunicorn.http2.stream import StreamState
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

from ._stream import EventStream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["GeventWorker"]


class _Stream(gevent.Greenlet):  # type: ignore[misc]
    """The greenlet serving one HTTP/2 stream."""

    def __init__(self, run: Callable[..., None], *args: Any) -> None:
        super().__init__(run, *args)
        #: Inside ``next()`` on the response iterable, where a reset may interrupt it.
        self.in_app = False
        #: The peer reset the stream, or the connection is gone.
        self.reset = False


class _Body:
    """The response iterable of an HTTP/2 stream, marking when its greenlet waits on it."""

    def __init__(self, greenlet: _Stream, iterable: Iterable[bytes]) -> None:
        self._greenlet = greenlet
        self._iterable = iterable
        self._iterator = iter(iterable)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        greenlet = self._greenlet
        if greenlet.reset:
            raise gevent.GreenletExit
        greenlet.in_app = True
        try:
            return next(self._iterator)
        finally:
            greenlet.in_app = False

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()


class _Connection(HTTP2ServerConnection):  # type: ignore[misc]
    """gunicorn's HTTP/2 connection, shared by one reader greenlet and a greenlet per stream."""

    draining: bool
    peer_last_stream_id: int | None

    def __init__(self, cfg: Any, sock: Any, client_addr: Any) -> None:
        super().__init__(cfg, sock, client_addr)
        self._send_lock = Semaphore()
        self._sender: Any = None  # the greenlet holding _send_lock
        self._frames = Event()  # set, and replaced, each time the reader has handled frames
        #: The greenlets serving this connection's streams, by stream id.
        self.serving: dict[int, _Stream] = {}

    def serve(self, stream_id: int, run: Callable[..., None], *args: Any) -> None:
        """Serve a stream on a greenlet of its own: ``run(*args)``."""
        greenlet = _Stream(run, *args)
        self.serving[stream_id] = greenlet
        greenlet.link(lambda _: self.serving.pop(stream_id, None))
        greenlet.start()

    def drain(self) -> None:
        """Refuse new streams, and close with GOAWAY once the open ones are done.

        gunicorn's handling of a graceful GOAWAY from the peer does exactly this (RFC 9113
        section 6.8), so the drain reuses it: ``cleanup_stream()`` closes after the last one.
        """
        if not self.draining:
            self.draining = True
            self.peer_last_stream_id = self.h2_conn.highest_inbound_stream_id
        if not self.streams:
            self.close()

    def end(self) -> None:
        """Close with GOAWAY if still open, and stop the streams still being served."""
        self.close()
        self._abort_all_streams()

    def _send_pending_data(self) -> None:
        current = gevent.getcurrent()
        with self._send_lock:
            self._sender = current
            try:
                super()._send_pending_data()
            finally:
                self._sender = None
        if isinstance(current, _Stream) and current.reset and current.in_app:
            raise gevent.GreenletExit  # reset during a write from inside next(): see _interrupt

    def _process_events(self, events: Any) -> Any:
        try:
            return super()._process_events(events)
        finally:
            self._wake()

    def _wake(self) -> None:
        """Wake the stream greenlets waiting for frames (window credit, request body)."""
        frames, self._frames = self._frames, Event()
        frames.set()

    def _wait_for_flow_control_window(self, stream_id: int, deadline: float | None = None) -> int:
        # gunicorn reads the socket here; the reader greenlet does that (invariant 2).
        from h2.exceptions import ProtocolError  # imported by gunicorn's HTTP/2 only: here too

        while True:
            stream = self.streams.get(stream_id)
            if self._closed or stream is None or stream.state is StreamState.CLOSED:
                return -1
            try:
                available: int = self.h2_conn.local_flow_control_window(stream_id)
            except ProtocolError:
                return -1
            if available > 0:
                return available
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return 0
            self._frames.wait(timeout)

    def pump(self, stream_id: int) -> None:
        # gunicorn reads the socket for a request body here; wait for the reader instead.
        if not self._frames.wait(self.stream_timeout):
            self.abort_stream(stream_id, HTTP2ErrorCode.CANCEL)

    def _handle_stream_reset(self, event: Any) -> None:
        super()._handle_stream_reset(event)
        self._cancel(event.stream_id)

    def _abort_all_streams(self) -> None:
        super()._abort_all_streams()
        for stream_id in list(self.serving):
            self._cancel(stream_id)
        self._wake()

    def _cancel(self, stream_id: int) -> None:
        """End the response of a stream that was reset or lost its connection (invariant 3)."""
        greenlet = self.serving.get(stream_id)
        if greenlet is not None and not greenlet.reset:
            greenlet.reset = True
            gevent.get_hub().loop.run_callback(self._interrupt, greenlet)

    def _interrupt(self, greenlet: _Stream) -> None:
        # Runs in the hub, so ``greenlet`` is suspended: it stays where it is checked.
        if greenlet.in_app and greenlet is not self._sender and not greenlet.dead:
            greenlet.throw(gevent.GreenletExit)


def _write_through(iterable: Iterable[bytes], start_response: StartResponse) -> None:
    """Let publishers write an HTTP/1.x event stream's frames to its socket themselves.

    Only for an sse_sync event stream that gunicorn writes as it is (no middleware wrapped the
    iterable) with gunicorn's own ``start_response``, whose response object says how the body
    is framed and counts the bytes sent (for the access log); not over TLS.
    """
    response = getattr(start_response, "__self__", None)
    if not isinstance(iterable, EventStream) or not isinstance(response, Response):
        return
    connection = iterable.connection
    # Not over TLS: a direct write goes to the TCP socket under the TLS layer, in cleartext.
    if connection is not None and response.response_length is None and not response.cfg.is_ssl:

        def count(sent: int) -> None:
            response.sent += sent

        connection.write_through(chunked=bool(response.chunked), on_sent=count)


class GeventWorker(_GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker, with broker fan-out written by the publisher and each HTTP/2
    stream served on a greenlet of its own.

    ``gunicorn -k sse_sync.gunicorn.GeventWorker``: over HTTP/1.x, a broker event reaches each
    waiting subscriber with one non-blocking ``send`` by the publishing greenlet (or the
    broker's reader), instead of a greenlet switch and a gunicorn write per subscriber; every
    other response is served as by ``-k gevent``.

    Add ``--http-protocols h2,h1`` and TLS (``--certfile``, ``--keyfile``; browsers speak
    HTTP/2 only over TLS, and it needs ``pip install 'sse_sync[http2]'``): then the event
    streams of a page share one connection, each served as soon as it is opened, and a stream
    the browser closes (``EventSource.close()``, a closed tab) ends at once: its generator's
    ``finally`` runs.
    """

    wsgi: WSGIApplication

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = self._mark_app_waits(self.wsgi)

    def _mark_app_waits(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap the response iterables of HTTP/2 streams in :class:`_Body`; others pass as is."""

        def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            iterable = app(environ, start_response)
            greenlet = gevent.getcurrent()
            if not isinstance(greenlet, _Stream):
                _write_through(iterable, start_response)
                return iterable
            if self.is_already_handled(iterable):
                return iterable
            return _Body(greenlet, iterable)

        return wrapped

    def handle_http2(
        self,
        listener: Any,
        client: Any,
        addr: Any,
        preface: bytes = b"",
        upgrade: tuple[Any, Any, bytes] | None = None,
    ) -> None:
        """Read the connection's frames; serve each new stream on a greenlet of its own.

        The arguments are gunicorn's: ``preface`` holds bytes already read while negotiating
        HTTP/2 in cleartext, ``upgrade`` the HTTP/1.1 request that asked for ``h2c``.
        """
        listener_name = listener.getsockname()
        conn = _Connection(self.cfg, client, addr)

        def serve(req: Any) -> None:
            stream_id = req.stream.stream_id
            conn.serve(stream_id, self._serve_http2_stream, listener_name, req, client, addr, conn)

        try:
            if upgrade is None:
                conn.initiate_connection()
            else:
                serve(conn.initiate_upgrade(*upgrade))  # stream 1
            if preface:
                conn.receive_data(preface)  # a preface alone completes no request
            while True:
                if not self.alive:
                    conn.drain()
                if conn.is_closed:
                    break
                for req in conn.receive_data():
                    serve(req)
        except (HTTP2ConnectionError, HTTP2ProtocolError) as exc:
            self.log.debug("HTTP/2 connection closed: %s", exc)
        except Exception:
            self.log.exception("HTTP/2 connection error")
        finally:
            conn.end()
            gevent.joinall(list(conn.serving.values()))
