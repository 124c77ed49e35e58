"""A minimal raw-socket event-stream server: the practical ceiling of the load client.

One thread, one ``selectors`` (epoll) loop, no framework, no HTTP library: it parses the request
line, answers with ``Connection: close`` and writes frames straight to the socket. It does the
same per-event work as the other servers' user code (build the dict, JSON-encode it, with
pydantic-core when it is installed) and batches
frames into 64 KiB writes. ``/stream?pre=1`` skips even the encoding and sends one pre-encoded
block over and over: what the client can count at most.

Usage: ``python raw_server.py PORT``.
"""

from __future__ import annotations

import heapq
import json
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from common import PING, event, server_stats

try:  # the fastest JSON encoder at hand, as a ceiling should
    from pydantic_core import to_json as _to_json
except ImportError:  # pragma: no cover

    def _to_json(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
_JSON = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_PING_FRAME = b": ping\n\n"
_BATCH = 64 * 1024


def _frame(seq: int) -> bytes:
    return b"data: " + _to_json(event(seq)) + b"\n\n"


def _stream_chunks(n: int, pre: bool) -> Iterator[bytes]:
    if pre:
        frame = _frame(0)
        per_block = _BATCH // len(frame)
        block = frame * per_block
        for _ in range(n // per_block):
            yield block
        if n % per_block:
            yield frame * (n % per_block)
        return
    parts: list[bytes] = []
    size = 0
    for i in range(n):
        frame = _frame(i)
        parts.append(frame)
        size += len(frame)
        if size >= _BATCH:
            yield b"".join(parts)
            parts = []
            size = 0
    if parts:
        yield b"".join(parts)


class _Conn:
    __slots__ = ("sock", "inbuf", "out", "chunks", "close_when_flushed", "channel", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.out = bytearray()
        self.chunks: Iterator[bytes] | None = None
        self.close_when_flushed = False
        self.channel: str | None = None
        self.writing = False


class RawServer:
    """The event loop and the endpoints."""

    def __init__(self, port: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.timer_seq = 0
        self.idle: set[_Conn] = set()
        self.channels: dict[str, set[_Conn]] = {}
        self.open: set[_Conn] = set()
        # Connections with frames queued by publishes in this loop iteration: flushed once at
        # its end, so that a burst of publishes goes out in one write per subscriber.
        self.dirty: set[_Conn] = set()

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.timer_seq, callback))

    def serve(self) -> None:
        self.later(PING, self._ping_idle)
        while True:
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else 1.0
            for key, mask in self.sel.select(timeout):
                if key.data is None:
                    self._accept()
                    continue
                conn: _Conn = key.data
                if mask & selectors.EVENT_READ:
                    self._read(conn)
                if mask & selectors.EVENT_WRITE and conn in self.open:
                    self._flush(conn)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if self.dirty:
                dirty = self.dirty
                self.dirty = set()
                for conn in dirty:
                    if conn in self.open and not conn.writing:
                        self._flush(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self.open.add(conn)
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        if conn not in self.open:
            return
        self.open.discard(conn)
        self.idle.discard(conn)
        if conn.channel is not None:
            self.channels[conn.channel].discard(conn)
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if conn.inbuf is None:  # already answering: the client sends nothing more
            return
        conn.inbuf += data
        if b"\r\n\r\n" in conn.inbuf:
            request_line = conn.inbuf.split(b"\r\n", 1)[0].decode("latin-1")
            conn.inbuf = None  # type: ignore[assignment]
            method, target, _ = request_line.split(" ", 2)
            self._dispatch(conn, method, target)

    def _send(self, conn: _Conn, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out += data[sent:]
            self._want_write(conn, True)
        elif conn.close_when_flushed and conn.chunks is None:
            self._close(conn)

    def _want_write(self, conn: _Conn, on: bool) -> None:
        if conn.writing != on:
            conn.writing = on
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
            self.sel.modify(conn.sock, events, conn)

    def _flush(self, conn: _Conn) -> None:
        while True:
            if not conn.out:
                chunk = next(conn.chunks, None) if conn.chunks is not None else None
                if chunk is None:
                    conn.chunks = None
                    if conn.close_when_flushed:
                        self._close(conn)
                    else:
                        self._want_write(conn, False)
                    return
                conn.out += chunk
            try:
                sent = conn.sock.send(conn.out)
            except BlockingIOError:
                self._want_write(conn, True)
                return
            except OSError:
                self._close(conn)
                return
            del conn.out[:sent]
            if conn.out:
                self._want_write(conn, True)
                return

    def _finish(self, conn: _Conn) -> None:
        conn.close_when_flushed = True
        if not conn.out and conn.chunks is None:
            self._close(conn)

    def _dispatch(self, conn: _Conn, method: str, target: str) -> None:
        url = urlsplit(target)
        args = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/health":
            self._send(conn, _OK)
            self._finish(conn)
        elif path == "/stream":
            conn.out += _HEAD
            conn.chunks = _stream_chunks(int(args.get("n", 1000)), args.get("pre") == "1")
            conn.close_when_flushed = True
            self._flush(conn)
        elif path == "/sleepy":
            self._send(conn, _HEAD)
            self._sleepy(conn, 0, int(args.get("n", 5)), float(args.get("sleep", 1.0)))
        elif path in ("/idle", "/idle_gen"):  # no generator here: both are the same
            self._send(conn, _HEAD)
            self.idle.add(conn)
        elif path == "/sub":
            conn.channel = args.get("channel", "c")
            self.channels.setdefault(conn.channel, set()).add(conn)
            self._send(conn, _HEAD)
        elif path == "/publish" and method == "POST":
            frame = _frame(int(args.get("seq", 0)))
            for sub in self.channels.get(args.get("channel", "c"), ()):
                sub.out += frame
                self.dirty.add(sub)
            self._send(conn, _OK)
            self._finish(conn)
        elif path == "/stats":
            body = json.dumps(server_stats()).encode()
            self._send(conn, _JSON % len(body) + body)
            self._finish(conn)
        elif path == "/first":
            self._send(conn, _HEAD + _frame(0))
            self._finish(conn)
        else:
            self._send(conn, _NOT_FOUND)
            self._finish(conn)

    def _sleepy(self, conn: _Conn, i: int, n: int, pause: float) -> None:
        if conn not in self.open:
            return
        self._send(conn, _frame(i))
        if i + 1 < n:
            self.later(pause, lambda: self._sleepy(conn, i + 1, n, pause))
        else:
            self._finish(conn)

    def _ping_idle(self) -> None:
        for conn in list(self.idle):
            self._send(conn, _PING_FRAME)
        self.later(PING, self._ping_idle)


if __name__ == "__main__":
    RawServer(int(sys.argv[1])).serve()
