"""The load client: one process, one epoll loop, raw sockets, frames counted without parsing.

``python client.py '<json spec>'`` runs one measurement and prints its result as JSON. The spec
is ``{"scenario": name, "port": p, ...parameters}``; see the ``scenario_*`` functions.

Counting is cheap on purpose, so the client is not what is measured: the body is de-chunked
(HTTP/1.1 chunked transfer coding) and the complete frames of each read are counted with
``bytes.count`` (events are the frames with a ``data:`` line; the rest are comments, pings).
Only the fan-out scenario looks into the data, with one regex per read, for the ``seq`` field.
Sockets are closed with an RST (``SO_LINGER`` 0) so that thousands of them leave no TIME_WAIT.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import selectors
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

_SEQ = re.compile(rb'"seq": ?(-?\d+)')
_LINGER_RST = struct.pack("ii", 1, 0)
_MAX_HEAD = 64 * 1024
_RECV = 256 * 1024


def raise_fd_limit() -> int:
    """Raise this process's open-files limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def request_bytes(path: str, method: str = "GET") -> bytes:
    """An HTTP/1.1 request as a browser's ``EventSource`` would send it."""
    extra = "Content-Length: 0\r\nConnection: close\r\n" if method == "POST" else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Cache-Control: no-cache\r\n{extra}\r\n"
    ).encode()


class Stream:
    """One event-stream response: status, de-chunking and frame counting, fed raw reads."""

    __slots__ = (
        "sock",
        "head",
        "in_body",
        "status",
        "chunked",
        "left",
        "skip",
        "cbuf",
        "tail",
        "sep",
        "frames",
        "events",
        "track",
        "seqs",
        "hits",
        "floor",
        "t_start",
        "t_first_byte",
        "t_first_event",
        "t_end",
        "ended",
        "closed",
        "error",
    )

    def __init__(self, track: bool = False) -> None:
        self.sock: socket.socket | None = None
        self.head = b""
        self.in_body = False
        self.status = 0
        self.chunked = False
        self.left = 0
        self.skip = 0
        self.cbuf = b""
        self.tail = b""
        self.sep = b""
        self.frames = 0
        self.events = 0
        self.track = track
        self.seqs: list[tuple[int, float]] = []
        self.hits = 0  # tracked events with seq >= floor
        self.floor = 0
        self.t_start = 0.0
        self.t_first_byte = 0.0
        self.t_first_event = 0.0
        self.t_end = 0.0
        self.ended = False  # the response body ended properly (last chunk, or close)
        self.closed = False  # the socket is closed (by either side)
        self.error = ""

    def feed(self, data: bytes, now: float) -> None:
        """Take one read from the socket."""
        if not self.in_body:
            if not self.t_first_byte:
                self.t_first_byte = now
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > _MAX_HEAD:
                    self.error = "response head too long"
                return
            head = self.head[:end].lower()
            data = self.head[end + 4 :]
            self.head = b""
            self.in_body = True
            try:
                self.status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.error = f"bad status line {head[:80]!r}"
                return
            if self.status != 200:
                self.error = f"status {self.status}"
            self.chunked = b"transfer-encoding: chunked" in head
            if not data:
                return
        payload = self._dechunk(data) if self.chunked else data
        if payload:
            self._count(payload, now)

    def _dechunk(self, data: bytes) -> bytes:
        if self.cbuf:
            data = self.cbuf + data
            self.cbuf = b""
        out: list[bytes] = []
        pos = 0
        n = len(data)
        while pos < n:
            if self.left:
                take = min(self.left, n - pos)
                out.append(data[pos : pos + take] if take < n or pos else data)
                self.left -= take
                pos += take
            elif self.skip:
                take = min(self.skip, n - pos)
                self.skip -= take
                pos += take
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self.cbuf = data[pos:]
                    break
                size = int(data[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:
                    self.ended = True
                    break
                self.left = size
                self.skip = 2
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def _count(self, payload: bytes, now: float) -> None:
        data = self.tail + payload if self.tail else payload
        if not self.sep:
            # sse-starlette ends lines with CRLF by default, the others with LF.
            self.sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
        cut = data.rfind(self.sep)
        if cut < 0:
            self.tail = data
            if len(data) > _MAX_HEAD:
                self.error = "frame too long"
            return
        cut += len(self.sep)
        complete = data[:cut] if cut < len(data) else data
        self.tail = data[cut:] if cut < len(data) else b""
        self.frames += complete.count(self.sep)
        events = complete.count(b"data:")
        if events:
            if not self.events:
                self.t_first_event = now
            self.events += events
            if self.track:
                for m in _SEQ.findall(complete):
                    seq = int(m)
                    self.seqs.append((seq, now))
                    if seq >= self.floor:
                        self.hits += 1

    @property
    def pings(self) -> int:
        """Frames that carried no event (comments such as ``: ping``)."""
        return self.frames - self.events


def _close(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class Pool:
    """Many streams on one epoll loop.

    Connects are paced: at most ``inflight`` at once and ``rate`` per second, so that the
    server's accept queue does not overflow (the kernel would drop SYNs, and the retries, 1 s
    then 3 s later, would be measured instead of the server).
    """

    def __init__(self, port: int, *, inflight: int = 256, rate: float = 2000.0) -> None:
        self.port = port
        self.inflight = inflight
        self.rate = rate
        self.started = 0
        self.t_first_connect = 0.0
        self.sel = selectors.DefaultSelector()
        self.streams: list[Stream] = []
        self.waiting: list[tuple[Stream, bytes]] = []  # not connected yet, in reverse order
        self.connecting = 0
        self.open = 0
        self.connect_errors = 0
        self.last_read = 0.0  # perf_counter of the last read that brought bytes
        self.handlers: dict[int, Callable[[int], None]] = {}

    def add(self, path: str, count: int, *, track: bool = False) -> list[Stream]:
        """Queue ``count`` streams of ``GET path``; they connect as the loop runs."""
        request = request_bytes(path)
        new = [Stream(track) for _ in range(count)]
        self.streams.extend(new)
        self.waiting[:0] = [(s, request) for s in reversed(new)]
        return new

    def _start_connects(self) -> None:
        if not self.waiting:
            return
        now = time.perf_counter()
        if not self.started:
            self.t_first_connect = now
        allowed = len(self.waiting)
        if self.rate != float("inf"):
            allowed = int((now - self.t_first_connect) * self.rate) + 1 - self.started
        while self.waiting and self.connecting < self.inflight and allowed > 0:
            allowed -= 1
            self.started += 1
            stream, request = self.waiting.pop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            stream.sock = sock
            stream.t_start = time.perf_counter()
            err = sock.connect_ex(("127.0.0.1", self.port))
            if err not in (0, 115):  # EINPROGRESS
                self._fail(stream, f"connect: {os.strerror(err)}")
                continue
            self.connecting += 1
            self.sel.register(sock, selectors.EVENT_WRITE, (stream, request))

    def _fail(self, stream: Stream, error: str) -> None:
        stream.error = stream.error or error
        self.connect_errors += 1
        self._drop(stream)

    def _drop(self, stream: Stream) -> None:
        if stream.sock is not None and not stream.closed:
            stream.closed = True
            stream.t_end = stream.t_end or time.perf_counter()
            try:
                self.sel.unregister(stream.sock)
            except (KeyError, ValueError):
                pass
            _close(stream.sock)

    def pump(self, timeout: float) -> None:
        """Run the loop once: start connects, wait up to ``timeout`` s, handle what is ready."""
        self._start_connects()
        if self.waiting:
            timeout = min(timeout, 0.002)
        for key, mask in self.sel.select(max(timeout, 0.0)):
            data = key.data
            if isinstance(data, int):
                self.handlers[data](mask)
                continue
            stream, request = data
            sock = stream.sock
            if request is not None:  # the connect finished
                self.connecting -= 1
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._fail(stream, f"connect: {os.strerror(err)}")
                    continue
                try:
                    sock.sendall(request)
                except OSError as exc:
                    self._fail(stream, f"send: {exc}")
                    continue
                self.open += 1
                self.sel.modify(sock, selectors.EVENT_READ, (stream, None))
                continue
            try:
                chunk = sock.recv(_RECV)
            except BlockingIOError:
                continue
            except OSError as exc:
                stream.error = stream.error or f"recv: {exc}"
                chunk = b""
            now = time.perf_counter()
            if chunk:
                self.last_read = now
                stream.feed(chunk, now)
            if not chunk or stream.ended or stream.error:
                if not chunk and not stream.chunked and stream.in_body:
                    stream.ended = True  # a close-delimited body ends with the connection
                stream.t_end = now
                self.open -= 1
                self._drop(stream)

    def run(self, until: float, done: Callable[[], bool]) -> bool:
        """Pump until ``done()`` or the ``until`` deadline (perf_counter); return ``done()``."""
        while True:
            if done():
                return True
            now = time.perf_counter()
            if now >= until:
                return False
            self.pump(min(0.05, until - now))

    def close_all(self) -> None:
        """Close every stream (RST) and the loop."""
        for stream, _ in self.waiting:
            stream.error = stream.error or "never connected"
        self.waiting.clear()
        for stream in self.streams:
            self._drop(stream)
        self.sel.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _errors(streams: list[Stream]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in streams:
        if s.error:
            key = s.error[:60]
            counts[key] = counts.get(key, 0) + 1
    return counts


# --- process metrics (the server's side, read from /proc) ---------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` together, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / _TICK


def fd_count(pids: list[int]) -> int:
    """Open file descriptors of ``pids`` together."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def os_threads(pids: list[int]) -> int:
    """OS threads of ``pids`` together (``Threads:`` of ``/proc/<pid>/status``)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def server_stats(port: int) -> dict[str, Any]:
    """The server's ``GET /stats`` (live greenlets, ping interval); ``{}`` where it has none."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/stats")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
    except OSError:
        return {}
    if response.status != 200:
        return {}
    return dict(json.loads(body))


def redis_clients(port: int) -> int:
    """``connected_clients`` of the Redis server on ``port`` (minus this query's connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO clients\r\n")
        data = b""
        while b"connected_clients:" not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    match = re.search(rb"connected_clients:(\d+)", data)
    return int(match.group(1)) - 1 if match else -1


# --- scenarios ---------------------------------------------------------------------------


def scenario_throughput(port: int, path: str, n: int, timeout: float = 120.0) -> dict[str, Any]:
    """One stream of ``n`` events as fast as the server sends them: events per second."""
    stream = Stream()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    deadline = time.perf_counter() + timeout
    try:
        stream.sock = sock
        stream.t_start = time.perf_counter()
        sock.sendall(request_bytes(path))
        while time.perf_counter() < deadline:
            chunk = sock.recv(_RECV)
            now = time.perf_counter()
            if not chunk:
                if not stream.chunked and stream.in_body:
                    stream.ended = True
                break
            stream.feed(chunk, now)
            if stream.ended or stream.error:
                break
        stream.t_end = time.perf_counter()
    except OSError as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    finally:
        _close(sock)
    elapsed = stream.t_end - stream.t_start
    ok = stream.ended and stream.events == n and not stream.error
    return {
        "ok": ok,
        "events": stream.events,
        "expected": n,
        "seconds": elapsed,
        "events_per_s": stream.events / elapsed if elapsed > 0 else 0.0,
        "error": stream.error or ("" if ok else "stream ended early or timed out"),
    }


def scenario_concurrent(
    port: int, path: str, clients: int, n: int, timeout: float = 30.0
) -> dict[str, Any]:
    """``clients`` streams of ``n`` events each at once: how many finish, and when."""
    pool = Pool(port, rate=float("inf"))
    streams = pool.add(path, clients)
    start = time.perf_counter()

    def finished() -> bool:
        return all(s.closed or s.error for s in streams) and not pool.waiting

    pool.run(start + timeout, finished)
    complete = [s for s in streams if s.ended and s.events == n and not s.error]
    times = [s.t_end - start for s in complete]
    pool.close_all()
    return {
        "ok": len(complete) == clients,
        "clients": clients,
        "finished": len(complete),
        "events": sum(s.events for s in streams),
        "expected": clients * n,
        "all_done_s": max(times) if len(complete) == clients else None,
        "p50_done_s": statistics.median(times) if times else None,
        "timeout_s": timeout,
        "errors": _errors(streams),
    }


def scenario_idle(
    port: int,
    path: str,
    streams: int,
    pids: list[int],
    window: float = 5.0,
    connect_timeout: float = 30.0,
) -> dict[str, Any]:
    """``streams`` idle streams: how many are held, server RSS and CPU, greenlets and threads.

    The window starts once every stream got its first bytes (and 1.2 s more, so that each
    saw a ping at 1 s pings); a stream is held if it got a ping in the window, so the window
    must be longer than the ping interval. CPU is the worker's ``utime + stime`` over the
    window: ``cpu_percent`` of one core, and per 1,000 streams. Greenlets are counted by the
    server (``GET /stats``) before the streams and after the window, outside it.
    """
    before_stats = server_stats(port)
    rss_before = rss_bytes(pids)
    pool = Pool(port)
    opened = pool.add(path, streams)
    start = time.perf_counter()

    def all_started() -> bool:
        return not pool.waiting and all(s.t_first_byte or s.closed for s in opened)

    pool.run(start + connect_timeout, all_started)
    ramp = time.perf_counter() - start
    pool.run(time.perf_counter() + 1.2, lambda: False)  # let every stream see a ping
    before = [s.pings for s in opened]
    cpu0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    pool.run(t0 + window, lambda: False)
    cpu1 = cpu_seconds(pids)
    elapsed = time.perf_counter() - t0
    rss_after = rss_bytes(pids)
    fds = fd_count(pids)
    threads = os_threads(pids)
    pings = sum(s.pings - b for s, b in zip(opened, before, strict=True))
    held = sum(1 for s, b in zip(opened, before, strict=True) if s.pings > b and not s.closed)
    after_stats = server_stats(port) if held else {}
    pool.close_all()
    cpu = cpu1 - cpu0
    greenlets = after_stats.get("greenlets")
    greenlets_before = before_stats.get("greenlets")
    return {
        "ok": held == streams,
        "streams": streams,
        "held": held,
        "ramp_s": ramp,
        "window_s": elapsed,
        "server_ping_s": before_stats.get("ping"),
        "rss_before_mib": rss_before / 2**20,
        "rss_after_mib": rss_after / 2**20,
        "rss_per_stream_kib": (rss_after - rss_before) / streams / 1024,
        "pings": pings,
        "pings_per_stream_per_s": pings / streams / elapsed,
        "cpu_s": cpu,
        "cpu_percent": 100 * cpu / elapsed,
        "cpu_percent_per_1000": 100 * cpu / elapsed / streams * 1000,
        "cpu_us_per_ping": 1e6 * cpu / pings if pings else None,
        "greenlets": greenlets,
        "greenlets_per_stream": (greenlets - greenlets_before) / streams
        if greenlets is not None and greenlets_before is not None
        else None,
        "os_threads": threads,
        "server_fds": fds,
        "errors": _errors(opened),
    }


class _Publisher:
    """POSTs ``/publish`` on fresh connections from inside the loop, without blocking it."""

    def __init__(self, pool: Pool, channel: str) -> None:
        self.pool = pool
        self.channel = channel
        self.sent: dict[int, float] = {}
        self.failed: list[str] = []
        self.ok = 0
        self._next_key = -1
        self._inbox: dict[int, tuple[socket.socket, bytes]] = {}

    @property
    def pending(self) -> int:
        """Publishes sent and not answered yet."""
        return len(self._inbox)

    def publish(self, seq: int) -> None:
        sock = socket.socket()
        self.sent[seq] = time.perf_counter()
        try:
            sock.connect(("127.0.0.1", self.pool.port))
            sock.sendall(request_bytes(f"/publish?channel={self.channel}&seq={seq}", "POST"))
        except OSError as exc:
            self.failed.append(f"publish {seq}: {exc}")
            _close(sock)
            return
        sock.setblocking(False)
        key = self._next_key
        self._next_key -= 1
        self._inbox[key] = (sock, b"")
        self.pool.handlers[key] = lambda mask: self._read(key)
        self.pool.sel.register(sock, selectors.EVENT_READ, key)

    def _read(self, key: int) -> None:
        sock, data = self._inbox[key]
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data += chunk
        self._inbox[key] = (sock, data)
        if chunk and b"\r\n\r\n" not in data:
            return
        if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
            self.ok += 1
        else:
            self.failed.append(f"publish answered {data[:40]!r}")
        self.pool.sel.unregister(sock)
        del self.pool.handlers[key]
        del self._inbox[key]
        _close(sock)


def _subscribe(
    port: int, channel: str, subscribers: int, timeout: float
) -> tuple[Pool, list[Stream], _Publisher, int, float]:
    """Connect ``subscribers`` streams to ``channel`` and warm them up.

    Warm-up events (negative ``seq``) are published every 0.5 s until every subscriber has
    received one, so that no subscriber still being set up counts as a loss. Returns the pool,
    the streams (their warm-up events forgotten), the publisher, how many subscribers got a
    warm-up event and the seconds all this took.
    """
    pool = Pool(port)
    subs = pool.add(f"/sub?channel={channel}", subscribers, track=True)
    publisher = _Publisher(pool, channel)
    start = time.perf_counter()
    pool.run(start + timeout, lambda: not pool.waiting and pool.connecting == 0)
    warm_seq = -1
    while time.perf_counter() < start + timeout:
        publisher.publish(warm_seq)
        warm_seq -= 1
        if pool.run(time.perf_counter() + 0.5, lambda: all(s.seqs or s.closed for s in subs)):
            break
    warm = sum(1 for s in subs if s.seqs and not s.closed)
    for s in subs:
        s.seqs.clear()
        s.hits = 0
    return pool, subs, publisher, warm, time.perf_counter() - start


def _not_set_up(subscribers: int, warm: int, setup_s: float, timeout: float) -> dict[str, Any]:
    """The result of a run whose server could not even hold its subscribers."""
    return {
        "ok": False,
        "subscribers": subscribers,
        "warm_subscribers": warm,
        "setup_s": setup_s,
        "error": f"only {warm:,} of {subscribers:,} subscribers set up in {timeout:g} s",
    }


def _tally(
    subs: list[Stream], sent: dict[int, float], first: int, count: int
) -> tuple[list[float], int, int, int]:
    """Events ``first`` to ``first + count - 1`` as the subscribers got them.

    Returns the latency of every (subscriber, event) pair that arrived (from the start of its
    publish request to the read that brought it), how many pairs were lost (never arrived),
    duplicated, and out of order. Other events (warm-up, other steps) are ignored.
    """
    end = first + count
    latencies: list[float] = []
    duplicates = 0
    out_of_order = 0
    lost = 0
    for s in subs:
        seen: set[int] = set()
        last = first - 1
        for seq, t in s.seqs:
            if seq < first or seq >= end:
                continue
            if seq in seen:
                duplicates += 1
                continue
            if seq < last:
                out_of_order += 1
            last = seq
            seen.add(seq)
            latencies.append(t - sent[seq])
        lost += count - len(seen)
    return latencies, lost, duplicates, out_of_order


def scenario_fanout(
    port: int,
    subscribers: int,
    pids: list[int],
    channel: str = "bench",
    publishes: int = 20,
    interval: float = 0.1,
    timeout: float = 60.0,
    warmup_timeout: float = 30.0,
    redis_port: int | None = None,
) -> dict[str, Any]:
    """``subscribers`` streams on one channel, ``publishes`` publishes ``interval`` s apart.

    With ``interval`` 0 the publishes are a burst: all sent at once, on their own connections
    (their order is then up to the server, so ``out_of_order`` is reported, not a failure).
    Otherwise one publisher sends each at its time, once the previous one was answered.

    Before measuring, warm-up events (negative ``seq``) are published every 0.5 s until every
    subscriber has received one, so that no subscriber still being set up counts as a loss.
    Latency is from the moment the client starts the publish request to the read that brings
    the event, for every (subscriber, event) pair.
    """
    pool, subs, publisher, warm, setup_s = _subscribe(port, channel, subscribers, warmup_timeout)
    server_fds = fd_count(pids)
    redis_conns = redis_clients(redis_port) if redis_port else None
    if warm < subscribers:  # the server could not even hold them: nothing to measure
        pool.close_all()
        return _not_set_up(subscribers, warm, setup_s, warmup_timeout) | {"server_fds": server_fds}
    total = subscribers * publishes
    received = 0

    def delivered() -> int:
        return sum(s.hits for s in subs)

    pool.run(time.perf_counter() + 10, lambda: not publisher.pending)
    t0 = time.perf_counter()
    hard_deadline = t0 + publishes * interval + 2 * timeout
    deadline = hard_deadline
    next_seq = 0
    while True:
        now = time.perf_counter()
        # A burst (interval 0): every publish at once, as from many publishers. Paced: one
        # publisher, each publish sent at its time once the previous one was answered.
        due = t0 + next_seq * interval
        if next_seq < publishes and now >= due and (not interval or not publisher.pending):
            publisher.publish(next_seq)
            next_seq += 1
            if next_seq == publishes:
                deadline = min(hard_deadline, time.perf_counter() + timeout)
            continue
        if next_seq == publishes:
            received = delivered()
            if received >= total or now >= deadline:
                break
        elif now >= hard_deadline:
            break
        wake = due if next_seq < publishes and not publisher.pending else now + 0.01
        pool.pump(min(0.01, max(0.0, wake - now)))
    # Let late duplicates show up, and the publish responses come back.
    pool.run(time.perf_counter() + 0.3, lambda: False)
    latencies, lost, duplicates, out_of_order = _tally(subs, publisher.sent, 0, publishes)
    pool.close_all()
    return {
        "ok": lost == 0
        and duplicates == 0
        and warm == subscribers
        and (out_of_order == 0 or not interval),
        "subscribers": subscribers,
        "warm_subscribers": warm,
        "setup_s": setup_s,
        "publishes": publishes,
        "publish_ok": publisher.ok,
        "publish_errors": publisher.failed[:5],
        "expected": total,
        "received": len(latencies),
        "lost": lost,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
        "max_ms": 1000 * max(latencies) if latencies else None,
        "server_fds": server_fds,
        "redis_connections": redis_conns,
        "errors": _errors(subs),
    }


def scenario_sustained(
    port: int,
    subscribers: int,
    pids: list[int],
    channel: str,
    *,
    start_rate: float,
    factor: float,
    step: float,
    max_steps: int,
    patience: int,
    refine: int,
    p99_ms: float,
    drain: float,
    warmup_timeout: float = 30.0,
) -> dict[str, Any]:
    """The most deliveries per second one server holds: p99 under ``p99_ms``, nothing lost.

    A delivery is one event reaching one subscriber, so a rate of ``R`` deliveries/s is
    ``R / subscribers`` publishes/s to the ``subscribers`` streams of one channel. A step search:
    each step publishes at a steady rate for ``step`` seconds (open loop: each publish on its own
    connection at its time, answered or not), then waits up to ``drain`` seconds for the last
    deliveries. A step *passes* when every (subscriber, event) pair arrived, once, with p99
    latency under ``p99_ms``, and the client kept the pace (95 %). Rates start at ``start_rate``
    and grow by ``factor`` (``max_steps`` rates at most) until ``patience`` rates in a row
    failed; a failed step is run once more (a shared machine hiccups). Then ``refine`` steps
    bisect (geometrically) between the best passing rate and the next one, which failed.
    ``max_deliveries_per_s`` is the best passing rate (0: not even the first); the steps are all
    in ``steps``, each with the server's CPU over the step and its drain (``utime + stime`` of
    ``pids``: publishes and deliveries alike). ``run.py`` passes every parameter of the search
    (its ``SUSTAINED_DEFAULTS``, or the case's).
    """
    pool, subs, publisher, warm, setup_s = _subscribe(port, channel, subscribers, warmup_timeout)
    server_fds = fd_count(pids)
    if warm < subscribers:
        pool.close_all()
        return _not_set_up(subscribers, warm, setup_s, warmup_timeout) | {"server_fds": server_fds}
    next_seq = 0

    def quiet() -> bool:
        return not publisher.pending and time.perf_counter() - pool.last_read > 0.3

    def run_step(rate: float) -> dict[str, Any]:
        nonlocal next_seq
        pool.run(time.perf_counter() + 10, quiet)  # what a failed step left in flight
        per_s = rate / subscribers
        count = max(2, round(per_s * step))
        first = next_seq
        next_seq += count
        for s in subs:
            s.seqs.clear()
            s.hits = 0
            s.floor = first
        cpu0 = cpu_seconds(pids)
        t0 = time.perf_counter()
        sent = 0
        while sent < count:
            now = time.perf_counter()
            due = t0 + sent / per_s
            burst = 0
            while sent < count and now >= due and burst < 8:
                publisher.publish(first + sent)
                sent += 1
                burst += 1
                due = t0 + sent / per_s
            pool.pump(min(0.005, max(0.0, due - time.perf_counter())))
        spent = publisher.sent[first + count - 1] - publisher.sent[first]
        kept = subscribers * (count - 1) / spent if spent > 0 else rate
        expected = subscribers * count
        pool.run(time.perf_counter() + drain, lambda: sum(s.hits for s in subs) >= expected)
        cpu = cpu_seconds(pids) - cpu0
        latencies, lost, duplicates, out_of_order = _tally(subs, publisher.sent, first, count)
        p99 = 1000 * _percentile(latencies, 99)
        reasons = []
        if lost or duplicates:
            reasons.append(f"{lost:,} lost, {duplicates:,} duplicated after {drain:g} s")
        if not p99 < p99_ms:
            reasons.append(f"p99 {p99:,.0f} ms")
        if kept < 0.95 * rate:
            reasons.append(f"the client published at {kept:,.0f}/s only")
        return {
            "deliveries_per_s": rate,
            "publishes_per_s": per_s,
            "publishes": count,
            "kept_deliveries_per_s": kept,
            "expected": expected,
            "received": len(latencies),
            "lost": lost,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "p50_ms": 1000 * _percentile(latencies, 50),
            "p99_ms": p99,
            "max_ms": 1000 * max(latencies) if latencies else None,
            "cpu_percent": 100 * cpu / (time.perf_counter() - t0),
            "cpu_us_per_delivery": 1e6 * cpu / len(latencies) if latencies else None,
            "passed": not reasons,
            "why": "; ".join(reasons),
        }

    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None  # the lowest failing rate above the best
    rate = start_rate
    misses = 0
    for _ in range(max_steps):
        result = run_step(rate)
        steps.append(result)
        if not result["passed"]:
            result = run_step(rate)
            steps.append(result)
        if result["passed"]:
            best, failed, misses = result, None, 0
        else:
            failed = failed or result
            misses += 1
            if misses == patience:
                break
        rate *= factor
    if best is not None and failed is not None:
        low, high = best["deliveries_per_s"], failed["deliveries_per_s"]
        for _ in range(refine):
            result = run_step((low * high) ** 0.5)
            steps.append(result)
            if result["passed"]:
                best, low = result, result["deliveries_per_s"]
            else:
                failed, high = result, result["deliveries_per_s"]
    pool.close_all()
    at_best = best or {}
    return {
        "ok": not publisher.failed,
        "subscribers": subscribers,
        "warm_subscribers": warm,
        "setup_s": setup_s,
        "max_deliveries_per_s": at_best.get("deliveries_per_s", 0.0),
        "max_publishes_per_s": at_best.get("publishes_per_s", 0.0),
        "p50_ms": at_best.get("p50_ms"),
        "p99_ms": at_best.get("p99_ms"),
        "lost": at_best.get("lost"),
        "cpu_percent": at_best.get("cpu_percent"),
        "cpu_us_per_delivery": at_best.get("cpu_us_per_delivery"),
        "failed_deliveries_per_s": failed["deliveries_per_s"] if failed else None,
        "failed_p99_ms": failed["p99_ms"] if failed else None,
        "failed_lost": failed["lost"] if failed else None,
        "failed_why": failed["why"] if failed else "every step passed (max_steps reached)",
        "step_count": len(steps),
        "steps": steps,
        "server_fds": server_fds,
        "publish_errors": publisher.failed[:5],
        "error": "; ".join(publisher.failed[:3]),
    }


def scenario_first_event(port: int, path: str, count: int = 100) -> dict[str, Any]:
    """``count`` sequential connections: time from ``connect()`` to the first complete event."""
    times: list[float] = []
    errors: list[str] = []
    for _ in range(count):
        stream = Stream()
        t0 = time.perf_counter()
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as exc:
            errors.append(str(exc))
            continue
        try:
            sock.sendall(request_bytes(path))
            while not stream.events and not stream.error:
                chunk = sock.recv(_RECV)
                if not chunk:
                    break
                stream.feed(chunk, time.perf_counter())
        except OSError as exc:
            stream.error = str(exc)
        finally:
            _close(sock)
        if stream.events and not stream.error:
            times.append(stream.t_first_event - t0)
        else:
            errors.append(stream.error or "no event")
    return {
        "ok": len(times) == count,
        "count": count,
        "p50_ms": 1000 * _percentile(times, 50),
        "p99_ms": 1000 * _percentile(times, 99),
        "errors": errors[:5],
    }


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": scenario_throughput,
    "concurrent": scenario_concurrent,
    "idle": scenario_idle,
    "idle_cpu": scenario_idle,
    "fanout": scenario_fanout,
    "sustained": scenario_sustained,
    "first_event": scenario_first_event,
}


def main(argv: list[str]) -> int:
    """Run the scenario of the JSON spec in ``argv[1]`` and print its result as JSON."""
    spec = json.loads(argv[1])
    raise_fd_limit()
    scenario = SCENARIOS[spec.pop("scenario")]
    result = scenario(**spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
