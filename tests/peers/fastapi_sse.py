"""FastAPI's "Server-Sent Events (SSE)" tutorial (docs_src/server_sent_events/tutorial00N).

``@app.get(path, response_class=EventSourceResponse)`` on a generator becomes
``@bp.get(path)`` plus ``@sse_view``; ``fastapi.sse.ServerSentEvent`` is
``sse_sync.ServerSentEvent`` (same fields). Items follow the same JSON rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, Flask

from examples.items import ITEMS as items  # the tutorial's Item(name, price) list
from examples.items import Item
from sse_sync import ServerSentEvent, last_event_id, sse_view

bp = Blueprint("fastapi_sse", __name__, url_prefix="/fastapi-sse")


# tutorial001: yield the models themselves.
@bp.get("/items/stream-no-async")
@sse_view
def sse_items_no_async() -> Iterable[Item]:
    for item in items:  # noqa: UP028 (verbatim)
        yield item


# tutorial002: ServerSentEvent for a comment, named events, ids and retry.
@bp.get("/items/stream")
@sse_view
def stream_items() -> Iterable[ServerSentEvent]:
    yield ServerSentEvent(comment="stream of item updates")
    for i, item in enumerate(items):
        yield ServerSentEvent(data=item, event="item_update", id=str(i + 1), retry=5000)


# tutorial003: raw_data sends text as it is.
@bp.get("/logs/stream")
@sse_view
def stream_logs() -> Iterable[ServerSentEvent]:
    logs = [
        "2025-01-01 INFO  Application started",
        "2025-01-01 DEBUG Connected to database",
        "2025-01-01 WARN  High memory usage detected",
    ]
    for log_line in logs:
        yield ServerSentEvent(raw_data=log_line)


# tutorial004: resuming. FastAPI reads `last_event_id: Annotated[int | None, Header()] = None`.
@bp.get("/items/resume")
@sse_view
def stream_items_resume() -> Iterable[ServerSentEvent]:
    header = last_event_id()
    last = int(header) if header is not None else None
    start = last + 1 if last is not None else 0
    for i, item in enumerate(items):
        if i < start:
            continue
        yield ServerSentEvent(data=item, id=str(i))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
