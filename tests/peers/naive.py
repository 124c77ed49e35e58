"""The classic naive demo: a generator of hand-written frames.

Flask: ``return Response(event_stream(), mimetype="text/event-stream")``; Starlette/FastAPI:
``return StreamingResponse(event_generator(), media_type="text/event-stream")``. Both become
``return sse_response(...)``: a ``str`` made of complete frames goes out as those frames.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask

from sse_sync import sse_response

bp = Blueprint("naive", __name__, url_prefix="/naive")


@bp.route("/stream")
def stream() -> Any:
    def event_stream():
        for i in range(1, 6):
            yield f"data: Message {i}\n\n"
            time.sleep(1)

    return sse_response(event_stream())


# Starlette: async def event_generator(): ... await asyncio.sleep(1)
def event_generator():
    for i in range(1, 6):
        yield f"data: Message {i}\n\n"
        time.sleep(1)


@bp.route("/starlette")
def starlette_stream() -> Any:
    return sse_response(event_generator())


def register(app: Flask) -> None:
    app.register_blueprint(bp)
