"""Run a blocking iterator off the request thread and turn it into a WSGI app iterable of bytes.

Two pieces:

* :class:`Producer` runs the user's (blocking) iterator on a greenlet when gevent has
  monkey-patched ``threading``, else on an OS thread, and hands encoded frames over a bounded
  queue. It is one :class:`FrameSource`; a broker subscription is another.
* :class:`EventStream` is what the WSGI server iterates: it waits on a :class:`FrameSource`,
  writes every frame already waiting in one chunk, sends ``: ping`` when idle and stops when
  the client has gone.

Both wait on a :class:`Wake` from :func:`new_wake`: a ``threading.Event``, or under gevent a
cheaper flag that waits on the hub without raising a ``Timeout`` and can start a producer
greenlet at once.

Invariants, and why they hold:

1. Nothing starts before the stream is opened: by :meth:`EventStream.open`, which
   ``EventStreamResponse`` calls before the response's status is settled (in the view under
   Flask, before ``start_response`` otherwise), or by the first ``next()``. The response does
   not open a HEAD request or a 204/304, for which Werkzeug sends no body and never iterates,
   so such a response starts nothing. ``close()`` is idempotent and safe before, during and
   after iteration. A stream opened but never handed to a server (the view returned another
   response) asks its producer to stop when it is garbage-collected.
2. Only the producer touches the source. ``next(source)`` and ``source.close()`` both run on
   the producer's greenlet/thread (a running generator cannot be closed from another thread).
   ``close()`` asks the producer to stop: under gevent it kills the greenlet, so
   ``GreenletExit`` interrupts a producer blocked in ``time.sleep`` or socket I/O at once and the
   generator's ``finally`` blocks run; with threads it sets a flag and wakes a producer held
   by backpressure, then waits ``close_timeout`` seconds for the thread (and then see 8).
3. Memory is bounded. The queue holds at most ``queue_size`` frames; a slow client holds
   the producer before it queues one more (backpressure). One write takes every frame
   already queued: no more than ``queue_size`` frames, in one chunk.
4. End of stream and errors never cross the queue as exceptions: the producer keeps what the
   source raised and queues the ``_END`` sentinel; the reader raises it, once, after the frames
   queued before it (``read_frames``). :meth:`EventStream.open` lets it propagate when nothing
   came before it, so that the response is that error (a 403 for ``abort(403)``, else a 500)
   instead of a 200; anywhere else the stream logs it with its traceback, once, and ends
   cleanly. A source that raises once ``close()`` was called is logged on the producer.
5. The WSGI server learns about a disconnect only when a write fails, or when we look: where
   we find the connection's socket (gunicorn and Werkzeug put it in the environ; under gevent's
   pywsgi it is the one ``wsgi.input`` reads from), an idle stream hands it to the process's
   socket watch (``_watch``: one thread in epoll over every idle stream's socket), which wakes
   it with the source's ``wake_reader()`` when the peer hung up; woken early, the stream looks
   (a zero-timeout ``poll``) and ends when the peer closed. Where nothing can watch (no epoll)
   the stream looks every ``_DISCONNECT_POLL`` seconds instead. It does not look when a ping
   is due: the ping's write fails instead (at the latest the second one, as the first may
   still reach the kernel's buffer). It stops the watch in ``close()``, before the server
   closes the socket.
6. A stream ends by itself, with a last ``retry: <ms>`` frame (ms drawn from ``END_RETRY_MS``,
   so the clients of one worker do not all reconnect at the same instant), when the gunicorn
   worker serving it is told to stop (SIGTERM, SIGHUP through the master, max_requests), and
   after its optional ``max_lifetime``. Nothing is installed for this: gunicorn's worker sets
   ``alive = False`` in each case, and the socket watch (5) looks every second and wakes every
   stream it watches (a stream it does not watch wakes every ``_DISCONNECT_POLL`` seconds
   under gunicorn to look), so a stopping worker is free within about a second instead of
   holding every client until ``graceful_timeout``.
7. Headers go out promptly. A WSGI server sends the status line and headers with the first
   non-empty chunk (PEP 3333), so a quiet stream would send nothing until its first ping. The
   stream's first write therefore comes at the latest ``open_timeout`` seconds after it was
   opened: its first frames, or a ``: ping``. The same deadline bounds :meth:`EventStream.open`:
   the status is settled by the source's first item, its error, or the deadline, whichever
   comes first.
8. A producer thread still running after ``close()``'s wait (2) is stopped without its
   source's help: ``close()`` raises :class:`StreamClosed` in it with CPython's
   ``PyThreadState_SetAsyncExc``, which lands at the thread's next bytecode, and does not
   wait for it. It can only land in the producer's own code: it is fired at most once, under
   the producer's ``_interrupt_lock``, only while the thread runs the source part of
   :meth:`Producer._run_interruptible`; leaving that part takes the same lock and cancels one
   still pending (a second call, with NULL), so threading's code after it never sees it. A
   thread blocked in C sees it only when the call returns: ``_Stragglers`` watches each one
   for ``_STOP_GRACE`` seconds and warns once per process (its thread runs only while it
   watches). Not done under gevent (a greenlet is killed instead; ``runner="thread"`` steps
   run on gevent's shared pool, whose threads move on to other streams' steps) nor by
   ``close(wait=False)``, a finalizer's, which must not block or take locks: those producers
   stop at their next ``yield``. Sources can look instead, with :func:`stream_closed` and
   :func:`wait_closed` (the producer is in a context variable, set on the producer).
"""

from __future__ import annotations

import contextvars
import functools
import math
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NoReturn, Protocol

from ._event import PING
from ._logging import logger, route_records
from ._server import ClientConnection, connection_of, gunicorn_worker, notice_server, thread_budget
from ._wake import GeventWake, Wake, gevent_active, new_wake
from ._watch import Watched, watch

__all__ = [
    "END_RETRY_MS",
    "EventStream",
    "FrameSource",
    "OPEN_TIMEOUT",
    "Producer",
    "RunnerKind",
    "SOURCE_RAISED",
    "StreamClosed",
    "stream_closed",
    "wait_closed",
]

RunnerKind = Literal["auto", "greenlet", "thread"]

#: How often an idle stream looks at its socket for a closed connection, in seconds.
_DISCONNECT_POLL = 1.0

#: The default of ``open_timeout``: how long a stream waits for its source's first item before
#: its status is settled and its headers go out anyway (with a ``: ping``). Long enough for the
#: checks a source makes before its first item (an ``abort(403)``) to decide the status, short
#: enough that ``EventSource`` opens at once to a person and no client's read timeout expires.
OPEN_TIMEOUT = 0.5

#: The fraction of the ping interval by which a ping may go out early.
_PING_SLACK = 0.02
_NEVER = math.inf
_monotonic = time.monotonic

_END = object()

#: How a source's exception is logged when it ends a stream rather than answering the request.
SOURCE_RAISED = "The event stream's source raised; ending the stream"

#: Set by ``sse_sync.testing.override_ping``: a ping interval that wins over the response's.
PING_OVERRIDE: contextvars.ContextVar[tuple[float | None]] = contextvars.ContextVar(
    "sse_sync_ping_override"
)

#: The range of the ``retry:`` (ms) a stream sends last when its worker stops or its
#: ``max_lifetime`` is over: reconnections spread over this window.
END_RETRY_MS = (1000, 5000)
#: ``max_lifetime`` is shortened by up to this fraction, at random, per stream.
_LIFETIME_JITTER = 0.2


def check_seconds(value: object, name: str) -> None:
    """Reject anything but ``None`` or a finite number of seconds > 0, naming ``name``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        msg = f"Expected {name} to be finite seconds > 0 or None, got {value!r}"
        raise ValueError(msg)


def check_timeout(value: object, name: str) -> None:
    """Reject anything but a finite number of seconds >= 0, naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        msg = f"Expected {name} to be finite seconds >= 0, got {value!r}"
        raise ValueError(msg)


class FrameSource(Protocol):
    """Where an :class:`EventStream` gets its bytes from."""

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


class StreamClosed(BaseException):
    """Raised inside a source that did not stop within ``close_timeout`` of its stream closing.

    Under threads, a closed stream (the client left, or the server ended the stream) asks its
    producer to stop: a generator is closed at its next ``yield``. One that does not yield
    again within ``close_timeout`` seconds (a polling loop, a long call) gets this exception
    raised in its thread at its next Python bytecode, with CPython's
    ``PyThreadState_SetAsyncExc``: its ``finally`` blocks and context managers run, and the
    thread ends. It derives from ``BaseException``, as ``GeneratorExit`` does, so that
    ``except Exception:`` does not swallow it; code that catches it must raise it again.

    Code blocked in C (a socket read without a timeout) sees it only when that call returns;
    look with :func:`wait_closed` or :func:`stream_closed` instead. Under gevent it is never
    raised: the producer greenlet is killed (``GreenletExit``), and with ``runner="thread"``
    the source's steps run on gevent's shared thread pool, where nothing is raised either.
    """


class Producer:
    """Runs ``source`` off the request thread and queues ``encode(item)`` for each item.

    :param source: any iterable; a generator's ``close()`` is called on the producer.
    :param encode: turns one item into frame bytes; an exception ends the stream, as one from
        the source does (see :meth:`read_frames`).
    :param runner: ``"auto"`` picks a greenlet under gevent, else an OS thread. ``"thread"``
        under gevent runs each step of the source on a native thread of gevent's thread pool
        (for sources that block in C code gevent cannot patch). ``"greenlet"`` requires gevent.
    :param queue_size: the most frames waiting for the client (backpressure beyond that).
    :param close_timeout: how long ``close()`` waits for a producer thread to finish; one
        still running then gets :class:`StreamClosed` raised in it.
    :param context: the context variables the source runs in, e.g. a copy of the view's.
    :param teardown: called on the producer, in ``context``, once the source is closed.
    """

    def __init__(
        self,
        source: Iterable[Any],
        encode: Callable[[Any], bytes],
        *,
        runner: RunnerKind = "auto",
        queue_size: int = 64,
        close_timeout: float = 1.0,
        context: contextvars.Context | None = None,
        teardown: Callable[[], None] | None = None,
    ) -> None:
        if runner not in ("auto", "greenlet", "thread"):
            msg = f"Expected runner to be 'auto', 'greenlet' or 'thread', got {runner!r}"
            raise ValueError(msg)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            msg = f"Expected queue_size to be an int >= 1, got {queue_size!r}"
            raise ValueError(msg)
        check_timeout(close_timeout, "close_timeout")
        gevent = gevent_active()
        if runner == "greenlet" and not gevent:
            msg = (
                "runner='greenlet' needs gevent's monkey-patching, which is not active in this "
                "process; serve with 'gunicorn -k gevent' or use runner='auto'"
            )
            raise RuntimeError(msg)
        self._source = source
        self._encode = encode
        self._gevent = gevent
        self._native_thread = gevent and runner == "thread"
        self._queue_size = queue_size
        self._close_timeout = close_timeout
        self._context = context
        self._teardown = teardown
        # The hand-over: a deque (append and popleft are atomic) and two wakes, set only when
        # the other side said it waits. No lock, nothing allocated per frame.
        self._frames: deque[Any] = deque()
        self._has_frames: Wake | None = None
        self._has_room: Wake | None = None
        self._reader_waiting = False
        self._producer_waiting = False
        self._nudged = False  # wake_reader() was called: the next empty read returns None
        self._worker: Any = None  # the greenlet or thread, once started
        self._closed = False
        self._ended = False
        self._failure: Exception | None = None  # what the source raised, until the reader takes it
        self._closed_event: threading.Event | None = None  # made by the first wait_closed()
        # StreamClosed is raised in the producer thread only under this lock, only while it
        # runs the source (_interruptible), and at most once (_interrupted): see _interrupt().
        self._interrupt_lock: threading.Lock | None = None
        self._interruptible = False
        self._interrupted = False

    @property
    def running(self) -> bool:
        """Whether the producer greenlet/thread was started and has not finished."""
        worker = self._worker
        if worker is None:
            return False
        return not worker.dead if self._gevent else bool(worker.is_alive())

    def start(self) -> None:
        """Start the producer now rather than on the first read; idempotent, no-op once closed."""
        if self._create() and self._gevent:
            self._worker.start()

    def _create(self) -> bool:
        """Make the producer (a greenlet is not started yet, a thread is); whether it was made."""
        if self._worker is not None or self._closed:
            return False
        if self._gevent:
            import gevent

            gevent.get_hub()  # the wakes below are the hub's
        self._has_frames = new_wake()
        self._has_room = new_wake()
        if self._gevent:
            self._worker = gevent.Greenlet(self._run)
        else:
            self._interrupt_lock = threading.Lock()
            self._worker = threading.Thread(target=self._run, name="sse_sync-producer", daemon=True)
            self._worker.start()
        return True

    def _steps(self) -> tuple[Callable[[], Any], Callable[[], None]]:
        """Return ``(next_item, close_source)`` as they run on this producer."""
        iterator = iter(self._source)
        close = getattr(self._source, "close", None)
        if close is None:
            close = getattr(iterator, "close", None)

        # A partial runs in C: cheaper than a Python closure, once per event.
        next_item: Callable[[], Any] = functools.partial(next, iterator, _END)

        def close_source() -> None:
            if close is not None:
                close()

        if not self._native_thread:
            return next_item, close_source
        from gevent import get_hub

        pool = get_hub().threadpool
        # Each step runs on a pool thread inside this greenlet's contextvars (Flask context).
        ctx = contextvars.copy_context()
        return (
            lambda: pool.apply(ctx.run, (next_item,)),
            lambda: pool.apply(ctx.run, (close_source,)),
        )

    def _run(self) -> None:
        try:
            if self._gevent:  # a greenlet is killed instead (see close())
                self._run_in_context()
            else:
                self._run_interruptible()
        finally:
            if not self._closed:
                self._frames.append(_END)
                self.wake_reader()

    def _run_in_context(self) -> None:
        if self._context is None:
            self._produce()
        else:
            self._context.run(self._produce)

    def _run_interruptible(self) -> None:
        """:meth:`_run_in_context`: the only code where :meth:`_interrupt` raises StreamClosed."""
        lock = self._interrupt_lock
        assert lock is not None
        try:
            try:
                with lock:
                    self._interruptible = True
                self._run_in_context()
            finally:
                with lock:
                    self._interruptible = False
                    if self._interrupted:
                        # Raised already, or still pending: then it must never be raised
                        # later, in the code this thread runs next (threading's own).
                        _set_async_exc(threading.get_ident(), None)
        except StreamClosed:
            logger.debug("An event stream's producer was stopped with StreamClosed")

    def _interrupt(self) -> None:
        """Raise :class:`StreamClosed` in the producer thread, once, if it runs the source."""
        lock = self._interrupt_lock
        assert lock is not None
        with lock:
            if not self._interruptible or self._interrupted:
                return  # it is leaving the source, or has not reached it yet (then sees _closed)
            self._interrupted = True
            _set_async_exc(self._worker.ident, StreamClosed)
        _stragglers().watch(self._worker)

    def wait_closed(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for :meth:`close`; whether it was called (:func:`wait_closed`)."""
        event = self._closed_event
        if event is None:
            # Published before _closed is read: close() sets _closed, then sets what it finds.
            event = self._closed_event = threading.Event()
        if self._closed:
            return True
        return event.wait(seconds) or self._closed

    def _produce(self) -> None:
        _CURRENT.set(self)  # before _steps(): runner="thread" copies this context
        try:
            next_item, close_source = self._steps()
            # Locals: looked up once, not per event.
            encode, frames, size = self._encode, self._frames, self._queue_size
            append, has_frames = frames.append, self._has_frames
            assert has_frames is not None
            try:
                while not self._closed:
                    item = next_item()
                    if item is _END:
                        break
                    frame = encode(item)
                    if len(frames) >= size and not self._wait_for_room():
                        break
                    append(frame)
                    if self._reader_waiting:
                        self._reader_waiting = False
                        has_frames.set()
            except Exception as exc:
                self._fail(exc)
            finally:
                try:
                    close_source()
                except Exception:
                    logger.exception("Closing the event stream's source raised")
        except Exception as exc:
            self._fail(exc)
        finally:
            if self._teardown is not None:
                try:
                    self._teardown()
                except Exception:
                    logger.exception("Tearing down the event stream's context raised")

    def _fail(self, exc: Exception) -> None:
        """Keep what the source raised for the reader; log it if no reader will take it."""
        if self._closed:
            logger.error(SOURCE_RAISED, exc_info=exc)
        else:
            self._failure = exc  # published before _END is queued (by _run)

    def _wait_for_room(self) -> bool:
        """Block while the queue is full (backpressure); whether to go on (not closed)."""
        frames, size, has_room = self._frames, self._queue_size, self._has_room
        assert has_room is not None
        while len(frames) >= size and not self._closed:
            has_room.clear()
            self._producer_waiting = True  # published before looking again: no lost wake-up
            if len(frames) >= size and not self._closed:
                has_room.wait()
            self._producer_waiting = False
        return not self._closed

    def read_frames(self, timeout: float | None) -> bytes | None:
        """See :meth:`FrameSource.read_frames`; starts the producer on the first call.

        What the source (or ``encode``) raised is raised here, once, after every frame queued
        before it was returned: the reader decides what it means (see :class:`EventStream`).
        """
        if self._ended or self._closed:
            return self._end()
        # Under gevent the first read runs the new producer greenlet at once, from the wait
        # below, rather than behind every callback already queued in the hub (a burst of
        # requests would otherwise all be set up before any of them sends its first event).
        start_now = False
        if self._create() and self._gevent:
            start_now = isinstance(self._has_frames, GeventWake)
            if not start_now:  # read from a thread that has no hub
                self._worker.start()
        frames = self._frames
        # Frames already waiting need no wait at all (under gevent, a timer and a switch).
        while not frames:
            has_frames = self._has_frames
            assert has_frames is not None
            has_frames.clear()
            self._reader_waiting = True  # published before looking again: no lost wake-up
            try:
                wait = timeout if timeout is None or timeout > 0 else 0.0
                if self._nudged:
                    wait = 0.0  # woken before this wait: only start the producer, if due
                if start_now:
                    assert isinstance(has_frames, GeventWake)
                    has_frames.wait(wait, run=self._worker)
                    start_now = False
                elif not frames:
                    has_frames.wait(wait)
            finally:
                self._reader_waiting = False
            if self._closed:
                return b""
            if self._nudged and not frames:  # consumed only here: see wake_reader()
                self._nudged = False
                return None
            if not frames and timeout is not None:
                return None  # (with no timeout, a late wake-up from the last round waits again)
        popleft = frames.popleft
        # What is queued now (at most queue_size frames and the end): one write. The producer
        # only appends, so these pops cannot fail, and the end can only come last.
        taken = [popleft() for _ in range(len(frames))]
        if taken[-1] is _END:
            self._ended = True
            taken.pop()
        if self._producer_waiting:
            self._producer_waiting = False
            self._has_room.set()  # type: ignore[union-attr]
        if not taken:
            return self._end()
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def _end(self) -> bytes:
        """``b""``, the end of the stream; first raise what the source raised, if anything."""
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure
        return b""

    def attach(self, connection: ClientConnection) -> None:
        """Nothing to do: a producer's client is cut off by its stream, not by the producer."""

    def close(self, *, wait: bool = True) -> None:
        """Stop the producer: the source is closed on the producer; idempotent.

        :param wait: wait (up to ``close_timeout``) for the producer to finish, then raise
            :class:`StreamClosed` in a producer thread still running (without waiting for
            it); ``False`` only asks it to stop, as a finalizer must.
        """
        if self._closed:
            return
        self._closed = True
        closed_event = self._closed_event
        if closed_event is not None:
            closed_event.set()
        worker = self._worker
        if worker is None:
            return
        if self._gevent and not self._native_thread:
            worker.kill(block=wait, timeout=self._close_timeout)
        else:
            self._has_room.set()  # type: ignore[union-attr]  # a producer held by backpressure
            if wait and self.running:
                worker.join(self._close_timeout)
                if not self._gevent and self.running:
                    self._interrupt()
        failure = self._failure
        if failure is not None:  # raised before close() and never read: nobody else will log it
            self._failure = None
            logger.error(SOURCE_RAISED, exc_info=failure)
        self.wake_reader()

    def wake_reader(self) -> None:
        """See :meth:`FrameSource.wake_reader`: wake a reader waiting in :meth:`read_frames`."""
        self._nudged = True  # before the set(): the reader clears its wake, then looks here
        has_frames = self._has_frames
        if has_frames is not None:
            has_frames.set()


#: The producer whose source runs in this context (set on the producer).
_CURRENT: contextvars.ContextVar[Producer] = contextvars.ContextVar("sse_sync_producer")


def _current_producer(name: str) -> Producer:
    producer = _CURRENT.get(None)
    if producer is None:
        msg = (
            f"'{name}' can only be used inside an event stream's source, such as the "
            f"generator given to sse_response(), while it runs"
        )
        raise RuntimeError(msg)
    return producer


def stream_closed() -> bool:
    """Whether the event stream that the calling source feeds was closed.

    A stream closes when its client leaves or the server ends it (``max_lifetime``, a
    stopping worker). A generator closed at a ``yield`` never needs to ask; this is for
    one that works a long time between yields, such as a loop of blocking calls with a
    timeout:

    .. code-block:: python

        def jobs():
            while not sse_sync.stream_closed():
                job = work_queue.get(timeout=1.0)  # a C call: StreamClosed waits for it
                ...
                yield job

    Call it inside the source (the generator given to :func:`sse_response`, or anything
    it calls) while it runs, under gevent or threads; elsewhere it raises ``RuntimeError``.
    """
    return _current_producer("stream_closed")._closed


def wait_closed(seconds: float) -> bool:
    """Sleep up to ``seconds``, returning early when the calling source's stream closes.

    Returns whether the stream was closed: a polling source sleeps with it and stops at
    once when the client leaves, without waiting for :class:`StreamClosed`:

    .. code-block:: python

        def prices():
            last = None
            while not sse_sync.wait_closed(0.5):
                price = fetch_price()
                if price != last:
                    last = price
                    yield price

    Call it inside the source while it runs, under gevent (where the producer greenlet is
    killed at once anyway) or threads; elsewhere it raises ``RuntimeError``.

    :param seconds: the longest wait, finite seconds ``>= 0``.
    """
    check_timeout(seconds, "seconds")
    return _current_producer("wait_closed").wait_closed(seconds)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode; ``None`` cancels a pending one.

    CPython's ``PyThreadState_SetAsyncExc``, called through ctypes with the GIL held.
    """
    global _async_exc
    if _async_exc is None:
        import ctypes

        prototype = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)
        set_exc = prototype(("PyThreadState_SetAsyncExc", ctypes.pythonapi))
        _async_exc = (set_exc, ctypes.py_object())  # the second: NULL, which cancels
    function, null = _async_exc
    function(ident, null if exc is None else exc)


_async_exc: tuple[Callable[[int, Any], int], Any] | None = None

#: How long a producer thread may run after StreamClosed was raised in it before a warning.
_STOP_GRACE = 2.0

_straggler_warned = False


class _Stragglers:
    """Producer threads that were sent :class:`StreamClosed` and have not ended yet.

    Warns, once per process, when one still runs ``_STOP_GRACE`` seconds later. Its thread
    runs only while it watches a thread, so that an idle process has none.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._threads: deque[tuple[float, threading.Thread]] = deque()
        self._watching = False

    def watch(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.append((_monotonic() + _STOP_GRACE, thread))
            if self._watching:
                return
            self._watching = True
        threading.Thread(target=self._run, name="sse_sync-stragglers", daemon=True).start()

    def _run(self) -> None:
        global _straggler_warned
        while True:
            with self._lock:
                if not self._threads:
                    self._watching = False
                    return
                # First in, first due: every thread gets the same grace.
                warn_at, thread = self._threads.popleft()
            thread.join(max(0.0, warn_at - _monotonic()))
            if thread.is_alive() and not _straggler_warned:
                _straggler_warned = True
                logger.warning(
                    "An event stream's producer thread still runs %.0f s after StreamClosed was "
                    "raised in it: it is blocked in C code (such as a socket read without a "
                    "timeout), where Python cannot interrupt it, or it caught StreamClosed. It "
                    "stops when that call returns. Give blocking calls a timeout, and check "
                    "sse_sync.stream_closed() or sleep with sse_sync.wait_closed() between "
                    "them (docs/deployment.md, 'Stopping producers').",
                    _STOP_GRACE,
                )


_stragglers_of_process: _Stragglers | None = None


def _stragglers() -> _Stragglers:
    """This process's :class:`_Stragglers` (a new one after a fork)."""
    global _stragglers_of_process
    current = _stragglers_of_process
    if current is None or current.pid != os.getpid():
        current = _stragglers_of_process = _Stragglers()
    return current


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
        self._closed = False
        self._end_at: float | None = None
        # When the first write is due at the latest: None before the stream is opened,
        # _NEVER once something was written.
        self._open_at: float | None = None
        self._opened_with: bytes | None = None  # frames open() read, for the first next()
        self._ending: str | None = None  # "drain", "lifetime" or "end" once the last frame went out
        self._holds_thread = False  # counted in thread_budget (gthread) until closed
        #: Called with this stream when an iteration of it starts, then forgotten: the response
        #: looks there whether it still is its body (see ``EventStreamResponse``).
        self.on_iter: Callable[[EventStream], None] | None = None

    def bind(self, environ: dict[str, Any]) -> None:
        """Learn the connection's socket from the WSGI ``environ``, where the server exposes it."""
        if environ is self._environ:
            return  # bound by the response and again by the server's call: once is enough
        self._environ = environ
        self._connection = connection_of(environ)
        route_records(environ)
        notice_server(environ)
        threads = thread_budget.threads()
        if threads is not None and not self._holds_thread:
            self._holds_thread = True
            thread_budget.take(threads)
        if self._connection is not None:
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
        frames = self._opened_with
        if frames is not None:
            self._opened_with = None
            self._open_at = _NEVER
            return frames
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
                end_at = now + self.max_lifetime * (1 - random.random() * _LIFETIME_JITTER)
            self._end_at = end_at
        worker = gunicorn_worker()
        watched = self._watched
        if watched is None and self._connection is not None:
            watched = self._watched = watch(self._connection, self.source.wake_reader)
        # A watched connection is woken when its client leaves or the worker stops; else,
        # wake up every _DISCONNECT_POLL to look at the socket, and under gunicorn the worker.
        if watched is not None:
            poll = _NEVER if watched.watching else _DISCONNECT_POLL
        else:
            poll = _NEVER if worker is None else _DISCONNECT_POLL
        read_frames = self.source.read_frames
        while True:
            if worker is not None and not worker.alive:  # draining(), inlined: once per wake-up
                return self._last_frame("drain")
            if now >= end_at:
                return self._last_frame("lifetime")
            wake_at = deadline if deadline < end_at else end_at
            if now + poll < wake_at:
                wake_at = now + poll
            try:
                frames = read_frames(None if wake_at == _NEVER else wake_at - now)
            except Exception:
                # The status is settled by now (see open()): the error can only end the stream.
                logger.exception(SOURCE_RAISED)
                frames = b""
            if frames:
                self._open_at = _NEVER
                return frames
            if frames == b"":
                return self._source_ended()
            now = _monotonic()
            if now >= due:
                self._open_at = _NEVER
                return PING  # no need to look at the socket: writing the ping will
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

    def _source_ended(self) -> bytes:
        """The ``end_frame``, if any and the stream was not closed; else end the iteration."""
        if self.end_frame is None or self._closed:
            self.close()
            raise StopIteration
        self._ending = "end"
        return self.end_frame

    def _last_frame(self, reason: str) -> bytes:
        """The ``retry:`` hint a stream ends with; the next ``next()`` ends the stream."""
        self._ending = reason
        self._open_at = _NEVER
        return b"retry: %d\n\n" % random.randint(*END_RETRY_MS)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called or the stream ended."""
        return self._closed

    def close(self) -> None:
        """Stop the stream and its source (PEP 3333: the server calls this); idempotent."""
        if not self._closed:
            self._closed = True
            self._give_back_thread()
            if self._watched is not None:
                self._watched.unwatch()  # before the server closes the socket (see _watch)
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
            self._closed = True
            source.close(wait=False)
