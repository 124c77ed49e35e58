"""Running a blocking iterator off the request thread, handing its frames over to one reader.

:class:`Producer` runs the user's (blocking) iterator on a greenlet when gevent has
monkey-patched ``threading``, else on an OS thread, and hands encoded frames over a bounded
:class:`HandOver` to the stream that reads them. It is one ``FrameSource``; a broker
subscription is another.

Invariants, and why they hold:

1. Nothing starts before the first read (:meth:`Producer.read_frames`) or :meth:`Producer.start`:
   no thread, no greenlet, no step of the source. ``close()`` is idempotent and safe before,
   during and after; a producer closed before it started never starts.
2. Only the producer touches the source. ``next(source)`` and ``source.close()`` both run on
   the producer's greenlet/thread (a running generator cannot be closed from another thread).
   ``close()`` asks the producer to stop: under gevent it kills the greenlet, so
   ``GreenletExit`` interrupts a producer blocked in ``time.sleep`` or socket I/O at once and the
   generator's ``finally`` blocks run; with threads it closes the hand-over, which wakes a
   producer held by backpressure, then waits ``close_timeout`` seconds for the thread (and then
   see 5).
3. Memory is bounded: see :class:`HandOver`. A slow client holds the producer before it queues
   one more frame than ``queue_size`` (backpressure).
4. End of stream and errors never cross the hand-over as exceptions: the producer keeps what the
   source (or ``encode``) raised and puts the end; the reader raises it, once, after the frames
   put before it (:meth:`Producer.read_frames`); what it means is the reader's to decide. A
   source that raises once ``close()`` was called, or an error still unread at ``close()``, is
   logged (:data:`SOURCE_RAISED`) instead.
5. A producer thread still running after ``close()``'s wait (2) is stopped without its
   source's help: ``close()`` raises :class:`StreamClosed` in it with CPython's
   ``PyThreadState_SetAsyncExc``, which lands at the thread's next bytecode, and does not
   wait for it. It can only land in the producer's own code: it is fired at most once, under
   the producer's ``_interrupt_lock``, only while the thread runs the source part of
   :meth:`Producer._run_interruptible`; leaving that part takes the same lock and, if it was
   fired, lets one still pending land right there (:func:`_land_pending`), so threading's code
   after it never sees it. A thread blocked in C sees it only when the call returns:
   ``_Stragglers`` watches each one for ``_STOP_GRACE`` seconds and warns once per process (its
   thread runs only while it watches). Not done under gevent (a greenlet is killed instead;
   ``runner="thread"`` steps run on gevent's shared pool, whose threads move on to other
   streams' steps) nor by ``close(wait=False)``, a finalizer's, which must not block or take
   locks: those producers stop at their next ``yield``. Sources can look instead, with
   :func:`stream_closed` and :func:`wait_closed` (the producer is in a context variable, set on
   the producer).
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from ._logging import logger
from ._observe import observe
from ._seconds import check_timeout
from ._wake import GeventWake, Wake, gevent_active, new_wake

if TYPE_CHECKING:
    from ._server import ClientConnection

__all__ = [
    "HandOver",
    "Producer",
    "RunnerKind",
    "SOURCE_RAISED",
    "StreamClosed",
    "stream_closed",
    "wait_closed",
]

RunnerKind = Literal["auto", "greenlet", "thread"]

#: How a source's exception is logged when it ends a stream rather than answering the request.
SOURCE_RAISED = "The event stream's source raised; ending the stream"

#: Put after the last frame: the source ended (returned or raised).
_END: Any = object()

_monotonic = time.monotonic


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


class HandOver:
    """A bounded hand-over of frames from one producer to one reader, which :meth:`close` stops.

    The producer puts frames (:meth:`put_all`), then the end (:meth:`end`); the reader takes
    every frame waiting in one go (:meth:`take`). Made on the reader's thread, whose hub (under
    gevent) both wakes belong to.

    Invariants, and why they hold:

    1. At most ``size`` frames wait (and the end): the producer puts a frame only while fewer
       wait, else it waits for room. The reader takes all that wait, so at most ``size`` frames
       go out in one write.
    2. No lock: a ``list``, whose ``append``, slicing and ``del`` of a slice are each atomic
       (one C call under the GIL), with one producer appending at its end and one reader taking
       from its front. The reader copies then deletes only as many as it counted, so a frame
       appended meanwhile stays, and the end, appended last, can only come last. (A list, not a
       ``deque``: an empty deque holds a 64-slot block, ~0.7 KiB per idle stream.)
    3. No wake-up is lost, and none is paid per frame: a side sets the other's wake only when
       the other said it waits, and a side says so (``_reader_waiting``, ``_producer_waiting``)
       before it looks at the list once more and waits. Whichever runs second sees the other:
       the putter sees the flag, or the waiter sees the frame (or the room).
    4. :meth:`close` is seen by both sides: it sets ``closed`` before it sets both wakes, and a
       side looks at ``closed`` after it cleared its wake and before it waits.
    5. A :meth:`nudge` is not lost: it sets ``_nudged`` before the reader's wake, and the reader
       looks at ``_nudged`` after it cleared its wake (it then does not wait) and after it woke;
       only an empty :meth:`take` clears it, returning ``None``.
    """

    __slots__ = (
        "_ended",
        "_frames",
        "_has_frames",
        "_has_room",
        "_nudged",
        "_producer_waiting",
        "_reader_waiting",
        "_size",
        "closed",
    )

    def __init__(self, size: int) -> None:
        #: Whether :meth:`close` was called: nothing more is put, the reader gets ``b""``.
        self.closed = False
        self._size = size
        self._frames: list[Any] = []  # bytes, and _END last
        self._has_frames: Wake = new_wake()  # the reader waits on it
        self._has_room: Wake = new_wake()  # the producer waits on it
        self._nudged = False  # nudge() was called: the next empty take() returns None
        self._reader_waiting = False
        self._producer_waiting = False
        self._ended = False  # the reader took the end

    def put_all(self, frames: Iterable[bytes]) -> None:
        """Put each of ``frames``, waiting for room while ``size`` wait; stop once closed.

        What iterating ``frames`` raises propagates, with the frames put before it in place.
        """
        if self.closed:
            return
        # Locals: looked up once, not per frame.
        queued, size, has_frames = self._frames, self._size, self._has_frames
        append = queued.append
        for frame in frames:
            if len(queued) >= size and not self._wait_for_room():
                return
            append(frame)
            if self._reader_waiting:
                self._reader_waiting = False
                has_frames.set()
            if self.closed:
                return

    def _wait_for_room(self) -> bool:
        """Wait while ``size`` frames wait (backpressure); whether to go on (not closed)."""
        queued, size, has_room = self._frames, self._size, self._has_room
        while len(queued) >= size and not self.closed:
            has_room.clear()
            self._producer_waiting = True  # said before looking again: invariant 3
            if len(queued) >= size and not self.closed:
                has_room.wait()
            self._producer_waiting = False
        return not self.closed

    def end(self) -> None:
        """Put the end after the frames put so far (unless closed) and wake the reader."""
        if not self.closed:
            self._frames.append(_END)
            self._has_frames.set()

    def take(self, timeout: float | None, *, run: Any = None) -> bytes | None:
        """Every frame waiting, in one chunk; wait up to ``timeout`` seconds for one first.

        Returns ``b""`` once the end was taken or the hand-over closed (and on every later
        call), ``None`` when nothing came in time (``timeout`` of ``None``: wait for ever).

        :param run: the producer's greenlet, not started yet: this starts it. Where the
            reader's wake is a :class:`~sse_sync._wake.GeventWake`, by switching to it from the
            wait, so that it runs at once rather than behind every greenlet already queued in the
            hub; elsewhere (a thread with no hub of its own) the hub starts it.
        """
        has_frames = self._has_frames
        if run is not None and (self.closed or not isinstance(has_frames, GeventWake)):
            run.start()
            run = None
        if self._ended or self.closed:
            return b""
        frames = self._frames
        # Frames already waiting need no wait at all (under gevent, a timer and a switch).
        while not frames:
            has_frames.clear()
            self._reader_waiting = True  # said before looking again: invariant 3
            try:
                wait = timeout if timeout is None or timeout > 0 else 0.0
                if self._nudged:
                    wait = 0.0  # nudged before this wait: only start the producer, if due
                if run is not None:
                    assert isinstance(has_frames, GeventWake)
                    has_frames.wait(wait, run=run)
                    run = None
                elif not frames and not self.closed:
                    has_frames.wait(wait)
            finally:
                self._reader_waiting = False
            if self.closed:
                return b""
            if self._nudged and not frames:  # invariant 5
                self._nudged = False
                return None
            if not frames and timeout is not None:
                return None  # (with no timeout, a late wake-up from the last round waits again)
        count = len(frames)
        taken = frames[:count]  # invariant 2
        del frames[:count]
        if taken[-1] is _END:
            self._ended = True
            taken.pop()
        if self._producer_waiting:
            self._producer_waiting = False
            self._has_room.set()
        if not taken:
            return b""
        observe.events_read(len(taken))
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def nudge(self) -> None:
        """Make a :meth:`take` waiting now, or the next one that finds nothing, return ``None``."""
        self._nudged = True  # before the wake: invariant 5
        self._has_frames.set()

    def close(self) -> None:
        """Stop both sides: the producer puts nothing more, the reader gets ``b""``; idempotent."""
        self.closed = True  # before the wakes: invariant 4
        self._has_room.set()
        self._has_frames.set()


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

    __slots__ = (  # no __dict__: one per stream, idle ones by the thousand
        "_close_timeout",
        "_closed",
        "_closed_event",
        "_context",
        "_encode",
        "_exited",
        "_failure",
        "_gevent",
        "_hand_over",
        "_interrupt_lock",
        "_interruptible",
        "_interrupted",
        "_native_thread",
        "_queue_size",
        "_source",
        "_teardown",
        "_worker",
    )

    def __init__(
        self,
        source: Iterable[Any],
        encode: Callable[[Any], bytes],
        *,
        runner: RunnerKind = "auto",
        queue_size: int = 256,
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
        self._hand_over: HandOver | None = None  # made with the worker, on the reader's thread
        self._worker: Any = None  # the greenlet or thread, once started
        self._closed = False
        self._failure: Exception | None = None  # what the source raised, until the reader takes it
        self._closed_event: threading.Event | None = None  # made by the first wait_closed()
        # StreamClosed is raised in the producer thread only under this lock, only while it
        # runs the source (_interruptible), and at most once (_interrupted): see _interrupt().
        self._interrupt_lock: threading.Lock | None = None
        self._exited: Wake | None = None  # set when a producer greenlet ends: close() waits on it
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
        if self._create() is not None and self._gevent:
            self._worker.start()

    def _create(self) -> HandOver | None:
        """Make the hand-over and the producer (a thread is started, a greenlet not yet).

        Returns the new hand-over; ``None`` if made already, or closed.
        """
        if self._hand_over is not None or self._closed:
            return None
        if self._gevent:
            import gevent

            hub = gevent.get_hub()  # the hand-over's wakes are the hub's
        # Set before the producer runs: close() finds both, from any thread.
        hand_over = self._hand_over = HandOver(self._queue_size)
        if self._native_thread:
            self._worker = gevent.Greenlet(self._run, hand_over)
        elif self._gevent:
            self._worker = _producer_greenlet(self._run_greenlet, hub, self._context)
        else:
            self._interrupt_lock = threading.Lock()
            self._worker = threading.Thread(
                target=self._run, args=(hand_over,), name="sse_sync-producer", daemon=True
            )
            self._worker.start()
        return hand_over

    def _steps(self) -> tuple[Iterator[Any], Callable[[], None]]:
        """Return ``(items, close_source)`` as they run on this producer."""
        iterator = iter(self._source)
        close = getattr(self._source, "close", None)
        if close is None:
            close = getattr(iterator, "close", None)

        def close_source() -> None:
            if close is not None:
                close()

        if not self._native_thread:
            return iterator, close_source
        from gevent import get_hub

        pool = get_hub().threadpool
        # Each step runs on a pool thread inside this greenlet's contextvars (Flask context).
        ctx = contextvars.copy_context()
        next_item = functools.partial(next, iterator, _END)  # a partial runs in C
        return (
            iter(lambda: pool.apply(ctx.run, (next_item,)), _END),
            lambda: pool.apply(ctx.run, (close_source,)),
        )

    def _run(self, hand_over: HandOver) -> None:
        if self._closed:
            return  # closed before its start: it never runs (a greenlet started by the hub)
        try:
            if self._native_thread:
                self._run_in_context(hand_over)
            elif self._gevent:  # a greenlet is killed instead (see close()), in its context
                self._produce(hand_over)
            else:
                self._run_interruptible(hand_over)
        finally:
            if not self._closed:  # closed: the reader has its end, and no end_frame is due
                hand_over.end()
            exited = self._exited
            if exited is not None:  # the last thing it does: close() waits for it (or sees it dead)
                exited.set()

    def _run_greenlet(self) -> None:
        """:meth:`_run` on a producer greenlet, which runs in the context (``gr_context``)."""
        hand_over = self._hand_over
        assert hand_over is not None  # made before the greenlet
        self._run(hand_over)

    def _run_in_context(self, hand_over: HandOver) -> None:
        if self._context is None:
            self._produce(hand_over)
        else:
            self._context.run(self._produce, hand_over)

    def _run_interruptible(self, hand_over: HandOver) -> None:
        """:meth:`_run_in_context`: the only code where :meth:`_interrupt` raises StreamClosed."""
        lock = self._interrupt_lock
        assert lock is not None
        try:
            try:
                with lock:
                    self._interruptible = True
                self._run_in_context(hand_over)
            finally:
                with lock:
                    self._interruptible = False
                    fired = self._interrupted
                if fired:
                    # Raised already, or still pending: then it must land here, never later
                    # in the code this thread runs next (threading's own).
                    _land_pending()
        except StreamClosed:
            logger.debug("An event stream's producer was stopped with StreamClosed")

    def _interrupt(self) -> None:
        """Raise :class:`StreamClosed` in the producer thread, once, if it runs the source."""
        lock = self._interrupt_lock
        assert lock is not None
        with lock:
            if not self._interruptible or self._interrupted:
                return  # it is leaving the source, or has not reached it yet (then sees closed)
            self._interrupted = True
            _set_async_exc(self._worker.ident, StreamClosed)
        _stragglers_of(os.getpid()).watch(self._worker)

    def wait_closed(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for :meth:`close`; whether it was called (:func:`wait_closed`)."""
        event = self._closed_event
        if event is None:
            # Published before _closed is read: close() sets _closed, then sets what it finds.
            event = self._closed_event = threading.Event()
        if self._closed:
            return True
        return event.wait(seconds) or self._closed

    def _produce(self, hand_over: HandOver) -> None:
        _CURRENT.set(self)  # before _steps(): runner="thread" copies this context
        try:
            items, close_source = self._steps()
            try:
                # map() calls next() then encode() in C: nothing per item in Python here.
                hand_over.put_all(map(self._encode, items))
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
            self._failure = exc  # published before the end is put (by _run)

    def read_frames(self, timeout: float | None) -> bytes | None:
        """See ``FrameSource.read_frames``; starts the producer on the first call.

        What the source (or ``encode``) raised is raised here, once, after every frame queued
        before it was returned: the reader decides what it means (see ``EventStream``).
        """
        if self._closed:
            return self._end()
        hand_over = self._hand_over
        if hand_over is not None:
            frames = hand_over.take(timeout)
        else:
            hand_over = self._create()
            assert hand_over is not None  # not made yet, not closed: made now
            # Under gevent the first read runs the new producer greenlet at once (HandOver.take).
            frames = hand_over.take(timeout, run=self._worker if self._gevent else None)
        return self._end() if frames == b"" else frames

    def _end(self) -> bytes:
        """``b""``, the end of the stream; first raise what the source raised, if anything."""
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure
        return b""

    def attach(self, connection: ClientConnection) -> None:
        """Nothing to do: a producer's client is cut off by its stream, not by the producer."""

    def wake_reader(self) -> None:
        """See ``FrameSource.wake_reader``; any thread. Before the first read nobody waits."""
        hand_over = self._hand_over
        if hand_over is not None:
            hand_over.nudge()

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
        hand_over = self._hand_over
        if hand_over is None:
            return  # never started
        worker = self._worker
        if self._gevent and not self._native_thread:
            if worker:  # started and not dead (a greenlet not started yet sees _closed and returns)
                exited = self._exited = new_wake() if wait else None
                worker.parent.loop.run_callback(_kill, worker)
                if exited is not None:
                    exited.wait(self._close_timeout)
            hand_over.close()
        else:
            hand_over.close()  # frees a producer held by backpressure
            if wait and self.running:
                worker.join(self._close_timeout)
                if not self._gevent and self.running:
                    self._interrupt()
        failure = self._failure
        if failure is not None:  # raised before close() and never read: nobody else will log it
            self._failure = None
            logger.error(SOURCE_RAISED, exc_info=failure)


def _producer_greenlet(
    run: Callable[[], None], hub: Any, context: contextvars.Context | None
) -> Any:
    """A producer greenlet, not started: a plain ``greenlet`` whose parent is the hub.

    Not a ``gevent.Greenlet``, which keeps a stack of its spawner and a spawn tree per greenlet
    (``track_greenlet_tree``), nor ``Context.run`` in it: ``gr_context`` runs it in ``context``
    with one C frame less on each idle stream's saved stack.
    """
    worker = _greenlet_class()(run, hub)
    if context is not None:
        worker.gr_context = context
    return worker


@functools.cache
def _greenlet_class() -> type:
    """The class of producer greenlets, made once gevent is active."""
    from greenlet import greenlet

    class ProducerGreenlet(greenlet):  # type: ignore[misc]
        """A greenlet the hub starts (:meth:`start`) or a reader switches to at once."""

        __slots__ = ()

        def start(self) -> None:
            self.parent.loop.run_callback(self.switch)

    return ProducerGreenlet


def _kill(worker: Any) -> None:
    """On the hub: raise ``GreenletExit`` in a producer greenlet that still runs."""
    if not worker.dead:
        from greenlet import GreenletExit

        worker.throw(GreenletExit)


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


def _set_async_exc(ident: int, exc: type[BaseException]) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode.

    CPython's ``PyThreadState_SetAsyncExc``, called through ctypes with the GIL held. Never
    called with NULL to cancel one: that leaves the interpreter's "async exception pending"
    signal set for good (CPython 3.11), so that every thread of the process then runs
    slower (about 5% in a tight loop) and a thread started with a profile function hangs.
    :func:`_land_pending` lets a pending one land instead.
    """
    _async_exc()(ident, exc)


@functools.cache
def _async_exc() -> Callable[[int, Any], int]:
    """``PyThreadState_SetAsyncExc`` through ctypes; made once."""
    import ctypes

    prototype = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)
    return prototype(("PyThreadState_SetAsyncExc", ctypes.pythonapi))


def _land_pending() -> None:
    """Let an asynchronous exception still pending in this thread be raised here.

    CPython raises it where its eval loop checks for pending work, at the latest on a jump
    back: this loop makes two.
    """
    for _ in range(3):
        pass


#: How long a producer thread may run after StreamClosed was raised in it before a warning.
_STOP_GRACE = 2.0


class _Stragglers:
    """Producer threads that were sent :class:`StreamClosed` and have not ended yet.

    Warns, once per process, when one still runs ``_STOP_GRACE`` seconds later. Its thread
    runs only while it watches a thread, so that an idle process has none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: deque[tuple[float, threading.Thread]] = deque()
        self._watching = False
        self._warned = False

    def watch(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.append((_monotonic() + _STOP_GRACE, thread))
            if self._watching:
                return
            self._watching = True
        threading.Thread(target=self._run, name="sse_sync-stragglers", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._threads:
                    self._watching = False
                    return
                # First in, first due: every thread gets the same grace.
                warn_at, thread = self._threads.popleft()
            thread.join(max(0.0, warn_at - _monotonic()))
            if thread.is_alive() and not self._warned:
                self._warned = True
                logger.warning(
                    "An event stream's producer thread still runs %.0f s after StreamClosed was "
                    "raised in it: it is blocked in C code (such as a socket read without a "
                    "timeout), where Python cannot interrupt it, or it caught StreamClosed. It "
                    "stops when that call returns. Give blocking calls a timeout, and check "
                    "sse_sync.stream_closed() or sleep with sse_sync.wait_closed() between "
                    "them (docs/deployment.md, 'Stopping producers').",
                    _STOP_GRACE,
                )


@functools.cache
def _stragglers_of(pid: int) -> _Stragglers:
    """The :class:`_Stragglers` of process ``pid``: a fork's child gets a new one (no thread)."""
    return _Stragglers()
