"""Event streams under gevent's pywsgi server, which puts no socket in the WSGI environ."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ..conftest import LiveServer, StreamClient, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.gevent]


def test_idle_disconnect_is_noticed_under_pywsgi(live_server: Callable[..., LiveServer]) -> None:
    """A client leaving an idle pywsgi stream is noticed from its socket within about 2 s."""
    server = live_server("pywsgi")
    # One event, then the generator sleeps 30 s and the next ping is 15 s away: only the
    # socket can tell that the client left.
    client = StreamClient(server.port, "/tracked/idle?sleep=30&ping=15", headers={"X-User": "bo"})
    client.read_until(lambda b: b'id: 1\ndata: {"n":1,"user":"bo"}\n\n' in b)
    assert server.state()["finally_ran"] == []
    left = time.monotonic()
    client.close()
    wait_until(lambda: "idle" in server.state()["finally_ran"], timeout=2.5)
    assert time.monotonic() - left < 2.5
    wait_until(lambda: server.state()["producers"] == 0, timeout=2)
