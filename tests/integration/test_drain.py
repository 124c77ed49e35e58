"""Graceful drain: stopping or restarting gunicorn workers ends open streams promptly."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from sse_sync._stream import END_RETRY_MS

from ..conftest import LiveServer, wait_until
from .fleet import Client, Fleet
from .test_fanout import BROKER_APP, _placement, publish

pytestmark = pytest.mark.integration

#: Long enough that a test passing fast cannot be gunicorn's own graceful timeout at work.
PATIENT = ["--graceful-timeout", "60"]
#: Pings far apart: no ping wakes an idle stream, only the process's watch sees the stop.
IDLE = {"SSE_PING": "30"}


def ended_with_retry_hint(client: Client) -> bool:
    """The body ended cleanly, its last frame being 'retry: <ms>' within END_RETRY_MS."""
    last = client.raw.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    if not (client.ended and last.startswith(b"retry: ")):
        return False
    return END_RETRY_MS[0] <= int(last[7:]) <= END_RETRY_MS[1] and client.parser.retry == int(
        last[7:]
    )


def _running(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def opened(fleet: Fleet) -> Callable[[], bool]:
    return lambda: all(c.raw for c in fleet.clients)


def all_done(fleet: Fleet) -> Callable[[], bool]:
    return lambda: all(c.ended or c.closed for c in fleet.clients)


@pytest.mark.gevent
def test_sigterm_with_500_streams_exits_within_seconds(
    live_server: Callable[..., LiveServer],
) -> None:
    """SIGTERM to gunicorn with 500 open streams: each gets a final retry hint, master exits."""
    server = live_server("gevent", BROKER_APP, workers=2, extra_args=PATIENT, env=IDLE)
    with Fleet(server.port, "/stream?channel=d", 500) as fleet:
        placed = _placement(server, 2, 500)
        assert sum(placed.values()) == 500, placed
        fleet.pump(opened(fleet), timeout=20, what="the opening pings: idle from now on")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        fleet.pump(all_done(fleet), timeout=15, what="every stream to end")
        streams_ended = time.monotonic() - started
        server.process.wait(15)
        exited = time.monotonic() - started
    assert all(ended_with_retry_hint(c) for c in fleet.clients), fleet.summary()
    hints = {c.parser.retry for c in fleet.clients}
    assert len(hints) > 100  # spread: the clients do not all come back at the same moment
    print(
        f"\nSIGTERM, 500 streams: all ended after {streams_ended:.2f} s, master gone {exited:.2f} s"
    )
    assert exited < 6.0
    assert "Traceback" not in server.log, server.log


@pytest.mark.gevent
def test_sighup_ends_the_old_workers_streams(live_server: Callable[..., LiveServer]) -> None:
    """SIGHUP replaces the worker; the old one's streams end with a retry hint within seconds."""
    server = live_server("gevent", BROKER_APP, extra_args=PATIENT, env=IDLE)
    old_pid = server.state()["pid"]
    with Fleet(server.port, "/stream?channel=h", 20) as fleet:
        wait_until(lambda: server.state()["subscribers"] == 20, timeout=20)
        fleet.pump(opened(fleet), timeout=20, what="the opening pings: idle from now on")
        started = time.monotonic()
        server.process.send_signal(signal.SIGHUP)
        fleet.pump(all_done(fleet), timeout=15, what="the old worker's streams to end")
        elapsed = time.monotonic() - started
    assert all(ended_with_retry_hint(c) for c in fleet.clients), fleet.summary()
    assert elapsed < 5.0
    wait_until(lambda: server.state()["pid"] != old_pid, timeout=20)
    # The old worker accepts connections until it has closed its listener (gunicorn's gevent
    # worker looks at its `alive` flag once a second): wait until it is gone.
    wait_until(lambda: not _running(old_pid), timeout=20)
    assert server.process.poll() is None
    with Fleet(server.port, "/stream?channel=h") as again:  # the new worker serves streams
        wait_until(lambda: server.state()["subscribers"] == 1, timeout=20)
        publish(server, "h", [1])
        again.pump(again.all_have(1), timeout=20)


@pytest.mark.gevent
def test_max_requests_restart_ends_streams(live_server: Callable[..., LiveServer]) -> None:
    """A worker restarting after --max-requests ends its open streams with a retry hint."""
    server = live_server(
        "gevent", BROKER_APP, extra_args=[*PATIENT, "--max-requests", "30"], env=IDLE
    )
    first_pid = server.state()["pid"]
    with Fleet(server.port, "/stream?channel=m", 20) as fleet:
        wait_until(lambda: server.state()["subscribers"] == 20, timeout=20)
        fleet.pump(opened(fleet), timeout=20, what="the opening pings: idle from now on")
        for _ in range(40):  # requests until the worker hits its limit and restarts
            if server.state()["pid"] != first_pid:
                break
        fleet.pump(all_done(fleet), timeout=15, what="the streams to end")
    assert all(ended_with_retry_hint(c) for c in fleet.clients), fleet.summary()
    assert server.process.poll() is None


def test_gthread_sigterm_ends_streams(live_server: Callable[..., LiveServer]) -> None:
    """Under the gthread worker too, SIGTERM ends the streams and the master exits quickly."""
    server = live_server("gthread", BROKER_APP, extra_args=PATIENT, env=IDLE)
    with Fleet(server.port, "/stream?channel=t", 20) as fleet:
        wait_until(lambda: server.state()["subscribers"] == 20, timeout=20)
        fleet.pump(opened(fleet), timeout=20, what="the opening pings: idle from now on")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        fleet.pump(all_done(fleet), timeout=15, what="the streams to end")
        server.process.wait(15)
        elapsed = time.monotonic() - started
    assert all(ended_with_retry_hint(c) for c in fleet.clients), fleet.summary()
    assert elapsed < 6.0
    assert "Traceback" not in server.log, server.log


def test_werkzeug_dev_server_stops_on_ctrl_c(live_server: Callable[..., LiveServer]) -> None:
    """Ctrl+C (SIGINT) still stops Werkzeug's development server with open streams."""
    server = live_server("werkzeug", BROKER_APP)
    with Fleet(server.port, "/stream?channel=w", 5):
        wait_until(lambda: server.state()["subscribers"] == 5, timeout=20)
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(10) is not None
