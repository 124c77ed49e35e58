"""Hundreds of raw event-stream clients in one thread: non-blocking sockets and a selector.

Each client sends one HTTP/1.1 GET, decodes the chunked body and parses events as a browser
would (``sse_sync.client.EventParser``), recording when each arrived.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sse_sync.client import EventParser, MessageEvent


@dataclass
class Received:
    event: MessageEvent
    at: float


class _Chunked:
    """Incremental decoder of a chunked body: feed bytes, get body bytes; ``done`` at the end."""

    def __init__(self) -> None:
        self.buffer = b""
        self.left = 0  # bytes left in the current chunk, then its CRLF
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = []
        while not self.done:
            if self.left:
                take = self.buffer[: self.left]
                if not take:
                    break
                out.append(take)
                self.buffer = self.buffer[len(take) :]
                self.left -= len(take)
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            line = self.buffer[:line_end]
            if line == b"":  # the CRLF after a chunk's data
                self.buffer = self.buffer[2:]
                continue
            size = int(line.split(b";")[0], 16)
            self.buffer = self.buffer[line_end + 2 :]
            if size == 0:
                self.done = True
            self.left = size
        return b"".join(out)


@dataclass
class Client:
    """One streaming client's state."""

    sock: socket.socket
    request: bytes
    head: bytes = b""
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""  # the body as received, before parsing (for frame-level assertions)
    chunked: _Chunked = field(default_factory=_Chunked)
    parser: EventParser = field(default_factory=EventParser)
    received: list[Received] = field(default_factory=list)
    ended: bool = False  # the body ended cleanly (last chunk)
    closed: bool = False  # the connection is gone (EOF or error)
    error: str | None = None

    @property
    def events(self) -> list[MessageEvent]:
        return [r.event for r in self.received]

    def feed(self, data: bytes, now: float) -> None:
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self.chunked.feed(data)
            self.ended = self.chunked.done
        else:
            body = data
        self.raw += body
        self.received += [Received(event, now) for event in self.parser.feed(body)]


class Fleet:
    """Open ``count`` streams of ``path`` (or one per path) to 127.0.0.1:``port``."""

    def __init__(
        self,
        port: int,
        paths: str | Iterable[str],
        count: int = 1,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        path_list = [paths] * count if isinstance(paths, str) else list(paths)
        self.selector = selectors.DefaultSelector()
        self.clients: list[Client] = []
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        try:
            for path in path_list:
                sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Accept: text/event-stream\r\n{extra}\r\n"
                ).encode()
                sock.sendall(request)
                sock.setblocking(False)
                client = Client(sock, request)
                self.clients.append(client)
                self.selector.register(sock, selectors.EVENT_READ, client)
        except BaseException:
            self.close()
            raise

    def pump(self, until: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        """Read from every open client until ``until()`` holds; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what or until!r}: {self.summary()}")
            if not self.selector.get_map():
                raise AssertionError(f"every connection closed before {what!r}: {self.summary()}")
            for key, _ in self.selector.select(min(left, 0.5)):
                client: Client = key.data
                self._read(client)

    def _read(self, client: Client) -> None:
        try:
            data = client.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as exc:
            client.error = repr(exc)
            data = b""
        if data:
            client.feed(data, time.monotonic())
        else:
            client.closed = True
            self.selector.unregister(client.sock)

    def summary(self) -> str:
        counts: dict[int, int] = {}
        for client in self.clients:
            counts[len(client.received)] = counts.get(len(client.received), 0) + 1
        ended = sum(c.ended for c in self.clients)
        closed = sum(c.closed for c in self.clients)
        statuses = {c.status for c in self.clients}
        return f"events->clients {counts}, ended {ended}, closed {closed}, statuses {statuses}"

    def all_have(self, count: int) -> Callable[[], bool]:
        """A condition for :meth:`pump`: every client has received at least ``count`` events."""
        return lambda: all(len(c.received) >= count for c in self.clients)

    def close(self) -> None:
        for client in self.clients:
            try:
                self.selector.unregister(client.sock)
            except (KeyError, ValueError):
                pass
            client.sock.close()
        self.selector.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
