"""Streams that end by themselves: max_lifetime, a stopping gunicorn worker, a stalled client."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sse_sync import MemoryBroker, sse_response
from sse_sync._server import ClientConnection
from sse_sync._stream import DISCONNECT_POLL, END_RETRY_MS, EventStream, lifetime


def retry_of(frame: bytes) -> int:
    assert frame.startswith(b"retry: ") and frame.endswith(b"\n\n"), frame
    return int(frame[7:-2])


class FakeWorker:
    """Stands in for a gunicorn worker: its SIGTERM handler is its method; ``alive`` says it runs.

    What gunicorn's ``Worker.init_signals()`` sets up, and all a stream looks at.
    """

    __module__ = "gunicorn.workers.fake"

    def __init__(self) -> None:
        self.alive = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False


@pytest.fixture
def gunicorn_worker() -> Iterator[FakeWorker]:
    """A fake gunicorn worker whose handle_exit is this process's SIGTERM handler."""
    worker = FakeWorker()
    previous = signal.signal(signal.SIGTERM, worker.handle_exit)
    try:
        yield worker
    finally:
        signal.signal(signal.SIGTERM, previous)


GUNICORN_ENVIRON = {"SERVER_SOFTWARE": "gunicorn/27.0.1", "wsgi.multithread": True}


def test_max_lifetime_ends_with_a_jittered_retry() -> None:
    """After 80-100% of max_lifetime the stream sends 'retry: <ms>' and then ends."""
    broker = MemoryBroker()
    stream = EventStream(broker.subscribe("x"), ping=None, max_lifetime=0.3)
    started = time.monotonic()
    frame = next(stream)
    elapsed = time.monotonic() - started
    assert 0.3 * 0.8 - 0.01 <= elapsed < 0.3 + 0.5
    assert END_RETRY_MS[0] <= retry_of(frame) <= END_RETRY_MS[1]
    with pytest.raises(StopIteration):
        next(stream)
    assert stream.closed
    assert broker.stats()["subscribers"] == 0


def test_max_lifetime_jitter_spreads_streams() -> None:
    """Streams live 80-100% of max_lifetime, each its own, and end with different retry hints."""
    lifetimes = [lifetime(100.0) for _ in range(50)]
    assert all(80.0 <= t <= 100.0 for t in lifetimes), lifetimes
    assert len({round(t, 3) for t in lifetimes}) > 25
    broker = MemoryBroker()
    hints = {
        retry_of(next(EventStream(broker.subscribe("y"), ping=None, max_lifetime=0.01)))
        for _ in range(20)
    }
    assert len(hints) > 10


def test_lifetime_counts_from_the_first_read_and_busy_streams_end_too() -> None:
    """A stream that never idles still ends at its lifetime."""

    def busy() -> Iterator[int]:
        n = 0
        while True:
            n += 1
            yield n
            time.sleep(0.005)

    response = sse_response(busy(), ping=None, max_lifetime=0.2)
    started = time.monotonic()
    frames = list(response.response)
    assert time.monotonic() - started < 2.0
    assert len(frames) > 3
    assert frames[-1].startswith(b"retry: ")
    assert all(f.startswith(b"data: ") for f in frames[:-1])


@pytest.mark.parametrize("bad", [0, -1, True, float("nan")])
def test_bad_max_lifetime(bad: Any) -> None:
    """max_lifetime must be seconds > 0 or None."""
    with pytest.raises(ValueError, match="max_lifetime"):
        EventStream(MemoryBroker().subscribe("x"), max_lifetime=bad)


def test_stopping_gunicorn_worker_ends_streams(gunicorn_worker: FakeWorker) -> None:
    """When the gunicorn worker stops being alive, its streams send a retry hint and end."""
    server_side, client_side = socket.socketpair()
    broker = MemoryBroker()
    stream = EventStream(broker.subscribe("x"), ping=None)
    stream.bind({**GUNICORN_ENVIRON, "gunicorn.socket": server_side})
    broker.publish("x", 1)
    assert next(stream).endswith(b"data: 1\n\n")  # alive: the stream goes on
    gunicorn_worker.handle_exit(signal.SIGTERM, None)
    frame = next(stream)
    assert END_RETRY_MS[0] <= retry_of(frame) <= END_RETRY_MS[1]
    with pytest.raises(StopIteration):
        next(stream)
    # The read side is shut: gunicorn reads "end of connection" instead of waiting for
    # another request on a kept-alive connection.
    server_side.settimeout(1)
    assert server_side.recv(1) == b""
    server_side.close()
    client_side.close()


class Idle:
    """A FrameSource with nothing to send: each read times out at once; records the timeouts."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.on_read: Callable[[], None] | None = None

    def read_frames(self, timeout: float | None) -> bytes | None:
        self.timeouts.append(timeout)
        if self.on_read is not None:
            self.on_read()
        return None

    def attach(self, connection: ClientConnection) -> None:
        pass

    def close(self) -> None:
        pass


def test_idle_stream_notices_the_stop_within_a_poll(gunicorn_worker: FakeWorker) -> None:
    """An idle stream under gunicorn, even with no socket, looks at its worker every poll."""
    source = Idle()
    stream = EventStream(source, ping=60, open_timeout=0)
    stream.bind(dict(GUNICORN_ENVIRON))
    assert next(stream) == b": ping\n\n"  # open_timeout=0: the headers go out at once
    source.timeouts.clear()

    def told_to_stop() -> None:
        gunicorn_worker.alive = False  # while the stream waits

    source.on_read = told_to_stop
    assert next(stream).startswith(b"retry: ")
    [waited] = source.timeouts  # one wait, no longer than the poll: then it looked
    assert waited is not None and waited <= DISCONNECT_POLL


def test_no_drain_outside_gunicorn(gunicorn_worker: FakeWorker) -> None:
    """Under another server (Werkzeug), the SIGTERM handler is not taken for a worker."""
    stream = EventStream(MemoryBroker().subscribe("x"), ping=0.05)
    stream.bind({"SERVER_SOFTWARE": "Werkzeug/3.1"})
    gunicorn_worker.alive = False
    assert next(stream) == b": ping\n\n"


def test_non_gunicorn_handler_is_ignored() -> None:
    """A SIGTERM handler that is not a gunicorn worker's method is not mistaken for one."""

    class Other:
        alive = False

        def handler(self, sig: int, frame: Any) -> None: ...

    other = Other()
    previous = signal.signal(signal.SIGTERM, other.handler)
    try:
        stream = EventStream(MemoryBroker().subscribe("x"), ping=0.05)
        stream.bind(dict(GUNICORN_ENVIRON))
        assert next(stream) == b": ping\n\n"  # no retry hint: not draining
        stream.close()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_worker_is_looked_up_per_stream() -> None:
    """A stream finds the worker whose handler is installed now, whatever earlier ones found."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        before = EventStream(MemoryBroker().subscribe("x"), ping=0.05)
        before.bind(dict(GUNICORN_ENVIRON))  # no worker to find yet
        assert next(before) == b": ping\n\n"
        worker = FakeWorker()
        signal.signal(signal.SIGTERM, worker.handle_exit)
        worker.alive = False
        stream = EventStream(MemoryBroker().subscribe("x"), ping=0.05)
        stream.bind(dict(GUNICORN_ENVIRON))
        assert next(stream).startswith(b"retry: ")
        before.close()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_stalled_client_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subscriber stuck writing to a client that reads nothing gets its socket shut down."""
    server_side, client_side = socket.socketpair()
    broker = MemoryBroker(history=100, max_pending=5)
    sub = broker.subscribe("x")
    stream = EventStream(sub, ping=None)
    stream.bind({"werkzeug.socket": server_side})
    broker.publish("x", 0)
    assert next(stream).endswith(b"data: 0\n\n")
    # The server is now "writing" (not waiting in read_frames) and falls behind:
    for i in range(1, 10):
        broker.publish("x", i)
    assert sub.overflowed
    assert broker.stats()["overflows"] == 1
    with pytest.raises(OSError):
        server_side.sendall(b"x" * 100)  # what a blocked sendall now gets: EPIPE
    with pytest.raises(StopIteration):
        next(stream)
    server_side.close()
    client_side.close()
