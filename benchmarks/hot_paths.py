"""Micro-benchmarks of the per-frame and per-wake-up paths of a stream, in process.

``python benchmarks/hot_paths.py`` (threads) and ``python benchmarks/hot_paths.py gevent``
(monkey-patched first); ``--quick`` for one short round (what the test suite runs). Each figure
is the best of several rounds: compare runs on one machine, before and after a change.

* idle wake-up: one turn of ``EventStream.__next__``'s wait loop, with a source that has
  nothing (its read times out at once): what an idle stream pays every ``DISCONNECT_POLL``.
* busy next(): one ``__next__`` with frames always waiting: one read, one write.
* hand-over: frames from a generator through ``Producer`` and ``EventStream`` to the server.
* wake: ``set()`` + ``wait()``, a ``wait(0)`` that times out, and (gevent) two greenlets
  waking each other.
"""

from __future__ import annotations

import sys

GEVENT = "gevent" in sys.argv[1:]
if GEVENT:
    from gevent import monkey

    monkey.patch_all()

import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from sse_sync._event import encode_item  # noqa: E402
from sse_sync._producer import Producer  # noqa: E402
from sse_sync._server import ClientConnection  # noqa: E402
from sse_sync._stream import EventStream  # noqa: E402
from sse_sync._wake import new_wake  # noqa: E402

QUICK = "--quick" in sys.argv[1:]
ROUNDS = 1 if QUICK else 7
SCALE = 100 if QUICK else 1


class Idle:
    """A source with nothing for ``n`` reads (each times out at once), then one frame."""

    def __init__(self, n: int) -> None:
        self.n = n

    def read_frames(self, timeout: float | None) -> bytes | None:
        self.n -= 1
        return None if self.n > 0 else b"data: x\n\n"

    def attach(self, connection: ClientConnection) -> None:
        pass

    def wake_reader(self) -> None:
        pass

    def close(self) -> None:
        pass


class Ready(Idle):
    """A source that always has a frame."""

    def read_frames(self, timeout: float | None) -> bytes | None:
        return b"data: x\n\n"


class Worker:
    """Stands in for a gunicorn worker: its SIGTERM handler is its method, ``alive`` is read."""

    __module__ = "gunicorn.workers.bench"

    def __init__(self) -> None:
        self.alive = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False


def best(measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(ROUNDS))


def idle_wakeup(environ: dict[str, Any], n: int = 20_000) -> float:
    """ns per turn of an idle stream's wait loop."""
    n //= SCALE

    def measure() -> float:
        stream = EventStream(Idle(n), ping=3600, open_timeout=3600)
        stream.bind(environ)
        started = time.perf_counter()
        next(stream)
        elapsed = time.perf_counter() - started
        stream.close()
        return elapsed / n * 1e9

    return best(measure)


def busy_next(environ: dict[str, Any], n: int = 100_000) -> float:
    """ns per ``__next__`` with frames always waiting."""
    n //= SCALE

    def measure() -> float:
        stream = EventStream(Ready(0), ping=15, open_timeout=3600)
        stream.bind(environ)
        step = stream.__next__
        started = time.perf_counter()
        for _ in range(n):
            step()
        elapsed = time.perf_counter() - started
        stream.close()
        return elapsed / n * 1e9

    return best(measure)


def hand_over(n: int = 100_000, runner: str = "auto") -> float:
    """ms to carry ``n`` frames from a generator through Producer and EventStream."""
    n //= SCALE

    def measure() -> float:
        producer = Producer(iter(range(n)), encode_item, runner=runner)  # type: ignore[arg-type]
        stream = EventStream(producer, ping=None)
        started = time.perf_counter()
        for _chunk in stream:
            pass
        return (time.perf_counter() - started) * 1e3

    return best(measure)


def wake(n: int = 100_000) -> tuple[float, float]:
    """ns per ``set()`` + ``wait()`` (already set), and per ``wait(0)`` that times out."""
    n //= SCALE
    if GEVENT:
        import gevent

        gevent.get_hub()
    flag = new_wake()

    def cycle() -> None:
        flag.set()
        flag.wait(1.0)
        flag.clear()

    def timeout() -> None:
        flag.wait(0)

    cycles = min(timeit.repeat(cycle, number=n, repeat=ROUNDS)) / n * 1e9
    timeouts = min(timeit.repeat(timeout, number=n // 10, repeat=ROUNDS)) / (n // 10) * 1e9
    return cycles, timeouts


def ping_pong(n: int = 50_000) -> float:
    """ns per wake-up when two greenlets wake each other through two wakes (gevent)."""
    import gevent

    n //= SCALE

    def measure() -> float:
        ping, pong = new_wake(), new_wake()

        def other() -> None:
            for _ in range(n):
                ping.wait()
                ping.clear()
                pong.set()

        greenlet = gevent.spawn(other)
        gevent.sleep(0)
        started = time.perf_counter()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
        elapsed = time.perf_counter() - started
        greenlet.join()
        return elapsed / (2 * n) * 1e9

    return best(measure)


def main() -> None:
    worker = Worker()
    signal.signal(signal.SIGTERM, worker.handle_exit)
    server_side, client_side = socket.socketpair()
    gunicorn = {
        "SERVER_SOFTWARE": "gunicorn/23.0.0",
        "wsgi.multithread": True,
        "gunicorn.socket": server_side,
    }
    results = {
        "idle wake-up, no connection (ns)": idle_wakeup({}),
        "idle wake-up, werkzeug socket (ns)": idle_wakeup({"werkzeug.socket": server_side}),
        "idle wake-up, gunicorn socket+worker (ns)": idle_wakeup(gunicorn),
        "busy next(), gunicorn socket+worker (ns)": busy_next(gunicorn),
        f"hand-over {100_000 // SCALE} frames (ms)": hand_over(),
    }
    if GEVENT:
        results[f"hand-over {2_000 // SCALE} frames, runner=thread (ms)"] = hand_over(
            2_000, "thread"
        )
        results["wake ping-pong between greenlets (ns per wake-up)"] = ping_pong()
    results["wake set+wait (ns)"], results["wake wait(0) timeout (ns)"] = wake()
    for name, value in results.items():
        print(f"{'gevent' if GEVENT else 'threads'}: {name}: {value:.1f}")
    server_side.close()
    client_side.close()


if __name__ == "__main__":
    main()
