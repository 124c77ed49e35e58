"""A POST event stream that drops its connection once, for ``sse_sync.client.EventSource``.

``POST /words`` streams the JSON body's ``words``, one event each with its index as id,
resuming after ``Last-Event-ID``. After ``drop_after`` events the first connection waits for
``POST /drop`` and is then cut: its socket is shut down, with no clean end of the chunked body.
``/state`` lists every request received.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, jsonify, request

from sse_sync import ServerSentEvent, last_event_id, sse_response
from tests.integration.apps import server_watchdog

server_watchdog.start()

app = Flask(__name__)

_lock = threading.Lock()
_requests: list[dict[str, Any]] = []
_drop = threading.Event()


@app.get("/state")
def state() -> Any:
    with _lock:
        return jsonify(requests=list(_requests))


@app.post("/drop")
def drop() -> Any:
    _drop.set()
    return "", 204


@app.post("/words")
def words() -> Any:
    body = request.get_data()
    with _lock:
        _requests.append(
            {
                "method": request.method,
                "body": body.decode(),
                "content_type": request.headers.get("Content-Type"),
                "last_event_id": request.headers.get("Last-Event-ID"),
            }
        )
        first = len(_requests) == 1
    payload = request.get_json()
    start = int(last_event_id() or 0)
    conn = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if not isinstance(conn, socket.socket):
        msg = f"Expected the server to expose the connection's socket, got {conn!r}"
        raise RuntimeError(msg)

    def gen() -> Iterator[ServerSentEvent]:
        for i, word in enumerate(payload["words"][start:], start + 1):
            if first and i > payload["drop_after"]:
                _drop.wait(10)  # until the client has read what was sent
                conn.shutdown(socket.SHUT_RDWR)  # the network drops the connection
                return
            yield ServerSentEvent(data=word, id=str(i), retry=20)

    return sse_response(gen(), ping=None)
