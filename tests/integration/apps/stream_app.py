"""The Flask app the integration tests serve with gunicorn (gevent, gthread, sync) and Werkzeug.

``/state`` reports what the streams did (finally blocks run, live producers, threads and
greenlets), so a test in another process can wait on it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, g, jsonify, request, session, stream_with_context

from sse_sync import ServerSentEvent, sse_response, stream_closed, wait_closed
from tests.integration.apps import server_watchdog

server_watchdog.start()

app = Flask(__name__)
app.secret_key = "test"

#: The events of ``/frames``: the tests compare the wire bytes with their ``encode()``.
FRAMES: list[Any] = [
    ServerSentEvent(comment="hello\nworld"),
    ServerSentEvent(data={"n": 1, "text": "caf\u00e9 \u2028 x"}, event="item", id="1", retry=2500),
    ServerSentEvent(raw_data="line one\r\nline two\rline three\n"),
    ServerSentEvent(raw_data=""),
    ServerSentEvent(raw_data="  leading spaces"),
    ServerSentEvent(data="a string"),
    {"plain": "dict"},
    b"data: pre-framed\n\n",
]

_lock = threading.Lock()
_state: dict[str, Any] = {"finally": [], "active": 0, "max_active": 0, "native": {}}


def _native_ident() -> int:
    """The OS thread's id, even when gevent has patched threading.get_ident."""
    try:
        from gevent import monkey

        return int(monkey.get_original("_thread", "get_ident")())
    except ImportError:
        return threading.get_ident()


_MAIN_NATIVE = _native_ident()


def _enter(tag: str = "") -> None:
    with _lock:
        _state["native"][tag] = _native_ident() != _MAIN_NATIVE
        _state["active"] += 1
        _state["max_active"] = max(_state["max_active"], _state["active"])


def _leave(tag: str) -> None:
    with _lock:
        _state["active"] -= 1
        _state["finally"].append(tag)


def _ping_arg() -> float | None:
    value = request.args.get("ping", "15")
    return None if value == "none" else float(value)


@app.get("/frames")
def frames() -> Any:
    return sse_response(FRAMES, ping=None)


@app.get("/idle")
def idle() -> Any:
    def gen() -> Iterator[Any]:
        yield ServerSentEvent(comment="start")
        time.sleep(60)

    return sse_response(gen(), ping=_ping_arg())


@app.get("/tracked/<tag>")
def tracked(tag: str) -> Any:
    """Yields every ``interval`` seconds (``sleep`` seconds between yields) until closed."""
    interval = float(request.args.get("sleep", "0.05"))
    runner = request.args.get("runner", "auto")

    def gen() -> Iterator[Any]:
        _enter(tag)
        try:
            n = 0
            while True:
                n += 1
                yield ServerSentEvent(data={"n": n, "user": g.user}, id=str(n))
                time.sleep(interval)
        finally:
            _leave(tag)

    return sse_response(gen(), ping=_ping_arg(), runner=runner)  # type: ignore[arg-type]


@app.get("/sleepy")
def sleepy() -> Any:
    """``n`` events with a plain ``time.sleep(t)`` between them."""
    count = int(request.args.get("n", "3"))
    pause = float(request.args.get("t", "0.5"))

    def gen() -> Iterator[Any]:
        _enter()
        try:
            for i in range(count):
                if i:
                    time.sleep(pause)
                yield ServerSentEvent(data=i, id=str(i))
        finally:
            _leave("sleepy")

    return sse_response(gen(), ping=None)


@app.before_request
def remember_user() -> None:
    g.user = request.headers.get("X-User", "anonymous")


@app.get("/context")
def context() -> Any:
    """request, g, session and current_app inside the generator, across sleeps."""
    session["visits"] = 1

    def gen() -> Iterator[Any]:
        from flask import current_app

        for i in range(3):
            yield {
                "i": i,
                "arg": request.args.get("q"),
                "user": g.user,
                "visits": session.get("visits"),
                "app": current_app.name,
            }
            time.sleep(0.05)

    return sse_response(gen(), ping=None)


@app.get("/stream-with-context")
def with_context() -> Any:
    """A generator already wrapped by Flask's stream_with_context."""

    @stream_with_context
    def gen() -> Iterator[Any]:
        for i in range(3):
            yield {"i": i, "arg": request.args.get("q")}
            time.sleep(0.05)

    return sse_response(gen(), ping=None)


@app.get("/error")
def error() -> Any:
    def gen() -> Iterator[Any]:
        yield ServerSentEvent(data="before", id="1")
        raise RuntimeError("boom in the source")

    return sse_response(gen(), ping=None)


@app.get("/poll/<tag>")
def poll(tag: str) -> Any:
    """Yields once, then polls with time.sleep and never yields again; records how it stopped."""

    def gen() -> Iterator[Any]:
        _enter(tag)
        how = "returned"
        try:
            yield ServerSentEvent(data="polling")
            while True:
                try:
                    time.sleep(0.2)
                except Exception:  # careless code: StreamClosed is no Exception, it goes through
                    pass
        except BaseException as exc:
            how = type(exc).__name__
            raise
        finally:
            _leave(f"{tag}:{how}")

    return sse_response(gen())


@app.get("/cooperative/<tag>")
def cooperative(tag: str) -> Any:
    """Yields once, then waits with wait_closed() (``look=check``: polls stream_closed())."""
    look = request.args.get("look", "wait")
    runner = request.args.get("runner", "auto")

    def gen() -> Iterator[Any]:
        _enter(tag)
        how = "returned"
        try:
            yield ServerSentEvent(data=stream_closed())
            if look == "check":
                while not stream_closed():
                    time.sleep(0.05)
            else:
                while not wait_closed(30):
                    pass
            how = "saw it closed"
        except BaseException as exc:
            how = type(exc).__name__
            raise
        finally:
            _leave(f"{tag}:{how}")

    return sse_response(gen(), runner=runner, ping=_ping_arg())  # type: ignore[arg-type]


_TASKS = "/proc/self/task"


@app.get("/state")
def state() -> Any:
    greenlets = producers = 0
    try:
        from greenlet import greenlet

        # Plain greenlets too: a producer greenlet is one (runner="thread"'s is gevent's Greenlet).
        for o in gc.get_objects():
            if isinstance(o, greenlet) and not o.dead:
                greenlets += 1
                producers += type(o).__name__ == "ProducerGreenlet" or (
                    getattr(getattr(o, "_run", None), "__qualname__", "") == "Producer._run"
                )
    except ImportError:
        pass
    threads = threading.enumerate()
    producers += sum(t.name == "sse_sync-producer" for t in threads)
    with _lock:
        return jsonify(
            finally_ran=list(_state["finally"]),
            active=_state["active"],
            max_active=_state["max_active"],
            off_main_thread=_state["native"],
            threads=threading.active_count(),
            # Every OS thread, also those gevent's threading does not know about (Linux).
            os_threads=len(os.listdir(_TASKS)) if os.path.isdir(_TASKS) else None,
            # Not gunicorn gthread's pool, which grows up to --threads and keeps its threads.
            threads_off_pool=sum(not t.name.startswith("ThreadPoolExecutor") for t in threads),
            sse_sync_threads=sum(t.name.startswith("sse_sync") for t in threads),
            greenlets=greenlets,
            producers=producers,
        )
