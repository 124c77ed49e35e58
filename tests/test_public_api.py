"""The public names, and that importing the package has no side effects."""

from __future__ import annotations

import subprocess
import sys

import sse_sync

CONTRACT = {
    "CORS",
    "ClientConnection",
    "Broker",
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
}


def test_all_is_the_sorted_contract() -> None:
    """__all__ lists exactly the public names, sorted, and each of them exists."""
    assert set(sse_sync.__all__) == CONTRACT
    assert sse_sync.__all__ == sorted(sse_sync.__all__)
    for name in sse_sync.__all__:
        assert getattr(sse_sync, name) is not None


def test_import_has_no_side_effects() -> None:
    """`import sse_sync` imports no gevent/redis/httpx, starts no thread, patches nothing."""
    code = (
        "import sys, threading, socket\n"
        "before = socket.socket\n"
        "import sse_sync\n"
        "assert socket.socket is before\n"
        "bad = sorted(m for m in ('gevent', 'redis', 'httpx') if m in sys.modules)\n"
        "assert not bad, bad\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
