"""sse-starlette's README and examples: dicts of event fields, and text.

``return EventSourceResponse(gen())`` becomes ``return sse_response(gen(),
items="sse-starlette")``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask

from sse_sync import sse_response

bp = Blueprint("sse_starlette", __name__, url_prefix="/sse-starlette")


# README, "Quick Start".
def generate_events():
    for i in range(10):
        yield {"data": f"Event {i}"}
        time.sleep(1)


@bp.route("/events")
def sse_endpoint() -> Any:
    return sse_response(generate_events(), items="sse-starlette")


# README (earlier versions), "Usage": non-str data is sent as str(data).
def numbers(minimum, maximum):
    for i in range(minimum, maximum + 1):
        time.sleep(0.9)
        yield dict(data=i)


@bp.route("/numbers")
def sse() -> Any:
    generator = numbers(1, 5)
    return sse_response(generator, items="sse-starlette")


# examples/04_advanced_features.py: multi-line data, ids and event names.
def stream_with_custom_separator():
    """Stream demonstrating custom line separators."""
    messages = [
        "First line\nwith newlines\ninside",
        "Second message",
        "Third line\r\nwith CRLF",
        "Final message",
    ]

    for i, message in enumerate(messages, 1):
        yield {"data": message, "id": str(i), "event": "multiline"}
        time.sleep(1)


@bp.route("/multiline")
def multiline() -> Any:
    return sse_response(stream_with_custom_separator(), items="sse-starlette")


# sse_starlette.event.ensure_bytes(): a str is the data, as text.
def plain_text():
    for word in ["hello", "two\nlines", "last"]:
        yield word
        time.sleep(0.5)


@bp.route("/text")
def text() -> Any:
    return sse_response(plain_text(), items="sse-starlette")


def register(app: Flask) -> None:
    app.register_blueprint(bp)
