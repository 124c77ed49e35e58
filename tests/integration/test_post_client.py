"""``sse_sync.client.EventSource`` POSTing to real servers, across a dropped connection."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

import pytest

from sse_sync.client import EventSource

from ..conftest import LiveServer

pytestmark = [pytest.mark.integration]

POST_APP = "tests.integration.apps.post_app:app"
WORDS = ["alpha", "beta", "gamma", "delta"]


def _post(server: LiveServer, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", path)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "kind", [pytest.param("gevent", marks=pytest.mark.gevent), "gthread", "werkzeug"]
)
def test_reconnect_after_drop_repeats_post_and_body(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """After the server drops a POST stream, the client POSTs the same body with Last-Event-ID."""
    server = live_server(kind, POST_APP)
    body = {"words": WORDS, "drop_after": 2}
    with EventSource(server.url + "/words", method="POST", json=body, timeout=10.0) as source:
        got = [next(source), next(source)]
        assert _post(server, "/drop") == 204  # the server now cuts this connection
        got += [next(source), next(source)]
    assert [(e.data, e.last_event_id) for e in got] == [
        (f'"{word}"', str(i)) for i, word in enumerate(WORDS, 1)
    ]
    first, second = server.state()["requests"]
    assert first["method"] == second["method"] == "POST"
    assert first["body"] == second["body"]  # the same bytes
    assert json.loads(first["body"]) == body
    assert first["content_type"] == second["content_type"] == "application/json"
    assert (first["last_event_id"], second["last_event_id"]) == (None, "2")
