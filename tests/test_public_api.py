"""The public names, and that importing the package has no side effects."""

from __future__ import annotations

import subprocess
import sys

import sse_sync
import sse_sync.metrics

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
    """`import sse_sync` imports no gevent/redis/httpx/prometheus_client, starts no thread."""
    code = (
        "import sys, threading, socket\n"
        "before = socket.socket\n"
        "import sse_sync\n"
        "assert socket.socket is before\n"
        "bad = sorted(m for m in ('gevent', 'redis', 'httpx', 'prometheus_client')"
        " if m in sys.modules)\n"
        "assert not bad, bad\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_metrics_module_is_enable_and_disable() -> None:
    """sse_sync.metrics exports enable and disable; importing it does not import prometheus."""
    assert sse_sync.metrics.__all__ == ["disable", "enable"]
    code = (
        "import sys\n"
        "import sse_sync.metrics\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert sse_sync.metrics.enable.__module__ == 'sse_sync.metrics'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
