"""The producer and its bounded hand-over, in process with OS threads (gevent in subprocesses)."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sse_sync
from sse_sync._event import encode_item
from sse_sync._producer import HandOver, Producer
from sse_sync._stream import EventStream

from .blocking import watch_blocking
from .conftest import wait_until
from .gevent_process import run_under_gevent


def producer(source: Any, **kwargs: Any) -> Producer:
    return Producer(source, encode_item, **kwargs)


def frames(*items: Any) -> bytes:
    return b"".join(encode_item(item) for item in items)


def _thread_names() -> list[str]:
    names = {"sse_sync-producer", "sse_sync-stragglers"}
    return [thread.name for thread in threading.enumerate() if thread.name in names]


def _in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` on a new thread; its result lands in the returned list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


# The hand-over on its own.


def test_hand_over_gives_everything_waiting_in_one_chunk_then_the_end() -> None:
    """take() returns all frames waiting, joined and in order; after the end, b'' for good."""
    hand_over = HandOver(8)
    hand_over.put_all([b"a", b"b", b"c"])
    assert hand_over.take(0) == b"abc"
    assert hand_over.take(0) is None
    hand_over.put_all([b"d"])
    hand_over.end()
    assert hand_over.take(5) == b"d"
    assert hand_over.take(5) == b""
    assert hand_over.take(None) == b""


def test_hand_over_holds_the_producer_at_size_until_the_reader_takes() -> None:
    """With size frames waiting the producer waits; a take gives at most size and makes room."""
    hand_over = HandOver(2)
    with watch_blocking() as blocking:
        putter, _ = _in_thread(lambda: hand_over.put_all([b"1", b"2", b"3", b"4", b"5"]))
        wait_until(lambda: blocking.blocked(putter.ident))
    assert hand_over.take(0) == b"12"
    wait_until(lambda: blocking.blocked(putter.ident) and blocking.waits(putter.ident) == 2)
    assert hand_over.take(0) == b"34"
    putter.join(5)
    assert not putter.is_alive()
    assert hand_over.take(0) == b"5"


def test_hand_over_close_frees_a_producer_held_by_backpressure() -> None:
    """close() ends a put_all() that waits for room; nothing more is put."""
    hand_over = HandOver(1)
    with watch_blocking() as blocking:
        putter, _ = _in_thread(lambda: hand_over.put_all(b"%d" % n for n in itertools.count()))
        wait_until(lambda: blocking.blocked(putter.ident))
    hand_over.close()
    putter.join(5)
    assert not putter.is_alive()
    assert hand_over.take(0) == b""


def test_hand_over_close_wakes_a_reader_waiting_for_ever() -> None:
    """close() ends a take(None) that waits on another thread, with b''."""
    hand_over = HandOver(4)
    with watch_blocking() as blocking:
        reader, result = _in_thread(lambda: hand_over.take(None))
        wait_until(lambda: blocking.blocked(reader.ident))
    hand_over.close()
    reader.join(5)
    assert result == [b""]
    hand_over.end()  # too late: closed
    hand_over.put_all([b"x"])
    assert hand_over.take(0) == b""


@pytest.mark.parametrize("size", [1, 2, 64])
def test_hand_over_carries_every_frame_once_in_order_between_threads(size: int) -> None:
    """5,000 frames from a producer thread arrive once each, in order, at most size per take."""
    hand_over = HandOver(size)
    expected = [b"%d\n" % n for n in range(5000)]

    def produce() -> None:
        hand_over.put_all(expected)
        hand_over.end()

    putter, _ = _in_thread(produce)
    chunks = []
    while chunk := hand_over.take(None):
        chunks.append(chunk)
    putter.join(5)
    assert b"".join(chunks) == b"".join(expected)
    assert max(chunk.count(b"\n") for chunk in chunks) <= size


# The producer.


def test_nothing_starts_before_first_read() -> None:
    """A producer starts no thread until the stream is first read, and close() before is a no-op."""
    started = threading.Event()

    def gen() -> Iterator[int]:
        started.set()
        yield 1

    p = producer(gen())
    assert not p.running
    p.close()
    p.close()
    assert p.read_frames(0.1) == b""
    assert not started.is_set()
    assert not p.running


def test_close_frees_a_producer_blocked_on_a_full_queue() -> None:
    """A producer waiting for room (backpressure) stops when closed; its source's finally runs."""
    count = 0
    idents: list[int] = []
    finished = threading.Event()

    def gen() -> Iterator[int]:
        nonlocal count
        idents.append(threading.get_ident())
        try:
            while True:
                count += 1
                yield count
        finally:
            finished.set()

    with watch_blocking() as blocking:
        p = producer(gen(), queue_size=4, close_timeout=5)
        p.start()
        wait_until(lambda: idents and blocking.blocked(idents[0]))
    assert count == 4 + 1
    p.close()
    assert finished.is_set()
    assert not p.running


def test_backpressure_bounds_what_the_producer_runs_ahead() -> None:
    """With nobody reading, the producer waits with the queue full and one item in hand."""
    count = 0
    idents: list[int] = []

    def gen() -> Iterator[int]:
        nonlocal count
        idents.append(threading.get_ident())
        while True:
            count += 1
            yield count

    with watch_blocking() as blocking:
        p = producer(gen(), queue_size=3)
        p.start()
        wait_until(lambda: idents and blocking.blocked(idents[0]))
    assert count == 3 + 1
    assert p.read_frames(1) == frames(1, 2, 3)
    p.close()
    assert not p.running


def test_an_error_queued_after_frames_comes_after_them() -> None:
    """read_frames() returns the frames queued before an error, then raises it, then ends."""

    def gen() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("after two items")

    p = producer(gen())
    p.start()
    wait_until(lambda: not p.running)
    assert p.read_frames(1) == frames(1, 2)
    with pytest.raises(ValueError, match="after two items"):
        p.read_frames(1)
    assert p.read_frames(1) == b""


def test_an_error_nobody_read_is_logged_at_close(caplog: pytest.LogCaptureFixture) -> None:
    """A source error still queued when the stream is closed is logged there, once."""

    def gen() -> Iterator[int]:
        raise ValueError("never read")
        yield 1

    p = producer(gen())
    p.start()
    wait_until(lambda: not p.running)
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        p.close()
        p.close()
    [record] = caplog.records
    assert "never read" in str(record.exc_info[1])  # type: ignore[index]
    assert p.read_frames(1) == b""


def test_source_ignoring_close_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A generator that yields in its finally cannot block close(): the error is logged."""

    def gen() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            yield 3  # wrong, but it must not hang the server

    p = producer(gen(), queue_size=1, close_timeout=5)
    stream = EventStream(p, ping=None)
    assert next(stream)
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        stream.close()
    wait_until(lambda: not p.running)
    assert "generator ignored GeneratorExit" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"queue_size": 0}, ValueError),
        ({"queue_size": True}, ValueError),
        ({"runner": "process"}, ValueError),
        ({"close_timeout": -1}, ValueError),
        ({"runner": "greenlet"}, RuntimeError),
    ],
)
def test_producer_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    """Bad producer arguments fail at construction with a clear error."""
    with pytest.raises(error):
        producer([], **kwargs)


# Stopping a producer thread that does not stop by itself.


def test_a_source_that_never_yields_is_stopped_with_stream_closed() -> None:
    """A poll loop that swallows Exception still stops: StreamClosed runs its finally, ends it."""
    seen: list[str] = []

    def gen() -> Iterator[str]:
        try:
            yield "polling"
            while True:
                try:
                    time.sleep(0.05)
                except Exception:
                    seen.append("swallowed")
        except sse_sync.StreamClosed:
            seen.append("StreamClosed")
            raise
        finally:
            seen.append("finally")

    p = producer(gen(), close_timeout=0.2)
    stream = EventStream(p, ping=None)
    assert next(stream) == b'data: "polling"\n\n'
    stream.close()  # waits close_timeout, then raises StreamClosed without waiting for it
    wait_until(lambda: seen == ["StreamClosed", "finally"] and not p.running, timeout=5)
    wait_until(lambda: not _thread_names(), timeout=5)


def test_a_thread_started_after_stream_closed_runs_under_a_profiler() -> None:
    """Stopping a producer with StreamClosed leaves no pending signal: later threads run."""

    def gen() -> Iterator[str]:
        yield "polling"
        while True:
            time.sleep(0.01)

    p = producer(gen(), close_timeout=0.05)
    stream = EventStream(p, ping=None)
    assert next(stream) == b'data: "polling"\n\n'
    stream.close()
    wait_until(lambda: not p.running, timeout=5)
    ran = threading.Event()
    threading.setprofile(lambda *args: None)  # as profilers and debuggers do
    try:
        threading.Thread(target=ran.set, daemon=True).start()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    assert ran.wait(10)


def test_a_producer_blocked_in_c_is_reported_once_and_stops_when_unblocked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Producers blocked in a socket read log one warning naming the fix, and stop after it."""
    finished: list[str] = []
    pairs = [socket.socketpair() for _ in range(2)]

    def gen(sock: socket.socket) -> Iterator[str]:
        try:
            yield "reading"
            sock.recv(1)  # no timeout: Python cannot interrupt this
            while True:
                time.sleep(0.01)
        finally:
            finished.append("finally")

    producers = [producer(gen(ours), close_timeout=0.05) for ours, _ in pairs]
    streams = [EventStream(p, ping=None) for p in producers]
    try:
        with caplog.at_level(logging.WARNING, logger="sse_sync"):
            for stream in streams:
                assert next(stream) == b'data: "reading"\n\n'
                stream.close()
            wait_until(lambda: "Python cannot interrupt" in caplog.text, timeout=10)
            assert all(p.running for p in producers)
            for _, theirs in pairs:
                theirs.send(b"x")
            wait_until(lambda: finished == ["finally", "finally"], timeout=5)
            wait_until(lambda: not _thread_names(), timeout=5)
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "sse_sync.wait_closed()" in warning.getMessage()
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def test_a_producer_ending_as_it_is_stopped_never_raises_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """StreamClosed fired while producers end on their own never escapes their source."""
    escaped: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    finished: list[int] = []
    ended: list[str] = []

    def gen(n: int) -> Iterator[int]:
        try:
            yield n
            deadline = time.perf_counter() + (n % 30) * 0.0005
            while time.perf_counter() < deadline:  # ends about when close_timeout=0 runs out
                pass
            ended.append("returned")
        except sse_sync.StreamClosed:
            ended.append("StreamClosed")
            raise
        finally:
            finished.append(n)

    producers = []
    for n in range(300):
        p = producer(gen(n), close_timeout=0)
        stream = EventStream(p, ping=None)
        assert next(stream) == encode_item(n)
        stream.close()
        producers.append(p)
    wait_until(lambda: not any(p.running for p in producers), timeout=20)
    wait_until(lambda: not _thread_names(), timeout=5)
    assert sorted(finished) == list(range(300))
    assert escaped == []
    assert set(ended) == {"returned", "StreamClosed"}  # both sides of the race were run


# A source that looks: stream_closed() and wait_closed().


@pytest.mark.parametrize("function", [sse_sync.stream_closed, lambda: sse_sync.wait_closed(1)])
def test_looking_outside_a_source_is_an_error(function: Any) -> None:
    """stream_closed() and wait_closed() outside a running source raise RuntimeError."""
    with pytest.raises(RuntimeError, match="can only be used inside an event stream's source"):
        function()


@pytest.mark.parametrize("seconds", [-1, True, float("inf"), float("nan"), "1", None])
def test_wait_closed_rejects_bad_seconds(seconds: Any) -> None:
    """wait_closed() takes finite seconds >= 0 and says what it got."""
    with pytest.raises(ValueError, match="Expected seconds to be finite seconds >= 0, got"):
        sse_sync.wait_closed(seconds)


def test_wait_closed_returns_as_soon_as_the_stream_closes() -> None:
    """A source sleeping in wait_closed() sees the close at once; stream_closed() flips with it."""
    seen: list[Any] = []
    idents: list[int] = []

    def gen() -> Iterator[bool]:
        idents.append(threading.get_ident())
        try:
            yield sse_sync.stream_closed()
            seen.append(sse_sync.wait_closed(0.01))
            seen.append(sse_sync.wait_closed(30))
            seen.append(sse_sync.stream_closed())
            seen.append(sse_sync.wait_closed(30))
        finally:
            seen.append("finally")

    with watch_blocking() as blocking:
        p = producer(gen(), close_timeout=10)
        stream = EventStream(p, ping=None, open_timeout=10)  # a profiled thread is slower
        assert next(stream) == b"data: false\n\n"
        # In the second wait_closed(): the first one ended before seen got its False.
        wait_until(lambda: seen == [False] and blocking.blocked(idents[0]))
    stream.close()  # waits up to close_timeout (10 s) for the producer: it ends at once
    assert seen == [False, True, True, True, "finally"]
    assert not p.running


GEVENT_EAGER_START = """
from sse_sync._event import encode_item
from sse_sync._producer import Producer

order = []

def gen():
    order.append("producer")
    yield 1

def reader():
    producer = Producer(gen(), encode_item)
    for _ in range(20):  # greenlets already queued in the hub, as in a burst of requests
        gevent.spawn(order.append, "queued")
    frames = producer.read_frames(5)
    assert frames == b"data: 1\\n\\n", frames
    assert producer.read_frames(5) == b""

gevent.spawn(reader).get(timeout=10)
assert order == ["producer"] + ["queued"] * 20, order
print("ok")
"""


@pytest.mark.gevent
def test_gevent_first_read_runs_the_producer_before_queued_greenlets() -> None:
    """Under gevent, the first read switches to the new producer at once, ahead of the queue."""
    run_under_gevent(GEVENT_EAGER_START)


GEVENT_HUB_NOT_RUNNING = """
from sse_sync._event import encode_item
from sse_sync._producer import Producer

# Read from the main greenlet before the hub ever ran: a producer that ends at once must not
# end into the hub (which would start it wrongly); it is started the usual way instead.
producer = Producer(iter([{"a": 1}]), encode_item)
assert producer.read_frames(5) == b'data: {"a":1}\\n\\n'
assert producer.read_frames(5) == b""
print("ok")
"""


@pytest.mark.gevent
def test_gevent_first_read_before_the_hub_ever_ran() -> None:
    """Under gevent, a first read from the main greenlet, hub not yet running, still works."""
    run_under_gevent(GEVENT_HUB_NOT_RUNNING)


GEVENT_LOOKING = """
import sse_sync
from sse_sync._event import encode_item
from sse_sync._producer import Producer
from sse_sync._stream import EventStream

for runner in ("greenlet", "thread"):
    seen = []
    def gen():
        try:
            yield sse_sync.stream_closed()
            seen.append(sse_sync.wait_closed(0.01))
            seen.append(sse_sync.wait_closed(30))
            seen.append(sse_sync.stream_closed())
        finally:
            seen.append("finally")
    stream = EventStream(Producer(gen(), encode_item, runner=runner, close_timeout=10), ping=None)
    assert next(stream) == b"data: false\\n\\n"
    until(lambda: seen)  # a greenlet source is in wait_closed(30) now: it only yields there
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 5
    # The wait returns; a greenlet may instead be killed in it (GreenletExit).
    expected = [[False, True, True, "finally"]]
    if runner == "greenlet":
        expected.append([False, "finally"])
    assert seen in expected, (runner, seen)
print("ok")
"""


@pytest.mark.gevent
def test_gevent_looking_from_a_greenlet_and_a_native_thread() -> None:
    """Under gevent, stream_closed() and wait_closed() work on greenlets and runner='thread'."""
    run_under_gevent(GEVENT_LOOKING)


GEVENT_IDLE_FOOTPRINT = """
import gc, queue, tracemalloc
from sse_sync._event import encode_item
from sse_sync._producer import Producer

def gen(changes):
    while True:
        yield changes.get()  # blocks for ever, as an idle stream's generator does

def reader():
    producer = Producer(gen(queue.Queue()), encode_item)
    while producer.read_frames(None) is not None:
        pass

def idle(count):
    readers = [gevent.spawn(reader) for _ in range(count)]
    gevent.sleep(0.05)
    return readers

readers = idle(20)  # first use: imports and caches are not counted
gc.collect()
tracemalloc.start()
readers += idle(200)
gc.collect()
held = tracemalloc.take_snapshot().filter_traces(
    [tracemalloc.Filter(True, "*/sse_sync/_producer.py")]
)
per_stream = sum(stat.size for stat in held.statistics("filename")) / 200
# Was ~2,850 bytes: a gevent.Greenlet with its spawning stack, a deque's 64-slot block, a dict.
assert per_stream < 2000, per_stream
print("ok")
"""


@pytest.mark.gevent
def test_gevent_idle_producer_keeps_little_memory() -> None:
    """Under gevent, an idle stream's producer keeps under 2 KB of objects of its own."""
    run_under_gevent(GEVENT_IDLE_FOOTPRINT)


GEVENT_CLOSE = """
import contextvars, queue
from sse_sync._event import encode_item
from sse_sync._producer import Producer

where = contextvars.ContextVar("where")
seen = []

def gen():
    seen.append(where.get(None))
    try:
        yield 1
        queue.Queue().get()  # blocks for ever
    finally:
        seen.append("finally")

def in_context(value):
    where.set(value)
    return contextvars.copy_context()

# close() returns once the source's finally ran, in the context the producer was given.
producer = Producer(gen(), encode_item, context=in_context("view"))
assert producer.read_frames(5) == b"data: 1\\n\\n"
until(lambda: not producer.read_frames(0.01))  # the source is blocked in get() now
producer.close()
assert seen == ["view", "finally"], seen
assert not producer.running

# close(wait=False) only asks: the finally runs once the hub gets to it.
seen.clear()
producer = Producer(gen(), encode_item)
assert producer.read_frames(5) == b"data: 1\\n\\n"
producer.close(wait=False)
until(lambda: seen == [None, "finally"])
until(lambda: not producer.running)

# Started, then closed before the hub ran it: the source never runs.
seen.clear()
producer = Producer(gen(), encode_item)
producer.start()
producer.close()
gevent.sleep(0.05)
assert seen == [], seen
assert producer.read_frames(0) == b""
print("ok")
"""


@pytest.mark.gevent
def test_gevent_close_stops_the_producer_greenlet() -> None:
    """Under gevent, close() kills a blocked source after its finally ran, in its context."""
    run_under_gevent(GEVENT_CLOSE)
