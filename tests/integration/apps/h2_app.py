"""The stream app plus what the HTTP/2 tests look at: a page, and how each request arrived.

``/seen`` maps each path requested to ``[SERVER_PROTOCOL, REMOTE_PORT]``: streams served over
one HTTP/2 connection share the client's port.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from tests.integration.apps.stream_app import app

__all__ = ["app"]

_seen: dict[str, list[Any]] = {}


@app.before_request
def remember_protocol() -> None:
    environ = request.environ
    _seen[request.path] = [environ.get("SERVER_PROTOCOL"), environ.get("REMOTE_PORT")]


@app.get("/")
def page() -> Any:
    return "<!doctype html><title>HTTP/2 event streams</title>"


@app.post("/size")
def size() -> Any:
    """The size of the request body, read in 8 KiB pieces as it arrives."""
    total = 0
    while piece := request.stream.read(8192):
        total += len(piece)
    return jsonify(size=total)


@app.get("/seen")
def seen() -> Any:
    return jsonify(_seen)
