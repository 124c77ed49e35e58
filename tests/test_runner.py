"""The producer and the event stream in process, with OS threads (gevent runs in subprocesses)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sse_sync
from sse_sync._event import PING, encode_item
from sse_sync._runner import EventStream, Producer

from .conftest import wait_until


def producer(source: Any, **kwargs: Any) -> Producer:
    return Producer(source, encode_item, **kwargs)


def run_under_gevent(code: str) -> None:
    """Run ``code`` in a fresh interpreter (it monkey-patches); it must print ``ok``."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr


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


def test_close_runs_source_finally_on_the_producer_thread() -> None:
    """close() closes the generator on the producer thread; finally runs, no thread is left."""
    seen: dict[str, int] = {}
    closed = threading.Event()
    resume = threading.Event()

    def gen() -> Iterator[int]:
        seen["body"] = threading.get_ident()
        try:
            n = 0
            while True:
                n += 1
                yield n
                resume.wait(5)
        finally:
            seen["finally"] = threading.get_ident()
            closed.set()

    p = producer(gen(), close_timeout=5)
    stream = EventStream(p, ping=None)
    assert next(stream) == b"data: 1\n\n"
    assert p.running
    resume.set()
    stream.close()
    stream.close()
    assert closed.is_set()
    assert seen["finally"] == seen["body"] != threading.get_ident()
    assert not p.running
    with pytest.raises(StopIteration):
        next(stream)


def test_close_frees_a_producer_blocked_on_a_full_queue() -> None:
    """A producer blocked by backpressure stops when the stream is closed."""
    count = 0
    finished = threading.Event()

    def gen() -> Iterator[int]:
        nonlocal count
        try:
            while True:
                count += 1
                yield count
        finally:
            finished.set()

    p = producer(gen(), queue_size=4, close_timeout=5)
    p.start()
    wait_until(lambda: len(p._frames) == 4 and count == 4 + 1)
    p.close()
    assert finished.is_set()
    assert not p.running


def test_backpressure_bounds_what_the_producer_runs_ahead() -> None:
    """With nobody reading, the producer stops after filling the queue (plus the item in hand)."""
    count = 0

    def gen() -> Iterator[int]:
        nonlocal count
        while True:
            count += 1
            yield count

    p = producer(gen(), queue_size=3)
    p.start()
    wait_until(lambda: len(p._frames) == 3 and count == 3 + 1)
    assert count == 4
    p.close()
    assert not p.running


def test_frames_already_queued_are_joined_into_one_write() -> None:
    """All frames waiting in the queue come out as one chunk, then the end of stream."""
    p = producer(iter(range(10)), queue_size=64)
    p.start()
    wait_until(lambda: not p.running)
    chunk = b"".join(encode_item(i) for i in range(10))
    assert list(EventStream(p, ping=None)) == [chunk]


def test_ping_when_idle() -> None:
    """An idle stream yields ': ping' frames, and real frames when they come."""
    release = threading.Event()

    def gen() -> Iterator[str]:
        release.wait(5)
        yield "late"

    stream = EventStream(producer(gen()), ping=0.05)
    assert next(stream) == PING
    assert next(stream) == PING
    release.set()
    frames = next(stream)
    while frames == PING:
        frames = next(stream)
    assert frames == b'data: "late"\n\n'
    assert list(stream) == []


def test_source_error_is_logged_and_ends_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in the source is logged with its traceback and ends the stream cleanly."""

    def gen() -> Iterator[int]:
        yield 1
        raise ValueError("broken source")

    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        frames = b"".join(EventStream(producer(gen()), ping=None))
    assert frames == b"data: 1\n\n"
    [record] = caplog.records
    assert record.exc_info is not None and "broken source" in str(record.exc_info[1])


def test_unencodable_item_is_logged_and_ends_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    """An item that cannot be encoded ends the stream with a logged TypeError naming its type."""
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        frames = b"".join(EventStream(producer([1, object(), 3]), ping=None))
    assert frames == b"data: 1\n\n"
    assert "'object'" in caplog.text


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


@pytest.mark.parametrize("seconds", [0, -1, True, float("inf"), float("nan"), "5"])
@pytest.mark.parametrize("name", ["ping", "max_lifetime"])
def test_stream_rejects_bad_durations(name: str, seconds: Any) -> None:
    """ping and max_lifetime must be finite positive seconds or None."""
    with pytest.raises(ValueError, match=f"Expected {name} to be finite seconds > 0 or None"):
        EventStream(producer([]), **{name: seconds})


GEVENT_CLOSE_FROM_ANOTHER_GREENLET = """
from gevent import monkey; monkey.patch_all()
import gevent, time
from sse_sync._event import encode_item
from sse_sync._runner import EventStream, Producer

finished = []
def gen():
    try:
        yield 1
        time.sleep(60)
    finally:
        finished.append("source")

stream = EventStream(Producer(gen(), encode_item), ping=None)
got = []
reader = gevent.spawn(lambda: got.extend(stream))
deadline = time.monotonic() + 5
while not got and time.monotonic() < deadline:  # wait for the first frame
    gevent.sleep(0.001)
stream.close()
reader.join(timeout=5)
assert reader.ready() and got == [b"data: 1\\n\\n"], got
assert finished == ["source"]
print("ok")
"""


@pytest.mark.gevent
def test_gevent_close_from_another_greenlet_wakes_the_reader() -> None:
    """Under gevent, close() from one greenlet ends a read blocked on another at once."""
    run_under_gevent(GEVENT_CLOSE_FROM_ANOTHER_GREENLET)


GEVENT_WAKE = """
from gevent import monkey; monkey.patch_all()
import gevent, time
from sse_sync._wake import GeventWake, new_wake

gevent.get_hub()  # a server has its hub running before any request is read
wake = new_wake()
assert isinstance(wake, GeventWake), type(wake)

# A timed wait that nobody ends returns False after about its timeout.
start = time.monotonic()
assert wake.wait(0.05) is False and not wake.is_set()
assert 0.04 <= time.monotonic() - start < 2

# set() before the wait: the wait returns at once; clear() resets the flag.
wake.set()
assert wake.is_set() and wake.wait(30) is True
wake.clear()
assert not wake.is_set()

# set() from another greenlet ends a wait that has no timeout.
waiter = gevent.spawn(wake.wait)
gevent.sleep(0.01)
wake.set()
assert waiter.get(timeout=5) is True
wake.clear()

# set() from a native OS thread wakes the waiting greenlet too.
start_new_thread = monkey.get_original("_thread", "start_new_thread")
native_sleep = monkey.get_original("time", "sleep")
start_new_thread(lambda: (native_sleep(0.05), wake.set()), ())
assert wake.wait(30) is True
wake.clear()

# A killed waiter leaves nothing behind: the next wait still works.
waiter = gevent.spawn(wake.wait, 30)
gevent.sleep(0.01)
waiter.kill(block=True, timeout=5)
assert waiter.dead and wake._waiter is None
assert wake.wait(0.01) is False

# set() from other threads never loses a wake-up: 300 rounds, each woken by a native thread
# that sets twice (the second set() must not undo the next round's wait).
for _ in range(300):
    wake.clear()
    start_new_thread(lambda: (wake.set(), wake.set()), ())
    assert wake.wait(10) is True
    assert wake.is_set()

# wait(run=...) with the flag already set starts the greenlet later and returns at once; no
# late switch lands in this greenlet afterwards.
ran = []
glet = gevent.Greenlet(ran.append, "ran")
wake.set()
assert wake.wait(10, run=glet) is True
gevent.sleep(0.05)
assert ran == ["ran"]

# A wake made on a thread of gevent's pool (which may have a hub of its own) is a patched
# Event, which any thread can wait on.
def in_pool():
    gevent.get_hub()
    return type(new_wake()).__name__
assert gevent.get_hub().threadpool.apply(in_pool) != "GeventWake"
print("ok")
"""


@pytest.mark.gevent
def test_gevent_wake_times_out_and_is_woken_from_greenlets_and_threads() -> None:
    """Under gevent, a wake times out, and set() from a greenlet or an OS thread ends a wait."""
    run_under_gevent(GEVENT_WAKE)


@pytest.mark.parametrize("queue_size", [1, 2, 64])
def test_every_frame_arrives_once_in_order_through_a_small_queue(queue_size: int) -> None:
    """With a thread producer and a slower reader, 5,000 frames arrive once each, in order."""
    stream = EventStream(producer(iter(range(5000)), queue_size=queue_size), ping=None)
    chunks = list(stream)
    assert b"".join(chunks) == b"".join(encode_item(i) for i in range(5000))
    assert all(chunks)
    assert stream.closed


GEVENT_HAND_OVER = """
from gevent import monkey; monkey.patch_all()
import gevent, time
from sse_sync._event import encode_item
from sse_sync._runner import EventStream, Producer

for size in (1, 3, 64):
    for runner in ("greenlet", "thread"):
        def gen():
            for i in range(3000):
                if i % 500 == 0:
                    time.sleep(0.001)  # the reader waits for frames now and then
                yield i
        frames = Producer(gen(), encode_item, queue_size=size, runner=runner)
        stream = EventStream(frames, ping=None)
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if len(chunks) % 7 == 0:
                gevent.sleep(0)  # the producer fills the queue and waits for room now and then
        expected = b"".join(encode_item(i) for i in range(3000))
        assert b"".join(chunks) == expected, (size, runner)
        assert max(c.count(b"data:") for c in chunks) <= size, (size, runner)
print("ok")
"""


@pytest.mark.gevent
def test_gevent_every_frame_arrives_once_in_order() -> None:
    """Under gevent (greenlet and thread-pool runners), frames cross a small queue in order."""
    run_under_gevent(GEVENT_HAND_OVER)


GEVENT_EAGER_START = """
from gevent import monkey; monkey.patch_all()
import gevent
from sse_sync._event import encode_item
from sse_sync._runner import Producer

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
from gevent import monkey; monkey.patch_all()
from sse_sync._event import encode_item
from sse_sync._runner import Producer

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


def test_open_raises_what_the_source_raised_before_its_first_item() -> None:
    """open() re-raises the source's exception on the caller's thread and closes the stream."""

    def gen() -> Iterator[int]:
        raise KeyError("before the first item")
        yield 1

    p = producer(gen())
    stream = EventStream(p, ping=None, open_timeout=5)
    with pytest.raises(KeyError, match="before the first item"):
        stream.open()
    assert stream.closed and not p.running
    assert list(stream) == []


def test_open_keeps_the_first_frames_for_the_first_read() -> None:
    """Frames that came while open() waited are what the first next() returns."""
    stream = EventStream(producer(iter([1])), ping=None, open_timeout=5)
    stream.open()
    stream.open()  # only the first call waits
    assert list(stream) == [b"data: 1\n\n"]


def test_an_error_queued_after_frames_comes_after_them() -> None:
    """read_frames() returns the frames queued before an error, then raises it, then ends."""

    def gen() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("after two items")

    p = producer(gen())
    p.start()
    wait_until(lambda: not p.running)
    assert p.read_frames(1) == b"data: 1\n\ndata: 2\n\n"
    with pytest.raises(ValueError, match="after two items"):
        p.read_frames(1)
    assert p.read_frames(1) == b""


def test_a_quiet_stream_opens_with_a_ping_even_without_pings() -> None:
    """The first write of a quiet stream is a ping at open_timeout; with ping=None, no other."""
    release = threading.Event()

    def gen() -> Iterator[str]:
        release.wait(10)
        yield "late"

    stream = EventStream(producer(gen()), ping=None, open_timeout=0.02)
    assert next(stream) == PING
    release.set()
    assert list(stream) == [b'data: "late"\n\n']


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


def _thread_names() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("sse_sync")]


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
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 2  # close() waits close_timeout, not for the stop
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
                started = time.monotonic()
                stream.close()
                assert time.monotonic() - started < 2
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

    def gen() -> Iterator[bool]:
        try:
            yield sse_sync.stream_closed()
            seen.append(sse_sync.wait_closed(0.01))
            seen.append(sse_sync.wait_closed(30))
            seen.append(sse_sync.stream_closed())
            seen.append(sse_sync.wait_closed(30))
        finally:
            seen.append("finally")

    p = producer(gen(), close_timeout=10)
    stream = EventStream(p, ping=None)
    assert next(stream) == b"data: false\n\n"
    wait_until(lambda: seen == [False])
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 5
    assert seen == [False, True, True, True, "finally"]
    assert not p.running


GEVENT_LOOKING = """
from gevent import monkey; monkey.patch_all()
import gevent, time
import sse_sync
from sse_sync._event import encode_item
from sse_sync._runner import EventStream, Producer

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
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        gevent.sleep(0.001)
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
