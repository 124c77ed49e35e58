"""What a stream learns from the WSGI server: the client's socket, a stopping gunicorn worker.

* :func:`connection_of` finds the client connection's socket in the WSGI ``environ`` (gunicorn
  and Werkzeug put it there; under gevent's pywsgi it is the one ``wsgi.input`` reads from) and
  wraps it in a :class:`ClientConnection`: the one place that polls it for the peer's close and
  shuts it down.
* :func:`notice_server` looks at the server behind ``environ`` when a stream starts: it returns
  the gunicorn worker (whose ``alive`` turns ``False`` when it is told to stop) and warns, once
  per process, about a sync worker; :data:`thread_budget` counts a gthread worker's streams
  against its threads.

Invariants, and why they hold:

1. Nothing here blocks: the socket is polled with a zero timeout (gevent's original ``poll``
   when gevent patched ``select``), then peeked with ``MSG_DONTWAIT``.
2. Shutting a socket down never closes it: the server still owns it and closes it. The OS-level
   socket is shut, not gevent's cooperative wrapper, whose ``shutdown()`` would kill a greenlet
   writing to it with ``EBADF`` (the writer gets ``EPIPE`` instead, a normal disconnect).
3. Nothing learnt about the server is kept between streams, so nothing can be stale after
   gunicorn's fork (a ``--preload`` app): each stream looks its worker up once, when it is bound
   (a signal handler, an attribute and the class's MRO: cheap next to a request). Only what
   cannot change is cached: ``select.poll`` or gevent's original of it. The sync-worker and
   thread warnings are logged once per process.
4. A direct write (:meth:`ClientConnection.write_now`) never interleaves with the server's
   writes or reorders frames. It is allowed only from the gevent hub's thread, so greenlets
   switch only where they wait and the check and the ``send`` are one step; only while the
   stream waits for frames (``idle``, set by the stream around that wait alone, after the
   server wrote everything the stream returned before); only with nothing pending. What the
   socket does not take is kept, and the stream writes it (:meth:`ClientConnection.flush`)
   before anything else, once it wakes. A failed ``send`` marks the connection ``broken``:
   the stream ends as for a client gone. Only a server that writes the stream's bytes
   unchanged enables it (:meth:`ClientConnection.write_through`), with its framing.
"""

from __future__ import annotations

import functools
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._logging import logger
from ._wake import _gevent, gevent_active

__all__ = [
    "ClientConnection",
    "GunicornWorker",
    "connection_of",
    "gunicorn_worker",
    "notice_server",
    "thread_budget",
]


class ClientConnection:
    """The socket of one client's connection, where it carries this stream alone (HTTP/1.x).

    A stream polls it while idle (:meth:`peer_closed`); a broker subscription shuts it down to
    cut off a client that stopped reading (:meth:`shut_down`).

    Where the server allows it (``sse_sync.gunicorn.GeventWorker`` enables it with
    :meth:`write_through`), a publisher writes a waiting stream's frames itself
    (:meth:`write_now`), so that fan-out costs a non-blocking ``send`` per subscriber rather than
    a greenlet switch and a server write: see invariant 4 of ``sse_sync._server``.
    """

    __slots__ = (
        "_batch",
        "_chunked",
        "_hub_thread",
        "_native_ident",
        "_on_sent",
        "_pending",
        "_poll_class",
        "_sock",
        "broken",
        "idle",
        "last_write",
        "source",
    )

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll_class = _poll_class()
        self._hub_thread: int | None = None  # set by write_through(): direct writes allowed
        self._batch: _Batch | None = None
        self._native_ident: Callable[[], int] = threading.get_ident
        self._chunked = False
        self._on_sent: Callable[[int], None] | None = None
        self._pending = b""  # the rest of a direct write the socket did not take at once
        #: Set by the stream while it waits for frames, its earlier writes all done: only then
        #: may :meth:`write_now` write.
        self.idle = False
        #: A direct write failed: the client is gone.
        self.broken = False
        #: ``time.monotonic()`` of the last write, direct or of frames the stream returned
        #: (its next ping is due ``ping`` seconds after it).
        self.last_write = 0.0
        #: The frame source its stream reads (set by the stream): the only one that may write
        #: to it directly, as what it writes is what the stream would have sent.
        self.source: object = None

    def peer_closed(self) -> bool:
        """Whether the peer closed the connection (readable, nothing to read), without blocking."""
        try:
            raw = _raw_socket(self._sock)
            # Poll before recv: a BlockingIOError from recv(MSG_DONTWAIT) costs twice a poll.
            if not _readable(raw, self._poll_class):
                return False
            return raw.recv(1, _PEEK) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def fileno(self) -> int:
        """The OS-level socket's file descriptor (``-1`` once it is closed)."""
        return _raw_socket(self._sock).fileno()

    def shut_down(self, how: int = socket.SHUT_RDWR) -> None:
        """Shut the OS-level socket down (invariant 2); a writer blocked on it gets ``EPIPE``."""
        try:
            _raw_socket(self._sock).shutdown(how)
        except OSError:
            pass

    # -- direct writes (invariant 4) -----------------------------------------------------

    def write_through(self, *, chunked: bool, on_sent: Callable[[int], None] | None) -> None:
        """Let other greenlets of this thread write the stream's frames while it waits.

        Called by a gevent server that hands the stream's bytes to this socket unchanged
        (no middleware between, no TLS: a direct write goes to the OS-level socket, under any
        TLS layer): ``chunked`` if it frames them as HTTP/1.1 chunks,
        ``on_sent`` told the length of each body written (the server's byte count).
        """
        gevent = _gevent()
        self._native_ident = gevent.native_ident
        self._hub_thread = self._native_ident()
        self._batch = _batch_of(gevent.get_hub())
        self._chunked = chunked
        self._on_sent = on_sent

    @property
    def writes_through(self) -> bool:
        """Whether :meth:`write_through` was called: direct writes are allowed."""
        return self._batch is not None

    @property
    def pending(self) -> bool:
        """Whether the rest of a direct write waits for the stream's greenlet (:meth:`flush`)."""
        return bool(self._pending)

    def later(self, seconds: float, call: Callable[[], None]) -> Callable[[], None]:
        """Call ``call`` in the gevent hub after ``seconds`` (only once :meth:`write_through`
        was called); returns what cancels it."""
        assert self._batch is not None
        timer = self._batch.loop.timer(seconds)
        timer.start(call)
        return timer.close  # type: ignore[no-any-return]

    def can_write_now(self) -> bool:
        """Whether :meth:`write_now` may be called now, by the caller's greenlet."""
        return (
            self.idle
            and not self._pending
            and not self.broken
            and self._hub_thread is not None
            and self._native_ident() == self._hub_thread
        )

    def write_soon(self, write: Callable[[], None]) -> None:
        """Call ``write`` (which writes to this connection) at the gevent hub's next turn,
        with every other write queued meanwhile: the events published until then go out
        together, one ``send`` per connection. Only when :meth:`can_write_now`; ``write``
        must look again (it may not be so any more), and wake the stream if not.
        """
        assert self._batch is not None
        self._batch.add(write)

    def write_now(self, body: bytes) -> bool:
        """Write ``body`` (frames) without waiting; whether it all went out.

        Only when :meth:`can_write_now`. What the socket does not take at once is kept for
        the stream's greenlet (:meth:`flush`): ``False`` means wake it.
        """
        data = b"%X\r\n%s\r\n" % (len(body), body) if self._chunked else body
        self.last_write = _monotonic()
        if self._on_sent is not None:
            self._on_sent(len(body))
        try:
            sent = _raw_socket(self._sock).send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.broken = True
            return False
        if sent == len(data):
            return True
        self._pending = data[sent:]
        return False

    def flush(self) -> bool:
        """Write the rest of a direct write, waiting as long as it takes (the stream's own
        greenlet); ``False`` if the client is gone."""
        if self.broken:
            return False
        pending, self._pending = self._pending, b""
        if pending:
            try:
                self._sock.sendall(pending)
            except OSError:
                self.broken = True
                return False
        return True


class _Batch:
    """Direct writes queued until the gevent hub's next turn (``ClientConnection.write_soon``).

    Publishes whose greenlets are ready in the same turn (a burst) then cost one ``send`` per
    subscriber, not one per event and subscriber: the raw-socket servers' batching per loop.
    """

    __slots__ = ("_writes", "loop")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self._writes: dict[Callable[[], None], None] = {}  # each once, in order

    def add(self, write: Callable[[], None]) -> None:
        if not self._writes:
            self.loop.run_callback(self._run)
        self._writes[write] = None

    def _run(self) -> None:
        writes, self._writes = self._writes, {}
        for write in writes:
            try:
                write()
            except Exception:
                logger.exception("A direct write to an event stream's client failed")


@functools.cache
def _batch_of(hub: Any) -> _Batch:
    """The batch of direct writes of ``hub`` (of its thread's loop)."""
    return _Batch(hub.loop)


def connection_of(environ: dict[str, Any]) -> ClientConnection | None:
    """The client's :class:`ClientConnection` where the server exposes its socket, else None."""
    sock = _socket_of(environ)
    return None if sock is None else ClientConnection(sock)


class GunicornWorker(Protocol):
    """What a stream reads of the gunicorn worker serving it."""

    #: Turns ``False`` when the worker is told to stop: SIGTERM, SIGHUP through the master,
    #: ``max_requests``.
    alive: bool


def notice_server(environ: dict[str, Any]) -> GunicornWorker | None:
    """Look at the server behind ``environ``: the gunicorn worker serving it, else ``None``.

    Also warns, once per process, when that is a gunicorn sync worker.
    """
    software = str(environ.get("SERVER_SOFTWARE", ""))
    if "gunicorn" not in software:
        return None
    if (
        software.startswith("gunicorn/")
        and not environ.get("wsgi.multithread")
        and not gevent_active()
    ):
        _warn_sync_worker()
    return gunicorn_worker()


def gunicorn_worker() -> GunicornWorker | None:
    """The gunicorn worker of this process, found through its SIGTERM handler.

    gunicorn's ``Worker.init_signals()`` installs the worker's bound methods as its signal
    handlers, so the SIGTERM handler leads to the worker. Nothing is installed or replaced.
    """
    worker: object = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if worker is None or not hasattr(worker, "alive") or not _is_gunicorn(type(worker)):
        return None
    return worker


def _is_gunicorn(cls: type) -> bool:
    """Whether ``cls`` is (derived from) a class of gunicorn's."""
    return any(base.__module__.startswith("gunicorn.") for base in cls.__mro__)


def _socket_of(environ: dict[str, Any]) -> socket.socket | None:
    """The client connection's socket, where it is this stream's alone.

    Not under HTTP/2: the connection carries every stream of the page, so polling it says
    nothing about one of them, and shutting it down (a drain, a stuck subscriber) would end them
    all. There the server ends a stream the client reset (``sse_sync.gunicorn.GeventWorker``).
    """
    # SERVER_PROTOCOL, not HTTP_VERSION: any client can send a "Version: 2" header.
    if str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/2"):
        return None
    sock = (
        environ.get("gunicorn.socket")
        or environ.get("werkzeug.socket")
        or _socket_under_input(environ.get("wsgi.input"))
    )
    return sock if _CAN_POLL and hasattr(sock, "fileno") else None


def _socket_under_input(wsgi_input: object) -> socket.socket | None:
    """The socket that ``wsgi.input`` reads from, for servers that put no socket in the environ.

    gevent's pywsgi is one: its ``wsgi.input`` (``gevent.pywsgi.Input``) reads from ``rfile``,
    the connection's ``sock.makefile("rb")``, a buffered reader over a ``socket.SocketIO``.
    ``SocketIO`` keeps its socket as ``_sock`` (CPython's socket.py, unchanged since 3.0);
    nothing public leads there. Only a ``SocketIO`` is followed, so another server's
    ``wsgi.input`` (or a future pywsgi) gives ``None``: the stream then finds a disconnect
    by its pings, as before.
    """
    raw = getattr(getattr(wsgi_input, "rfile", None), "raw", None)
    return getattr(raw, "_sock", None) if isinstance(raw, socket.SocketIO) else None


_monotonic = time.monotonic
_PEEK = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
#: Idle streams look at their socket only where a non-blocking look exists (not on Windows).
_CAN_POLL = hasattr(select, "poll") and hasattr(socket, "MSG_DONTWAIT")


def _raw_socket(sock: socket.socket) -> socket.socket:
    """The OS-level socket under gevent's cooperative wrapper (or ``sock`` itself)."""
    return getattr(sock, "_sock", sock)


@functools.cache
def _poll_class() -> Any:
    """``select.poll``, or gevent's original of it where gevent patched ``select``.

    Asked when a connection is found (gevent has patched by then, if it ever will), and
    looked up once: looking it up cost more than the poll itself.
    """
    if gevent_active():
        from gevent import monkey

        return monkey.get_original("select", "poll")  # a zero-timeout poll never blocks
    return select.poll


def _readable(raw: socket.socket, poll_class: Any) -> bool:
    """Whether ``raw`` has something to read (data or the peer's FIN), with a zero-timeout poll."""
    poller = poll_class()
    poller.register(raw.fileno(), select.POLLIN)
    return bool(poller.poll(0))


@functools.cache  # once per process: the cache is the "warned already"
def _warn_sync_worker() -> None:
    logger.warning(
        "An event stream is being served by a gunicorn sync worker: each open stream pins the "
        "whole worker, and the worker timeout (--timeout) kills it mid-stream. Serve with "
        "'gunicorn -k gevent' (pip install 'sse_sync[gevent]') or 'gunicorn -k gthread "
        "--threads 50'."
    )


#: A gthread worker warns once its open streams hold this fraction of its threads.
_THREADS_WARN_AT = 0.8


class _ThreadBudget:
    """The open streams of a gunicorn gthread worker, against its ``--threads``.

    Each stream holds one of the worker's threads for its whole life (and a producer thread
    of its own). Once they are all taken, the worker accepts new connections but serves none:
    new clients get no bytes and every other request (a health check) hangs, with nothing
    logged. This warns once, when the streams hold ``_THREADS_WARN_AT`` of the threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._warned = False

    def take(self, worker: GunicornWorker) -> bool:
        """Count one more open stream if ``worker`` is a gthread worker; whether it was counted.

        Warns once when the streams near the worker's threads. A stream counted gives it back
        with :meth:`give_back`.
        """
        threads = _gthread_threads(worker)
        if threads is None:
            return False
        with self._lock:
            self._open += 1
            count = self._open
            warn = not self._warned and count >= max(1, int(threads * _THREADS_WARN_AT))
            self._warned = self._warned or warn
        if warn:
            logger.warning(
                "%d event streams are open on this gunicorn gthread worker, which has %d "
                "threads (--threads): each stream holds one of them for as long as it is "
                "open (a generator's stream also a producer thread of its own), and once all "
                "are taken new clients get no bytes and other requests hang. Raise --threads "
                "above the streams one worker must hold, or serve with 'gunicorn -k gevent' "
                "(pip install 'sse_sync[gevent]').",
                count,
                threads,
            )
        return True

    def give_back(self) -> None:
        """Count one stream less."""
        with self._lock:
            self._open -= 1


def _gthread_threads(worker: GunicornWorker) -> int | None:
    """A gthread worker's ``--threads``; ``None`` for any other worker."""
    if not _is_gthread(type(worker)):
        return None
    value = getattr(getattr(worker, "cfg", None), "threads", None)
    return value if isinstance(value, int) and value > 0 else None


def _is_gthread(cls: type) -> bool:
    return any(base.__module__ == "gunicorn.workers.gthread" for base in cls.__mro__)


#: The open streams of this process's gthread worker, against its threads.
thread_budget = _ThreadBudget()
