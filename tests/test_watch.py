"""The process's socket watch: idle streams learn of a disconnect or a stop without polling."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sse_sync import MemoryBroker
from sse_sync._event import encode_item
from sse_sync._producer import Producer
from sse_sync._server import ClientConnection
from sse_sync._stream import EventStream, FrameSource
from sse_sync._watch import watch

from .conftest import wait_until
from .test_stream_end import GUNICORN_ENVIRON, FakeWorker, gunicorn_worker, retry_of

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the watch needs epoll")

__all__ = ["gunicorn_worker"]  # a fixture, imported for the tests below

WERKZEUG_ENVIRON = {"SERVER_SOFTWARE": "Werkzeug/3.1", "wsgi.multithread": True}


@pytest.fixture
def tcp_pair() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    """Makes connected (server side, client side) TCP sockets over loopback; closes them all."""
    listener = socket.create_server(("127.0.0.1", 0))
    made: list[socket.socket] = []

    def make() -> tuple[socket.socket, socket.socket]:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        made.extend((server, client))
        return server, client

    yield make
    for sock in made:
        sock.close()
    listener.close()


class Reader:
    """Calls ``next(stream)`` on a thread, as a server's worker thread would."""

    def __init__(self, stream: EventStream) -> None:
        self.result: list[Any] = []
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: EventStream) -> None:
        try:
            self.result.append(next(stream))
        except StopIteration:
            self.result.append(StopIteration)

    def done(self) -> bool:
        return bool(self.result)


def idle_stream(source: FrameSource, server_side: socket.socket, **environ: Any) -> EventStream:
    """A stream with a 30 s ping, bound to ``server_side``, past its opening ping."""
    stream = EventStream(source, ping=30, open_timeout=0)
    stream.bind({**WERKZEUG_ENVIRON, **environ, "werkzeug.socket": server_side})
    assert next(stream) == b": ping\n\n"
    return stream


def _watch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "sse_sync-watch"]


def test_an_idle_subscription_ends_when_its_client_leaves(tcp_pair: Any) -> None:
    """A client leaving a stream idle for 30 s more ends it and its subscription at once."""
    broker = MemoryBroker()
    server_side, client_side = tcp_pair()
    stream = idle_stream(broker.subscribe("x"), server_side)
    reader = Reader(stream)
    wait_until(lambda: _watch_threads() and broker.stats()["subscribers"] == 1)
    client_side.close()
    wait_until(reader.done, timeout=5)
    assert reader.result == [StopIteration]
    assert stream.closed and broker.stats()["subscribers"] == 0


def test_an_idle_generator_is_closed_when_its_client_leaves(tcp_pair: Any) -> None:
    """A generator blocked between items is closed (its finally runs) when the client leaves."""
    unblock = threading.Event()
    ran: list[str] = []

    def gen() -> Iterator[str]:
        try:
            yield "first"
            unblock.wait(30)
            yield "late"
        finally:
            ran.append("finally")

    server_side, client_side = tcp_pair()
    stream = EventStream(Producer(gen(), encode_item, close_timeout=5), ping=30)
    stream.bind({**WERKZEUG_ENVIRON, "werkzeug.socket": server_side})
    assert next(stream) == encode_item("first")
    reader = Reader(stream)
    client_side.close()
    # close() asks the producer to stop: a thread stops at its next yield.
    wait_until(lambda: stream.closed, timeout=5)
    unblock.set()
    wait_until(reader.done, timeout=5)
    wait_until(lambda: ran == ["finally"], timeout=5)
    assert reader.result == [StopIteration]


def test_data_from_the_client_does_not_end_or_stall_the_stream(tcp_pair: Any) -> None:
    """Bytes the client sends wake nothing: the stream goes on delivering events."""
    broker = MemoryBroker()
    server_side, client_side = tcp_pair()
    stream = idle_stream(broker.subscribe("x"), server_side)
    client_side.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # a pipelined request, say
    for n in range(3):
        reader = Reader(stream)
        broker.publish("x", n)
        wait_until(reader.done, timeout=5)
        assert reader.result[0].endswith(b"data: %d\n\n" % n)
    stream.close()


def test_a_stopping_worker_wakes_every_idle_stream(
    tcp_pair: Any, gunicorn_worker: FakeWorker
) -> None:
    """Under gunicorn, streams idle for 30 s more end with a retry hint once the worker stops."""
    broker = MemoryBroker()
    streams = [idle_stream(broker.subscribe("x"), tcp_pair()[0], **GUNICORN_ENVIRON) for _ in "ab"]
    readers = [Reader(stream) for stream in streams]
    wait_until(_watch_threads)
    gunicorn_worker.alive = False
    wait_until(lambda: all(reader.done() for reader in readers), timeout=5)
    for reader in readers:
        retry_of(reader.result[0])
    for stream in streams:
        stream.close()


def test_the_watch_thread_ends_once_nothing_is_watched(tcp_pair: Any) -> None:
    """The watch's thread runs while streams are watched, and ends a few seconds after."""
    broker = MemoryBroker()
    streams = [idle_stream(broker.subscribe("x"), tcp_pair()[0]) for _ in range(5)]
    readers = [Reader(stream) for stream in streams]
    wait_until(lambda: len(_watch_threads()) == 1)
    for stream in streams:
        stream.close()  # on this thread, as Werkzeug's close() would: the readers end too
    wait_until(lambda: all(reader.done() for reader in readers), timeout=5)
    wait_until(lambda: not _watch_threads(), timeout=10)


def test_a_replaced_registration_leaves_the_new_one_alone(tcp_pair: Any) -> None:
    """A socket closed while watched, its fd reused: the old unwatch() spares the new watch."""
    server_a, _ = tcp_pair()
    old = watch(ClientConnection(server_a), lambda: None)
    assert old.watching
    fd = server_a.detach()  # still open, but now ours to close
    server_b, client_b = tcp_pair()
    # The old socket is closed (its stream's close() never came) and the next connection's
    # socket gets its fd, in one step.
    os.dup2(server_b.fileno(), fd)
    reused = socket.socket(fileno=fd)
    server_b.close()
    try:
        woken = threading.Event()
        new = watch(ClientConnection(reused), woken.set)
        old.unwatch()  # late: must not remove the new registration
        client_b.close()
        assert woken.wait(5)
        assert new.peer_closed()
        new.unwatch()
    finally:
        reused.close()


def _read_on_a_thread(source: FrameSource) -> list[Any]:
    """Start ``source.read_frames(None)`` on a thread; its result lands in the list returned."""
    results: list[Any] = []
    threading.Thread(target=lambda: results.append(source.read_frames(None)), daemon=True).start()
    return results


def test_wake_reader_ends_a_read_and_is_kept_until_one_reads() -> None:
    """wake_reader() ends a read with None, even one that starts after it; safe after close()."""
    blocker = threading.Event()

    def blocked() -> Iterator[int]:
        blocker.wait(30)
        yield 1

    sources: list[FrameSource] = [MemoryBroker().subscribe("x"), Producer(blocked(), encode_item)]
    for source in sources:  # neither has anything to read for now
        waiting = _read_on_a_thread(source)
        source.wake_reader()
        wait_until(lambda got=waiting: got == [None], timeout=5)
        source.wake_reader()  # nobody reads now: kept for the next read
        later = _read_on_a_thread(source)  # without the kept wake, it would wait for ever
        wait_until(lambda got=later: got == [None], timeout=5)
    blocker.set()
    for source in sources:
        source.close()
        source.wake_reader()  # after close(): harmless
        assert source.read_frames(0) == b""


def run_script(code: str, *options: str) -> None:
    """Run ``code`` in a fresh interpreter; it must print ``ok``."""
    result = subprocess.run(
        [sys.executable, *options, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


FORKED = """
import os, socket, threading, sys
from sse_sync._server import ClientConnection
from sse_sync._watch import watch

def pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    return listener.accept()[0], client

def woken_on_close():
    server, client = pair()
    woken = threading.Event()
    watched = watch(ClientConnection(server), woken.set)
    client.close()
    ok = woken.wait(10) and watched.peer_closed()
    watched.unwatch()
    return ok

parent_server, parent_client = pair()
kept = watch(ClientConnection(parent_server), lambda: None)  # the watch runs in the parent
pid = os.fork()
if pid == 0:  # the thread did not survive the fork: the child watches with its own
    os._exit(0 if woken_on_close() else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert woken_on_close()  # the parent's watch still works
kept.unwatch()
print("ok")
"""


def test_a_forked_child_watches_with_its_own_thread() -> None:
    """After a fork (gunicorn's preloaded workers), the child's streams are watched too."""
    # (-W ignore: Python 3.12 warns of a fork while a thread runs, which is the point here.)
    run_script(FORKED, "-W", "ignore")


#: A script's lines: an idle stream (the next ping 30 s away) and its client, over loopback.
IDLE_STREAM = """
import socket
from sse_sync import MemoryBroker
from sse_sync._stream import EventStream

listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server_side, _ = listener.accept()
stream = EventStream(MemoryBroker().subscribe("x"), ping=30, open_timeout=0)
stream.bind({"SERVER_SOFTWARE": "Werkzeug/3.1", "werkzeug.socket": server_side})
assert next(stream) == b": ping\\n\\n"
"""

GEVENT_WATCH = (
    "from gevent import monkey; monkey.patch_all()\n"
    + IDLE_STREAM
    + """
import os, gevent
reader = gevent.spawn(lambda: list(stream))  # the rest: nothing, once the client left
tasks = len(os.listdir("/proc/self/task"))
client.close()
assert reader.get(timeout=5) == []
# The watch's thread is an OS thread even under gevent, and ends once nothing is watched.
deadline = gevent.get_hub().loop.now() + 10
while len(os.listdir("/proc/self/task")) >= tasks:
    assert gevent.get_hub().loop.now() < deadline, "the watch's thread did not end"
    gevent.sleep(0.05)
print("ok")
"""
)


@pytest.mark.gevent
def test_gevent_an_idle_stream_ends_when_its_client_leaves() -> None:
    """Under gevent, the watch's OS thread wakes the stream's greenlet, then ends."""
    run_script(GEVENT_WATCH)


WITHOUT_EPOLL = (
    "import select; del select.epoll\n"  # as on macOS: each idle stream polls its socket
    + IDLE_STREAM
    + """
import threading
done = threading.Event()
reader = threading.Thread(target=lambda: (list(stream), done.set()))
reader.start()
client.close()
assert done.wait(10)
assert [t.name for t in threading.enumerate() if t.name.startswith("sse_sync")] == []
print("ok")
"""
)


def test_without_epoll_an_idle_stream_polls_its_socket() -> None:
    """Where there is no epoll, an idle stream still ends soon after its client leaves."""
    run_script(WITHOUT_EPOLL)
