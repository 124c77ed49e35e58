"""Server-Sent Events for Flask and Werkzeug on gevent and threads.

Blocking generators are streamed off the request thread as spec-exact event streams.
"""

from ._event import ServerSentEvent
from ._request import last_event_id
from ._response import EventStreamResponse, sse_response
from ._views import EventStreamView, event_stream_route, sse_view

__all__ = [
    "EventStreamResponse",
    "EventStreamView",
    "ServerSentEvent",
    "event_stream_route",
    "last_event_id",
    "sse_response",
    "sse_view",
]
