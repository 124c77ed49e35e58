"""Direct writes: a publisher writes a waiting subscriber's frames to its socket itself.

``sse_sync.gunicorn.GeventWorker`` enables them (``ClientConnection.write_through``); these
tests play that server under gevent, in a subprocess, over real loopback sockets. The
integration tests run the same fan-out through the worker (``tests/integration/test_fanout.py``,
kind ``sse_sync``).
"""

from __future__ import annotations

import socket
import threading

from sse_sync import ClientConnection

from .gevent_process import run_under_gevent

#: A stream served as the worker serves one: bound to a loopback socket, its opening ping
#: written, direct writes allowed, and its next ``next()`` running on a greenlet of its own.
SERVE = '''
import socket
from sse_sync import MemoryBroker
from sse_sync._stream import EventStream

listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server_side, _ = listener.accept()
client.settimeout(5)

def chunk(body):
    return b"%X\\r\\n%s\\r\\n" % (len(body), body)

def read_exactly(n):
    data = b""
    while len(data) < n:
        got = client.recv(n - len(data))
        assert got, data
        data += got
    return data

def serve(source, ping=30):
    stream = EventStream(source, ping=ping, open_timeout=0)
    stream.bind({"SERVER_SOFTWARE": "test", "werkzeug.socket": server_side})
    server_side.sendall(chunk(next(stream)))  # the opening ping: what the server writes
    assert read_exactly(len(chunk(b": ping\\n\\n"))) == chunk(b": ping\\n\\n")
    stream.connection.write_through(chunked=True, on_sent=sent.append)
    return stream

class Next:
    """next(stream) on a greenlet of its own, as the worker's request greenlet calls it."""
    def __init__(self, stream):
        self.result = []
        self.greenlet = gevent.spawn(self._run, stream)
        gevent.sleep(0.01)  # it runs until it waits for frames
    def _run(self, stream):
        try:
            self.result.append(next(stream))
        except StopIteration:
            self.result.append(StopIteration)

sent = []
broker = MemoryBroker()
'''


def test_a_publisher_writes_to_a_waiting_subscriber_and_leaves_it_asleep() -> None:
    """Events published in one hub turn reach the socket as one HTTP chunk, written by the
    publishing side while the stream's next() still waits; a later one as another chunk."""
    run_under_gevent(
        SERVE
        + """
stream = serve(broker.subscribe("news"))
reader = Next(stream)
frames = [b'id: %s\\ndata: {"n":%d}\\n\\n' % (broker.publish("news", {"n": n}).encode(), n)
          for n in (1, 2)]
expected = chunk(frames[0] + frames[1])
assert read_exactly(len(expected)) == expected
later = b'id: %s\\ndata: 3\\n\\n' % broker.publish("news", 3).encode()
assert read_exactly(len(chunk(later))) == chunk(later)
assert reader.result == [], reader.result  # the stream's greenlet never woke
assert sent == [len(frames[0] + frames[1]), len(later)]  # the server's count of body bytes
stream.close()
until(lambda: reader.result == [StopIteration])
print("ok")
"""
    )


def test_what_the_socket_did_not_take_is_written_by_the_stream() -> None:
    """A client that reads slowly: the stream's greenlet writes the rest of a direct write,
    in order, then waits again; later events follow it."""
    run_under_gevent(
        SERVE
        + """
stream = serve(broker.subscribe("big"))
reader = Next(stream)
payloads = [str(i) * 900_000 for i in range(6)]  # far more than the socket buffers hold
wire = [b'id: %s\\ndata: "%s"\\n\\n' % (broker.publish("big", text).encode(), text.encode())
        for text in payloads]
expected = chunk(b"".join(wire))
assert read_exactly(len(expected)) == expected
later = b'id: %s\\ndata: 3\\n\\n' % broker.publish("big", 3).encode()
assert read_exactly(len(chunk(later))) == chunk(later)
assert reader.result == [], reader.result  # it wrote the rest and waits again
stream.close()
print("ok")
"""
    )


def test_a_direct_write_to_a_gone_client_ends_the_stream() -> None:
    """The client left: the failed send wakes the stream, which ends as for any client gone."""
    run_under_gevent(
        SERVE
        + """
subscription = broker.subscribe("gone")
stream = serve(subscription)
reader = Next(stream)
client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
client.close()  # a reset: the next send fails at once
gevent.sleep(0.05)
for i in range(3):  # the first may still reach the kernel; a later one fails
    broker.publish("gone", i)
until(lambda: reader.result == [StopIteration])
assert stream.closed
assert broker.stats()["subscribers"] == 0
print("ok")
"""
    )


def test_pings_are_written_by_the_hub_and_count_from_the_last_write() -> None:
    """An idle stream's pings come from the hub's timer, its greenlet asleep; none while events
    come faster than the ping interval."""
    run_under_gevent(
        SERVE
        + """
stream = serve(broker.subscribe("busy"), ping=0.5)
reader = Next(stream)
ping = chunk(b": ping\\n\\n")
started = time.monotonic()
assert read_exactly(len(ping)) == ping  # idle: a ping 0.5 s after the last write
assert 0.4 < time.monotonic() - started < 1.5
for i in range(8):  # 1.6 s of events 0.2 s apart: three pings' worth of time, no ping due
    event = b"id: %s\\ndata: %d\\n\\n" % (broker.publish("busy", i).encode(), i)
    assert read_exactly(len(chunk(event))) == chunk(event)
    gevent.sleep(0.2)
assert read_exactly(len(ping)) == ping  # idle again: the next ping
assert reader.result == [], reader.result  # the stream's greenlet never woke
stream.close()
print("ok")
"""
    )


def test_only_the_thread_that_enabled_them_writes_directly() -> None:
    """Another OS thread (a broker's reader thread without gevent) must wake the stream instead."""
    server_side, client_side = socket.socketpair()
    try:
        connection = ClientConnection(server_side)
        assert not connection.can_write_now()  # not enabled
        connection.write_through(chunked=False, on_sent=None)
        assert not connection.can_write_now()  # enabled, but the stream is not waiting
        connection.idle = True
        assert connection.can_write_now()
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(connection.can_write_now()))
        thread.start()
        thread.join(5)
        assert seen == [False]
        assert connection.write_now(b"data: x\n\n")
        client_side.settimeout(5)
        assert client_side.recv(100) == b"data: x\n\n"  # HTTP/1.0: no chunk framing
    finally:
        server_side.close()
        client_side.close()


def test_a_subscriber_resuming_ahead_of_the_log_gets_no_event_twice() -> None:
    """A ``Last-Event-ID`` the store knows but this process's log has not read yet (a
    RedisBroker whose reader is behind a publish made by another process): once the log reads
    the events up to it, they are the client's already; only the later ones are written."""
    run_under_gevent(
        SERVE
        + """
class Lagging(MemoryBroker):
    # Knows ids its log has not reached yet, as Redis knows an event published elsewhere.
    def locate(self, log, last_id):
        return (int(last_id.partition(":")[2]), 0)

broker = Lagging()
epoch = broker.publish("other", 0).partition(":")[0]  # seq 1
stream = serve(broker.subscribe("news", last_event_id=f"{epoch}:3"))
reader = Next(stream)
ids = [broker.publish("news", n) for n in (2, 3, 4)]  # seqs 2, 3, 4: the log reads them now
assert ids[1] == f"{epoch}:3", ids
expected = chunk(b"id: %s\\ndata: 4\\n\\n" % ids[2].encode())
assert read_exactly(len(expected)) == expected
later = b"id: %s\\ndata: 5\\n\\n" % broker.publish("news", 5).encode()
assert read_exactly(len(chunk(later))) == chunk(later)
stream.close()
print("ok")
"""
    )


def test_a_subscriber_overflowing_with_a_direct_write_pending_is_cut_off() -> None:
    """A client that stopped reading, the rest of a direct write still to go out, falls more
    than ``max_pending`` behind: its connection is shut down, so that its stream ends rather
    than waiting for ever to write that rest."""
    run_under_gevent(
        SERVE
        + """
broker = MemoryBroker(max_pending=10)
subscription = broker.subscribe("stuck")
stream = serve(subscription)
reader = Next(stream)
for i in range(10):  # far more than the socket buffers hold: the client reads nothing
    broker.publish("stuck", str(i) * 900_000)
gevent.sleep(0)  # the hub's turn: the direct write, the socket takes part of it
assert not subscription.overflowed
for i in range(11):  # then one more than max_pending
    broker.publish("stuck", i)
until(lambda: reader.result == [StopIteration])
assert subscription.overflowed
print("ok")
"""
    )


def test_a_subscriber_overflowing_before_its_direct_write_gets_none() -> None:
    """Events published in one hub turn overflow a waiting subscriber: nothing more is written
    to it directly (its client reads nothing: the stream would wait for ever to write the rest);
    its stream ends."""
    run_under_gevent(
        SERVE
        + """
broker = MemoryBroker(max_pending=5)
subscription = broker.subscribe("stuck")
stream = serve(subscription)
reader = Next(stream)
for i in range(6):  # one more than max_pending, far more than the socket buffers hold
    broker.publish("stuck", str(i) * 900_000)
assert subscription.overflowed
until(lambda: reader.result == [StopIteration])
print("ok")
"""
    )


def test_a_source_wrapping_a_subscription_sees_every_frame() -> None:
    """A frame source that passes attach() through to the subscription it wraps still gets
    to rewrite each frame: the subscription writes directly only as its stream's own source."""
    run_under_gevent(
        SERVE
        + """
class Marked:
    def __init__(self, inner):
        self.inner = inner
    def read_frames(self, timeout):
        frames = self.inner.read_frames(timeout)
        return b": marked\\n" + frames if frames else frames
    def attach(self, connection):
        self.inner.attach(connection)  # for the stuck-client cut-off
    def wake_reader(self):
        self.inner.wake_reader()
    def close(self):
        self.inner.close()

stream = serve(Marked(broker.subscribe("wrapped")))
reader = Next(stream)
frame = b"id: %s\\ndata: 1\\n\\n" % broker.publish("wrapped", 1).encode()
until(lambda: reader.result, timeout=5)  # the stream's greenlet read it, through the wrapper
assert reader.result == [b": marked\\n" + frame], reader.result
stream.close()
print("ok")
"""
    )
