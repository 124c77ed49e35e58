"""Event streams served by real servers, read by a streaming HTTP client over loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sse_sync._event import encode_item

from ..conftest import STREAM_APP, LiveServer, StreamClient, start_server, wait_until
from .apps.stream_app import FRAMES

pytestmark = pytest.mark.integration

KINDS = ["gevent", "gthread", "werkzeug"]


@pytest.fixture(params=KINDS, scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """One server of each kind, shared by the tests of this module."""
    live = start_server(request.param, STREAM_APP)
    yield live
    live.stop()


def json_datas(body: bytes) -> list[Any]:
    """The JSON of every ``data:`` line (these tests send one-line JSON data only)."""
    return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]


def test_frames_are_byte_exact(server: LiveServer) -> None:
    """What the source yields arrives on the wire exactly as encoded, with the stream headers."""
    with StreamClient(server.port, "/frames") as client:
        assert client.response.status == 200
        assert client.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert client.response.getheader("Cache-Control") == "no-cache"
        assert client.response.getheader("X-Accel-Buffering") == "no"
        assert client.response.getheader("Connection") in (None, "keep-alive", "close")
        body = client.read_all()
    assert body == b"".join(encode_item(item) for item in FRAMES)


def test_pings_on_an_idle_stream(server: LiveServer) -> None:
    """An idle stream sends ': ping' comments at the ping interval, without an id."""
    with StreamClient(server.port, "/idle?ping=0.2") as client:
        body = client.read_until(lambda b: b.count(b": ping\n\n") >= 3, timeout=5)
    assert body.startswith(b": start\n\n")
    assert b"id:" not in body


def test_no_pings_when_disabled(server: LiveServer) -> None:
    """With ping=None an idle stream stays silent."""
    with StreamClient(server.port, "/idle?ping=none", timeout=1.5) as client:
        client.read_until(lambda b: b": start\n\n" in b)
        with pytest.raises(TimeoutError):
            client.read_some()
    assert b"ping" not in client.buffer


def _disconnect_runs_finally(
    server: LiveServer, tag: str, query: str, headers: dict[str, str] | None = None
) -> None:
    headers = {"X-User": "bo", **(headers or {})}
    client = StreamClient(server.port, f"/tracked/{tag}?{query}", headers=headers)
    client.read_until(lambda b: b'id: 1\ndata: {"n":1,"user":"bo"}\n\n' in b)
    assert tag not in server.state()["finally_ran"]
    client.close()
    wait_until(lambda: tag in server.state()["finally_ran"], timeout=5)


def test_disconnect_runs_generator_finally(server: LiveServer) -> None:
    """Closing the connection closes the generator: its finally block runs promptly."""
    _disconnect_runs_finally(server, f"busy-{server.port}", "sleep=0.05&ping=15")


def test_disconnect_of_idle_stream_is_noticed(server: LiveServer) -> None:
    """A client leaving an idle stream (no writes, pings far away) is noticed from the socket."""
    _disconnect_runs_finally(server, f"idle-{server.port}", "sleep=0.2&ping=60")


@pytest.mark.gevent
def test_a_version_header_does_not_pass_for_http2(live_server: Callable[..., LiveServer]) -> None:
    """An HTTP/1.1 client sending "Version: 2" is still watched: its idle disconnect is seen."""
    server = live_server("gevent")
    _disconnect_runs_finally(server, "v2", "sleep=30&ping=60", {"Version": "2"})


@pytest.mark.gevent
def test_disconnect_kills_a_sleeping_greenlet(live_server: Callable[..., LiveServer]) -> None:
    """Under gevent a producer asleep in time.sleep(30) is interrupted at once on disconnect."""
    server = live_server("gevent")
    _disconnect_runs_finally(server, "long-sleep", "sleep=30&ping=60")


@pytest.mark.gevent
def test_native_thread_runner_under_gevent(live_server: Callable[..., LiveServer]) -> None:
    """runner='thread' under gevent streams from a native thread, with the Flask context."""
    server = live_server("gevent")
    _disconnect_runs_finally(server, "native", "sleep=0.05&ping=15&runner=thread")
    _disconnect_runs_finally(server, "greenlet", "sleep=0.05&ping=15")
    assert server.state()["off_main_thread"] == {"native": True, "greenlet": False}


def test_source_error_ends_stream_cleanly(server: LiveServer) -> None:
    """An exception in the source is logged with its traceback and the stream ends cleanly."""
    with StreamClient(server.port, "/error") as client:
        body = client.read_all()
    assert body == b'id: 1\ndata: "before"\n\n'
    wait_until(lambda: "boom in the source" in server.log and "Traceback" in server.log)


def test_flask_context_inside_generator(server: LiveServer) -> None:
    """request, g, session and current_app work in the generator for the whole stream."""
    with StreamClient(server.port, "/context?q=42", headers={"X-User": "ada"}) as client:
        body = client.read_all()
    datas = json_datas(body)
    assert datas == [
        {
            "i": i,
            "arg": "42",
            "user": "ada",
            "visits": 1,
            "app": "tests.integration.apps.stream_app",
        }
        for i in range(3)
    ]


def test_stream_with_context_generator(server: LiveServer) -> None:
    """A generator already wrapped in Flask's stream_with_context streams too."""
    with StreamClient(server.port, "/stream-with-context?q=x") as client:
        body = client.read_all()
    assert json_datas(body) == [{"i": i, "arg": "x"} for i in range(3)]


def _live_workers(state: dict[str, Any]) -> int:
    return int(state["threads"]) + int(state["greenlets"])


def test_no_thread_or_greenlet_left_after_100_cycles(server: LiveServer) -> None:
    """100 connect/disconnect cycles leave the thread and greenlet counts at their baseline."""
    before = server.state()
    baseline = _live_workers(before)
    tag = f"cycle-{server.port}"
    for _ in range(100):
        client = StreamClient(server.port, f"/tracked/{tag}?sleep=0.01&ping=15")
        client.read_until(lambda b: b"id: 1\n" in b)
        client.close()
    wait_until(lambda: server.state()["finally_ran"].count(tag) == 100, timeout=20)
    # Producers of earlier tests may still be asleep in their source (threads cannot be killed).
    wait_until(lambda: server.state()["producers"] <= before["producers"], timeout=10)
    if "gthread" not in server.process.args:  # gthread's pool grows its threads lazily
        wait_until(lambda: _live_workers(server.state()) <= baseline, timeout=10)


def _run_clients(port: int, path: str, count: int) -> tuple[float, list[bytes]]:
    bodies: list[bytes] = [b""] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            with StreamClient(port, path, timeout=30) as client:
                bodies[i] = client.read_all()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert not errors, errors[:3]
    return elapsed, bodies


@pytest.mark.gevent
def test_200_sleeping_clients_on_one_gevent_worker(
    live_server: Callable[..., LiveServer],
) -> None:
    """200 clients of a time.sleep()ing generator on ONE gevent worker overlap their sleeps."""
    server = live_server("gevent")
    elapsed, bodies = _run_clients(server.port, "/sleepy?n=3&t=0.5", 200)
    expected = b"".join(f"id: {i}\ndata: {i}\n\n".encode() for i in range(3))
    assert bodies == [expected] * 200
    state = server.state()
    assert state["max_active"] == 200  # all 200 generators were asleep at the same time
    assert elapsed < 200 * 1.0 / 10  # one client takes 1 s; serialised they would take 200 s


def test_sync_worker_warns_once(live_server: Callable[..., LiveServer]) -> None:
    """A gunicorn sync worker serving streams logs one warning naming the fix."""
    server = live_server("sync")
    for _ in range(2):
        with StreamClient(server.port, "/frames") as client:
            client.read_all()
    wait_until(lambda: "gunicorn sync worker" in server.log)
    assert server.log.count("gunicorn sync worker") == 1
    assert "gunicorn -k gevent" in server.log
