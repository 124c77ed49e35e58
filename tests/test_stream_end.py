"""Streams that end by themselves: max_lifetime, a stopping gunicorn worker, a stalled client."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sse_sync import MemoryBroker, _runner, _server, sse_response
from sse_sync._runner import END_RETRY_MS, EventStream


def retry_of(frame: bytes) -> int:
    assert frame.startswith(b"retry: ") and frame.endswith(b"\n\n"), frame
    return int(frame[7:-2])


class FakeWorker:
    """Stands in for a gunicorn worker: what the stream looks at is ``alive``."""

    __module__ = "gunicorn.workers.fake"

    def __init__(self) -> None:
        self.alive = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False


@pytest.fixture
def gunicorn_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorker]:
    """A fake gunicorn worker whose handle_exit is this process's SIGTERM handler."""
    worker = FakeWorker()
    previous = signal.signal(signal.SIGTERM, worker.handle_exit)
    monkeypatch.setattr(_server, "_gunicorn", (0, None))
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
    """Streams started together pick different ends (80-100%) and different retry hints."""
    broker = MemoryBroker()
    streams = [EventStream(broker.subscribe("x"), ping=None, max_lifetime=100.0) for _ in range(20)]
    broker.publish("x", 1)
    lifetimes = []
    for stream in streams:
        started = time.monotonic()
        assert next(stream).endswith(b"data: 1\n\n")  # the end time is picked on the first next()
        assert stream._end_at is not None
        lifetimes.append(stream._end_at - started)
        stream.close()
    assert all(80.0 - 0.1 <= t <= 100.0 for t in lifetimes), lifetimes
    assert len({round(t, 3) for t in lifetimes}) > 10
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
    assert not _server.draining()
    broker.publish("x", 1)
    assert next(stream).endswith(b"data: 1\n\n")
    gunicorn_worker.handle_exit(signal.SIGTERM, None)
    assert _server.draining()
    started = time.monotonic()
    frame = next(stream)
    assert time.monotonic() - started < 0.5
    assert END_RETRY_MS[0] <= retry_of(frame) <= END_RETRY_MS[1]
    with pytest.raises(StopIteration):
        next(stream)
    # The read side is shut: gunicorn reads "end of connection" instead of waiting for
    # another request on a kept-alive connection.
    server_side.settimeout(1)
    assert server_side.recv(1) == b""
    server_side.close()
    client_side.close()


def test_idle_stream_notices_the_stop_within_a_second(gunicorn_worker: FakeWorker) -> None:
    """An idle stream under gunicorn looks at the worker at least every second."""
    server_side, client_side = socket.socketpair()
    stream = EventStream(MemoryBroker().subscribe("x"), ping=60)
    stream.bind({**GUNICORN_ENVIRON, "gunicorn.socket": server_side})
    gunicorn_worker.alive = False
    started = time.monotonic()
    assert next(stream).startswith(b"retry: ")
    assert time.monotonic() - started < _runner._DISCONNECT_POLL + 0.5
    server_side.close()
    client_side.close()


def test_no_drain_outside_gunicorn(gunicorn_worker: FakeWorker) -> None:
    """Under another server (Werkzeug), the SIGTERM handler is not taken for a worker."""
    stream = EventStream(MemoryBroker().subscribe("x"), ping=0.05)
    stream.bind({"SERVER_SOFTWARE": "Werkzeug/3.1"})
    gunicorn_worker.alive = False
    assert not _server.draining()
    assert next(stream) == b": ping\n\n"


def test_non_gunicorn_handler_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM handler that is not a gunicorn worker's method is not mistaken for one."""

    class Other:
        alive = False

        def handler(self, sig: int, frame: Any) -> None: ...

    other = Other()
    previous = signal.signal(signal.SIGTERM, other.handler)
    monkeypatch.setattr(_server, "_gunicorn", (0, None))
    try:
        EventStream(MemoryBroker().subscribe("x")).bind(dict(GUNICORN_ENVIRON))
        assert _server._gunicorn == (os.getpid(), None)
        assert not _server.draining()
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
