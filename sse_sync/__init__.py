"""Server-Sent Events for Flask and Werkzeug on gevent and threads.

Blocking generators are streamed off the request thread as spec-exact event streams;
brokers fan events out to many clients, across processes with Redis, with replay.
"""

from ._broker import Broker, Subscription
from ._cors import CORS
from ._event import ServerSentEvent
from ._flask import SSE
from ._memory import MemoryBroker
from ._producer import StreamClosed, stream_closed, wait_closed
from ._redis import RedisBroker
from ._request import last_event_id
from ._response import EventStreamResponse, sse_response
from ._server import ClientConnection
from ._stream import FrameSource
from ._views import EventStreamView, event_stream_route, sse_view

__all__ = [
    "Broker",
    "CORS",
    "ClientConnection",
    "EventStreamResponse",
    "EventStreamView",
    "FrameSource",
    "MemoryBroker",
    "RedisBroker",
    "SSE",
    "ServerSentEvent",
    "StreamClosed",
    "Subscription",
    "event_stream_route",
    "last_event_id",
    "sse_response",
    "sse_view",
    "stream_closed",
    "wait_closed",
]
