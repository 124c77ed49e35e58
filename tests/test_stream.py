"""The event stream in process: frames, pings, the first write, errors, the end, the socket."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sse_sync._event import PING, encode_item
from sse_sync._producer import Producer
from sse_sync._server import ClientConnection
from sse_sync._stream import DISCONNECT_POLL, EventStream

from .conftest import wait_until
from .gevent_process import run_under_gevent


def producer(source: Any, **kwargs: Any) -> Producer:
    return Producer(source, encode_item, **kwargs)


class Idle:
    """A FrameSource whose reads time out at once; after ``reads`` of them, one frame.

    It records the timeouts it is given: how long the stream meant to wait.
    """

    def __init__(self, reads: int | None = None) -> None:
        self.reads = reads
        self.timeouts: list[float | None] = []
        self.connections: list[ClientConnection] = []
        self.closed = False

    def read_frames(self, timeout: float | None) -> bytes | None:
        self.timeouts.append(timeout)
        if self.reads is not None and len(self.timeouts) > self.reads:
            return b"data: x\n\n"
        return None

    def attach(self, connection: ClientConnection) -> None:
        self.connections.append(connection)

    def wake_reader(self) -> None:
        pass  # its reads never wait

    def close(self) -> None:
        self.closed = True


class Waiting(Idle):
    """An :class:`Idle` whose reads wait, up to their timeout, for ``wake_reader()``."""

    def __init__(self) -> None:
        super().__init__()
        self.woken = threading.Event()

    def read_frames(self, timeout: float | None) -> bytes | None:
        self.timeouts.append(timeout)
        self.woken.wait(timeout)
        self.woken.clear()
        return None

    def wake_reader(self) -> None:
        self.woken.set()


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


@pytest.mark.parametrize("seconds", [0, -1, True, float("inf"), float("nan"), "5"])
@pytest.mark.parametrize("name", ["ping", "max_lifetime"])
def test_stream_rejects_bad_durations(name: str, seconds: Any) -> None:
    """ping and max_lifetime must be finite positive seconds or None."""
    with pytest.raises(ValueError, match=f"Expected {name} to be finite seconds > 0 or None"):
        EventStream(producer([]), **{name: seconds})


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


@pytest.mark.parametrize("queue_size", [1, 2, 64])
def test_every_frame_arrives_once_in_order_through_a_small_queue(queue_size: int) -> None:
    """With a thread producer and a slower reader, 5,000 frames arrive once each, in order."""
    stream = EventStream(producer(iter(range(5000)), queue_size=queue_size), ping=None)
    chunks = list(stream)
    assert b"".join(chunks) == b"".join(encode_item(i) for i in range(5000))
    assert all(chunks)
    assert stream.closed


def test_an_idle_stream_is_woken_when_the_peer_closed_its_socket() -> None:
    """With the client's socket, an idle stream waits for its ping, and the watch ends it early."""
    server_side, client_side = socket.socketpair()
    source = Waiting()
    stream = EventStream(source, ping=10, open_timeout=0)
    stream.bind({"werkzeug.socket": server_side})
    assert len(source.connections) == 1  # the source was given the connection
    assert next(stream) == PING  # open_timeout=0: the headers go out at once
    client_side.close()
    with pytest.raises(StopIteration):  # not the ping 10 s later: the watch woke the read
        next(stream)
    assert stream.closed and source.closed
    assert source.timeouts[-1] is not None and source.timeouts[-1] > DISCONNECT_POLL
    server_side.close()


def test_without_a_socket_an_idle_stream_waits_for_its_ping() -> None:
    """Where no socket is found (and no gunicorn), an idle stream's waits run to its ping."""
    source = Idle(reads=3)
    stream = EventStream(source, ping=60, open_timeout=0)
    stream.bind({})
    assert source.connections == []
    assert next(stream) == PING  # open_timeout=0: the headers go out at once
    source.timeouts.clear()
    assert next(stream) == b"data: x\n\n"
    assert len(source.timeouts) == 4
    assert all(t is not None and t > 50 for t in source.timeouts), source.timeouts
    stream.close()
    assert source.closed


GEVENT_CLOSE_FROM_ANOTHER_GREENLET = """
from sse_sync._event import encode_item
from sse_sync._producer import Producer
from sse_sync._stream import EventStream

finished = []
sleeping = []
def gen():
    try:
        yield 1
        sleeping.append(True)
        time.sleep(60)
    finally:
        finished.append("source")

stream = EventStream(Producer(gen(), encode_item), ping=None)
got = []
reader = gevent.spawn(lambda: got.extend(stream))
# This greenlet runs only when the others block: the producer in its sleep, the reader in its
# wait for the next frames.
until(lambda: got and sleeping)
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


GEVENT_HAND_OVER = """
from sse_sync._event import encode_item
from sse_sync._producer import Producer
from sse_sync._stream import EventStream

for size in (1, 3, 64):
    for runner in ("greenlet", "thread"):
        def gen():
            for i in range(3000):
                if i % 500 == 0:
                    time.sleep(0)  # yields to the hub: the reader empties the queue and waits
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
