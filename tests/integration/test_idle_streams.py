"""Idle streams (the next ping 30 s away) still end within seconds when their client leaves."""

from __future__ import annotations

import select
from collections.abc import Callable

import pytest

from ..conftest import LiveServer, StreamClient, wait_until
from .test_fanout import BROKER_APP

pytestmark = pytest.mark.integration

KINDS = [
    pytest.param("gevent", marks=pytest.mark.gevent),
    pytest.param("sse_sync", marks=pytest.mark.gevent),  # pings written by the hub's timer
    "gthread",
    "werkzeug",
    pytest.param("pywsgi", marks=pytest.mark.gevent),
]


def _ended(server: LiveServer, tag: str) -> bool:
    """Whether the source tagged ``tag`` ran its finally (it saw the close, or was killed)."""
    return any(done.startswith(f"{tag}:") for done in server.state()["finally_ran"])


@pytest.mark.parametrize("kind", KINDS)
def test_an_idle_generator_ends_when_its_client_leaves(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """A generator waiting 30 s between items is closed within seconds of its client leaving."""
    server = live_server(kind)
    client = StreamClient(server.port, "/cooperative/idle?ping=30")
    client.read_until(lambda b: b"data: false\n\n" in b)
    assert not _ended(server, "idle")
    client.close()
    wait_until(lambda: _ended(server, "idle"), timeout=5)


@pytest.mark.parametrize("kind", KINDS)
def test_an_idle_subscription_ends_when_its_client_leaves(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """A subscription with nothing to send for 30 s ends within seconds of its client leaving."""
    server = live_server(kind, BROKER_APP, env={"SSE_PING": "30"})
    client = StreamClient(server.port, "/stream?channel=idle")
    client.read_until(lambda b: b": ping\n\n" in b)  # the opening ping: the stream is idle now
    assert server.state()["subscribers"] == 1
    client.close()
    wait_until(lambda: server.state()["subscribers"] == 0, timeout=5)


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="counts the OS threads in /proc")
@pytest.mark.parametrize("kind", [KINDS[0], KINDS[1], "werkzeug", KINDS[4]])
def test_idle_streams_leave_no_thread_behind(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """Once idle streams have ended, the process runs as many OS threads as before them."""
    server = live_server(kind)
    baseline = server.state()["os_threads"]
    clients = [StreamClient(server.port, f"/cooperative/t{i}?ping=30") for i in range(10)]
    for client in clients:
        client.read_until(lambda b: b"data: false\n\n" in b)
    for client in clients:
        client.close()
    wait_until(lambda: all(_ended(server, f"t{i}") for i in range(10)), timeout=10)
    # The watch's thread ends a few seconds after its last stream.
    wait_until(lambda: server.state()["os_threads"] <= baseline, timeout=15)
