"""``last_event_id()``: where a reconnecting client says how far it got."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Request

__all__ = ["END_ID", "last_event_id", "reconnects_after_end"]

#: The id of the ``end`` event that closes a stream sent with ``stop_at_end=True``. A client
#: reconnecting with it is answered 204, which stops ``EventSource``; it is not an id of the
#: application's, so :func:`last_event_id` returns ``None`` for it.
END_ID = "sse_sync:end"


def last_event_id(request: Request | Mapping[str, Any] | None = None) -> str | None:
    """Return the id of the last event the client saw, or ``None`` on a first connect.

    Reads the ``Last-Event-ID`` header (what ``EventSource`` sends when it reconnects), else a
    ``lastEventId`` query parameter (what EventSource polyfills, and pages that resume a stream
    across reloads, send on a first connect). An empty value counts as absent.

    .. code-block:: python

        @app.get("/items/stream")
        def stream_items():
            start = int(last_event_id() or 0)
            return sse_response(ITEMS[start:])

    The id of the ``end`` event of a stream sent with ``stop_at_end=True`` is not one of
    yours: it counts as absent (the response answers that client with a 204).

    :param request: a Werkzeug/Flask request or a WSGI environ; ``None`` means Flask's current
        request, which is only valid while a request context is active, such as in a view.
    """
    if request is None:
        from flask import has_request_context
        from flask import request as current_request

        if not has_request_context():
            msg = (
                "'last_event_id()' without an argument can only be used when a Flask request "
                "context is active, such as in a view function; pass the request or the WSGI "
                "environ instead."
            )
            raise RuntimeError(msg)
        environ: Mapping[str, Any] = current_request.environ
    elif isinstance(request, Request):
        environ = request.environ
    elif isinstance(request, Mapping):
        environ = request
    else:
        msg = f"Expected a werkzeug Request, a WSGI environ or None, got {type(request).__name__!r}"
        raise TypeError(msg)
    sent = _sent_id(environ)
    return None if sent == END_ID else sent


def reconnects_after_end(environ: Mapping[str, Any]) -> bool:
    """Whether the client's last event was the ``end`` event of a ``stop_at_end`` stream."""
    return _sent_id(environ) == END_ID


def _sent_id(environ: Mapping[str, Any]) -> str | None:
    header = environ.get("HTTP_LAST_EVENT_ID")
    if header:
        return str(header)
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=False)
    values = query.get("lastEventId")
    return values[0] if values else None
