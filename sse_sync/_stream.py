"""The event stream a WSGI server iterates: frames from a :class:`FrameSource`, pings, the end.

:class:`EventStream` waits on a :class:`FrameSource` (a ``Producer`` running a generator, or a
broker subscription), writes every frame already waiting in one chunk, sends ``: ping`` when
idle, and stops when the client has gone or the server stops.

Invariants, and why they hold:

1. Nothing starts before the stream is opened: by :meth:`EventStream.open`, which
   ``EventStreamResponse`` calls before the response's status is settled (in the view under
   Flask, before ``start_response`` otherwise), or by the first ``next()``. The response does
   not open a HEAD request or a 204/304, for which Werkzeug sends no body and never iterates,
   so such a response starts nothing. ``close()`` is idempotent and safe before, during and
   after iteration. A stream opened but never handed to a server (the view returned another
   response) asks its producer to stop when it is garbage-collected, without waiting.
2. What a source raises is the reader's to decide (a ``Producer`` raises it from
   ``read_frames``, after the frames queued before it): :meth:`EventStream.open` lets it
   propagate when nothing came before it, so that the response is that error (a 403 for
   ``abort(403)``, else a 500) instead of a 200; anywhere else the stream logs it with its
   traceback (:data:`~sse_sync._producer.SOURCE_RAISED`), once, and ends cleanly.
3. The WSGI server learns about a disconnect only when a write fails, or when we look: where
   the connection's socket is found (:func:`~sse_sync._server.connection_of`), an idle stream
   hands it to the process's socket watch (``_watch``: one thread in epoll over every idle
   stream's socket), which wakes it with the source's ``wake_reader()`` when the peer hung up;
   woken early, the stream looks (a zero-timeout ``poll``) and ends when the peer closed. Where
   nothing can watch (no epoll) the stream looks every :data:`DISCONNECT_POLL` seconds instead.
   It does not look when a ping is due: the ping's write fails instead (at the latest the
   second one, as the first may still reach the kernel's buffer). It stops the watch in
   ``close()``, before the server closes the socket.
4. A stream ends by itself, with a last ``retry: <ms>`` frame (ms drawn from
   :data:`END_RETRY_MS`, so the clients of one worker do not all reconnect at the same instant),
   when the gunicorn worker serving it is told to stop (SIGTERM, SIGHUP through the master,
   max_requests), and after its optional ``max_lifetime``. Nothing is installed for this:
   gunicorn's worker sets ``alive = False`` in each case (:func:`~sse_sync._server.notice_server`
   finds the worker when the stream is bound), and the socket watch (3) looks every second and
   wakes every stream it watches (a stream it does not watch wakes every
   :data:`DISCONNECT_POLL` seconds under gunicorn to look), so a stopping worker is free within
   about a second
   instead of holding every client until ``graceful_timeout``. After that last frame the read
   side of the socket is shut, so that gunicorn closes the connection rather than keeping it
   alive for another request.
5. Headers go out promptly. A WSGI server sends the status line and headers with the first
   non-empty chunk (PEP 3333), so a quiet stream would send nothing until its first ping. The
   stream's first write therefore comes at the latest ``open_timeout`` seconds after it was
   opened: its first frames, or a ``: ping``. The same deadline bounds :meth:`EventStream.open`:
   the status is settled by the source's first item, its error, or the deadline, whichever
   comes first.
6. An idle stream costs one wake-up per ping when the socket watch watches it (else one per
   :data:`DISCONNECT_POLL` where it has something to look at: a socket, a gunicorn worker): a
   ``read_frames`` that times out, a read of ``alive``. Everything else it needs is found once,
   by :meth:`bind`.
7. Where the server allows direct writes (``ClientConnection.write_through``, done by
   ``sse_sync.gunicorn.GeventWorker``), the connection is ``idle`` exactly while the stream
   waits in ``read_frames`` after its first write, and never after it returned its last
   frame: a broker publisher may then write the subscription's frames itself (see
   ``sse_sync._server``, invariant 4). Before returning anything, the stream writes what such a
   write left pending, and ends if it found the client gone. Its pings are written the same
   way, by a timer of the hub (``_Pings``), each ``ping`` seconds after the last write, direct
   or not: an idle stream's greenlet then sleeps until its client leaves, its worker stops or
   its ``max_lifetime`` is over, and a ping costs one ``send`` instead of a switch and a write.
"""

from __future__ import annotations

import contextvars
import math
import random
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol

from ._event import PING
from ._logging import logger, route_records
from ._observe import CloseReason, StreamEnd, ignore_end, observe
from ._producer import SOURCE_RAISED, Producer
from ._seconds import check_seconds, check_timeout
from ._server import (
    ClientConnection,
    GunicornWorker,
    connection_of,
    notice_server,
    thread_budget,
)
from ._watch import Watched, watch

__all__ = [
    "DISCONNECT_POLL",
    "END_RETRY_MS",
    "EventStream",
    "FrameSource",
    "OPEN_TIMEOUT",
    "PING_OVERRIDE",
    "lifetime",
]

#: How often an idle stream looks at its socket for a closed connection, and under gunicorn
#: at its worker, in seconds.
DISCONNECT_POLL = 1.0

#: The default of ``open_timeout``: how long a stream waits for its source's first item before
#: its status is settled and its headers go out anyway (with a ``: ping``). Long enough for the
#: checks a source makes before its first item (an ``abort(403)``) to decide the status, short
#: enough that ``EventSource`` opens at once to a person and no client's read timeout expires.
OPEN_TIMEOUT = 0.5

#: The fraction of the ping interval by which a ping may go out early.
_PING_SLACK = 0.02
_NEVER = math.inf
_monotonic = time.monotonic

#: Set by ``sse_sync.testing.override_ping``: a ping interval that wins over the response's.
PING_OVERRIDE: contextvars.ContextVar[tuple[float | None]] = contextvars.ContextVar(
    "sse_sync_ping_override"
)

#: The range of the ``retry:`` (ms) a stream sends last when its worker stops or its
#: ``max_lifetime`` is over: reconnections spread over this window.
END_RETRY_MS = (1000, 5000)
#: ``max_lifetime`` is shortened by up to this fraction, at random, per stream.
_LIFETIME_JITTER = 0.2


def lifetime(max_lifetime: float) -> float:
    """How long one stream lives: between 80% and 100% of ``max_lifetime``, at random.

    So that streams started together (a deploy, a page of clients) do not all end together.
    """
    return max_lifetime * (1 - random.random() * _LIFETIME_JITTER)


class FrameSource(Protocol):
    """Where an event stream (the body of an :class:`~sse_sync.EventStreamResponse`) gets its
    bytes from: a broker subscription, or anything that implements these methods.

    These three methods are all a stream calls on its source. (A stream dropped unsent also
    asks sse_sync's own generator producer to stop without waiting, which a finalizer must
    not: see invariant 1 of ``sse_sync._stream``.)
    """

    def read_frames(self, timeout: float | None) -> bytes | None:
        """Wait up to ``timeout`` seconds (``None``: for ever) for frames.

        Return the frames (non-empty bytes, possibly several frames joined), ``b""`` once the
        stream has ended (and on every later call), or ``None`` when nothing came in time. A
        source that can fail raises its exception once, in place of the first ``b""``.
        """
        ...

    def attach(self, connection: ClientConnection) -> None:
        """Called once the stream knows its client's connection (HTTP/1.x, where it is found).

        A source may keep it to cut off a client that stopped reading; most ignore it.
        """
        ...

    def wake_reader(self) -> None:
        """Make a ``read_frames()`` waiting now return at once (``None`` if nothing came).

        Safe from any thread, at any time, even after ``close()``. A call while nobody waits
        is not lost: the next ``read_frames()`` that finds nothing returns ``None`` at once.
        The stream's disconnect watch calls it when the client may have left.
        """
        ...

    def close(self) -> None:
        """Stop producing and release everything; idempotent."""
        ...


class _Pings:
    """The pings of a stream whose server allows direct writes, written by a timer of the hub
    while the stream waits, without waking its greenlet (invariant 7).

    A ping is due ``every`` seconds after the last write, direct or not; when the stream is
    not waiting then (the server writes its frames), it is not needed.
    """

    __slots__ = ("_cancel", "_connection", "_every", "_stopped", "_wake")

    def __init__(self, connection: ClientConnection, every: float, wake: Callable[[], None]):
        self._connection = connection
        self._every = every
        self._wake = wake
        self._stopped = False
        self._cancel = connection.later(every, self._due)

    def _due(self) -> None:
        if self._stopped:
            return
        connection, every = self._connection, self._every
        wait = connection.last_write + every - _monotonic()
        if wait <= every * _PING_SLACK:
            wait = every
            if connection.can_write_now() and not connection.write_now(observe.wrote_ping(PING)):
                self._wake()  # the stream writes the rest, or ends: its client is gone
        self._cancel = connection.later(wait, self._due)

    def stop(self) -> None:
        self._stopped = True
        self._cancel()


class EventStream:
    """The WSGI app iterable of an event stream: bytes from a :class:`FrameSource`, plus pings.

    Its first write comes at the latest ``open_timeout`` seconds after it was opened (by
    :meth:`open` or the first ``next()``): the first frames, or a ``: ping``, so that the
    server sends the status line and headers then rather than with the first ping.

    :param source: where frames come from.
    :param ping: seconds without a write after which a ``: ping`` comment is sent; ``None``
        sends none (but the one that opens a quiet stream).
    :param max_lifetime: seconds after which the stream ends with a ``retry:`` hint (each
        stream picks a time between 80% and 100% of it, so streams started together do not
        end together); ``None`` for no limit.
    :param open_timeout: seconds (``>= 0``) the first write waits for the source's first frames.
    :param end_frame: sent last when the source ends (returns or raises), not when the client
        goes or the server ends the stream; ``None`` sends nothing.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        ping: float | None = 15.0,
        max_lifetime: float | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        end_frame: bytes | None = None,
    ) -> None:
        override = PING_OVERRIDE.get(None)
        if override is not None:
            ping = override[0]
        check_seconds(ping, "ping")
        check_seconds(max_lifetime, "max_lifetime")
        check_timeout(open_timeout, "open_timeout")
        self.source = source
        self.ping = ping
        self.max_lifetime = max_lifetime
        self.open_timeout = open_timeout
        self.end_frame = end_frame
        self._environ: dict[str, Any] | None = None
        self._connection: ClientConnection | None = None
        self._watched: Watched | None = None  # the connection, handed to watch() when idle
        self._worker: GunicornWorker | None = None  # the gunicorn worker serving it, if any
        self._closed = False
        self._end_at: float | None = None
        # When the first write is due at the latest: None before the stream is opened,
        # _NEVER once something was written.
        self._open_at: float | None = None
        self._opened_with: bytes | None = None  # frames open() read, for the first next()
        self._ending: str | None = None  # "drain", "max_lifetime", "end": the last frame is out
        self._close_reason: CloseReason = "client_gone"  # how it ended, for observe
        self._report_end: StreamEnd = ignore_end  # what close() calls, once sent: see _observe
        self._sent = False  # whether next() was called (a stream only opened is not counted)
        self._holds_thread = False  # counted in thread_budget (gthread) until closed
        self._pings: _Pings | None = None  # pings written by the hub (direct writes)
        #: Called with this stream when an iteration of it starts, then forgotten: the response
        #: looks there whether it still is its body (see ``EventStreamResponse``).
        self.on_iter: Callable[[EventStream], None] | None = None

    def bind(self, environ: dict[str, Any]) -> None:
        """Learn from the WSGI ``environ`` the connection's socket and the server's worker.

        The socket where the server exposes it (given to the source, :meth:`FrameSource.attach`),
        the gunicorn worker serving the stream (see :func:`~sse_sync._server.notice_server`).
        """
        if environ is self._environ:
            return  # bound by the response and again by the server's call: once is enough
        self._environ = environ
        self._connection = connection_of(environ)
        route_records(environ)
        worker = self._worker = notice_server(environ)
        if worker is not None and not self._holds_thread:
            self._holds_thread = thread_budget.take(worker)
        if self._connection is not None:
            self._connection.source = self.source
            self.source.attach(self._connection)

    def open(self) -> None:
        """Wait here, up to ``open_timeout`` seconds, for the source's first frames.

        Call it where the response's status can still change: it raises what the source
        raised before its first item (and closes the stream), so that the caller can answer
        with that error instead. Frames that came are the first ``next()``'s; when none came
        in time, the first ``next()`` sends a ``: ping`` at once. Only the first call (or a
        first ``next()``) waits; later calls do nothing.
        """
        if self._open_at is not None or self._closed:
            return
        self._open_at = _monotonic() + self.open_timeout
        try:
            frames = self.source.read_frames(self.open_timeout)
        except BaseException:
            self.close()
            raise
        if frames:
            self._opened_with = frames

    def __iter__(self) -> Iterator[bytes]:
        on_iter = self.on_iter
        if on_iter is not None:
            self.on_iter = None
            on_iter(self)
        return self

    def __next__(self) -> bytes:
        if self._closed or self._ending is not None:
            self._stop()
        if not self._sent:  # the first next(): a server is sending it, so it is counted
            self._sent = True
            self._report_end = observe.stream_opened()
        frames = self._opened_with
        if frames is not None:
            self._opened_with = None
            self._open_at = _NEVER
            return observe.wrote(frames)
        now = _monotonic()
        # _NEVER (infinity) stands for "no limit": plain comparisons below, no None checks.
        ping = self.ping
        if ping is None:
            deadline = due = _NEVER
        else:
            deadline = now + ping
            # A wait may end a little early (gevent's timers count from the loop's cached
            # time): a ping that early is due, rather than one more wake-up for the rest.
            due = deadline - ping * _PING_SLACK
        open_at = self._open_at
        if open_at is None:
            open_at = self._open_at = now + self.open_timeout
        if open_at < deadline:  # nothing written yet: the headers wait for the first write
            deadline = due = open_at
        end_at = self._end_at
        if end_at is None:
            end_at = _NEVER
            if self.max_lifetime is not None:
                end_at = now + lifetime(self.max_lifetime)
            self._end_at = end_at
        worker = self._worker
        watched = self._watched
        if watched is None and self._connection is not None:
            watched = self._watched = watch(self._connection, self.source.wake_reader)
        # A watched connection is woken when its client leaves or the worker stops; else,
        # wake up every DISCONNECT_POLL to look at the socket, and under gunicorn the worker.
        if watched is not None:
            poll = _NEVER if watched.watching else DISCONNECT_POLL
        else:
            poll = _NEVER if worker is None else DISCONNECT_POLL
        # Something was written (so the headers are out), and the server wrote it before this
        # call: a publisher may write to the connection while the source is read (invariant 7).
        direct = self._connection if open_at == _NEVER else None
        if direct is not None and ping is not None and direct.writes_through:
            if self._pings is None:
                self._pings = _Pings(direct, ping, self.source.wake_reader)
            deadline = due = _NEVER  # the hub's timer pings, without waking this greenlet
        read_frames = self.source.read_frames
        while True:
            if worker is not None and not worker.alive:  # the worker was told to stop
                return self._last_frame("drain")
            if now >= end_at:
                return self._last_frame("max_lifetime")
            wake_at = deadline if deadline < end_at else end_at
            if now + poll < wake_at:
                wake_at = now + poll
            failed = False
            try:
                if direct is not None:
                    direct.idle = True
                frames = read_frames(None if wake_at == _NEVER else wake_at - now)
            except Exception:
                # The status is settled by now (see open()): the error can only end the stream.
                logger.exception(SOURCE_RAISED)
                frames, failed = None, True
            finally:
                if direct is not None:
                    direct.idle = False
            if direct is not None and not direct.flush():
                self.close()  # a direct write found the client gone
                raise StopIteration
            if failed:
                return self._source_ended("source_error")
            if frames:
                self._open_at = _NEVER
                if direct is not None:
                    direct.last_write = _monotonic()  # written next: the pings count from it
                return observe.wrote(frames)
            if frames == b"":
                return self._source_ended("source_end")
            now = _monotonic()
            if now >= due:
                self._open_at = _NEVER
                # No need to look at the socket: writing the ping will.
                return observe.wrote_ping(PING)
            if watched is not None and watched.peer_closed():
                self.close()
                raise StopIteration

    def _stop(self) -> NoReturn:
        """End the iteration; right after the last frame (drain, lifetime), close first."""
        if not self._closed:
            self.close()
            if self._ending == "drain" and self._connection is not None:
                # The worker is stopping: after the last chunk, make gunicorn see the end of
                # the connection at once instead of keeping it alive for another request.
                self._connection.shut_down(socket.SHUT_RD)
        raise StopIteration

    def _source_ended(self, reason: CloseReason) -> bytes:
        """The ``end_frame``, if any and the stream was not closed; else end the iteration."""
        self._close_reason = reason
        if self.end_frame is None or self._closed:
            self.close()
            raise StopIteration
        self._ending = "end"
        return observe.wrote(self.end_frame)

    def _last_frame(self, reason: CloseReason) -> bytes:
        """The ``retry:`` hint a stream ends with; the next ``next()`` ends the stream."""
        self._ending = self._close_reason = reason
        self._open_at = _NEVER
        return observe.wrote(b"retry: %d\n\n" % random.randint(*END_RETRY_MS))

    @property
    def connection(self) -> ClientConnection | None:
        """The client's connection, once :meth:`bind` found it (HTTP/1.x, where exposed)."""
        return self._connection

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called or the stream ended."""
        return self._closed

    def close(self) -> None:
        """Stop the stream and its source (PEP 3333: the server calls this); idempotent."""
        if not self._closed:
            self._closed = True
            self._report_end(self._close_reason, self.source)
            self._give_back_thread()
            if self._watched is not None:
                self._watched.unwatch()  # before the server closes the socket (see _watch)
            if self._pings is not None:
                self._pings.stop()
            self.source.close()

    def _give_back_thread(self) -> None:
        if self._holds_thread:
            self._holds_thread = False
            thread_budget.give_back()

    def __del__(self) -> None:
        # A stream opened in a view but never sent (the view returned another response, an
        # after_request hook raised): no server will close it, and its producer would wait
        # for a reader forever. Only ask it to stop: a finalizer must not block.
        # (getattr: the constructor may have raised before setting it.)
        if getattr(self, "_holds_thread", False):
            self._give_back_thread()  # a layer between the server and us dropped close()
        source = getattr(self, "source", None)
        if isinstance(source, Producer) and self._open_at is not None and not self._closed:
            self._closed = True  # not reported (metrics): a finalizer takes no locks
            source.close(wait=False)
