"""Event streams behind Flask-Compress told to compress ``text/event-stream``, on real servers."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

import pytest

from ..conftest import LiveServer, StreamClient, wait_until
from .apps.compress_app import CODINGS

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.compress_app:app"
KINDS = [pytest.param("gevent", marks=pytest.mark.gevent), "gthread"]
REPLACED = "Another layer replaced the body of an event stream's response"


@pytest.mark.parametrize("kind", KINDS)
def test_compressor_leaves_event_streams_alone(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """Whatever coding the client accepts, events arrive at once, uncompressed."""
    server = live_server(kind, APP, ready_path="/ready")
    for coding in CODINGS:
        started = time.monotonic()
        with StreamClient(server.port, "/ticks", headers={"Accept-Encoding": coding}) as client:
            body = client.read_until(lambda b: b"id: 3\n" in b, timeout=2)
            assert client.response.getheader("Content-Encoding") == "identity"
        assert time.monotonic() - started < 2
        assert body.startswith(b"id: 1\ndata: 1\n\nid: 2\ndata: 2\n\n")
    assert REPLACED not in server.log


def _marker(server: LiveServer) -> None:
    """Wait until what the server logged so far is in ``server.log``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/marker")
        assert conn.getresponse().read() == b"ok"
    finally:
        conn.close()
    wait_until(lambda: "marker" in server.log)


@pytest.mark.parametrize("kind", KINDS)
def test_a_replaced_body_warns_once(live_server: Callable[..., LiveServer], kind: str) -> None:
    """A stream whose body Flask-Compress took over logs one warning naming the layer's coding."""
    server = live_server(kind, APP, ready_path="/ready")
    for _ in range(2):
        headers = {"Accept-Encoding": "gzip"}
        with StreamClient(server.port, "/ticks?compressible=1", headers=headers) as client:
            # gzip sends its header bytes with the response's first chunk, after the check.
            assert client.response.getheader("Content-Encoding") == "gzip"
    _marker(server)
    assert server.log.count(REPLACED) == 1
    assert "its Content-Encoding 'gzip'" in server.log
    assert "stream_with_context" in server.log
