"""Helpers for testing event streams with Flask's or Werkzeug's test client.

.. code-block:: python

    from sse_sync.testing import assert_cleaned_up, override_ping, read_events

    def test_items_stream(client):
        with override_ping(0.05):          # pings every 50 ms in this block, no monkeypatching
            response = client.get("/items/stream", buffered=False)
        events = read_events(response, count=3, timeout=5)
        assert [e.type for e in events] == ["item_update"] * 3
        response.close()                   # what a server does when the client goes away
        assert_cleaned_up(response)        # the generator was closed, its producer stopped
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._parse import EventParser, MessageEvent
from ._seconds import check_seconds
from ._stream import PING_OVERRIDE, EventStream

__all__ = ["MessageEvent", "assert_cleaned_up", "override_ping", "read_events"]

#: The reader of each response body being read (weak: it goes with the response).
_READERS: weakref.WeakKeyDictionary[Any, _Reader] = weakref.WeakKeyDictionary()


class _TestResponse(Protocol):
    """What a Werkzeug/Flask test response (``client.get(..., buffered=False)``) offers."""

    response: Iterable[bytes]

    @property
    def request(self) -> Any: ...


@dataclass
class _Reader:
    """Reads a response's body on a thread, so that a read can time out."""

    chunks: queue.Queue[bytes | None] = field(default_factory=queue.Queue)
    parser: EventParser = field(default_factory=EventParser)
    pending: list[MessageEvent] = field(default_factory=list)
    ended: bool = False

    def start(self, body: Iterable[bytes]) -> None:
        def pump() -> None:
            try:
                for chunk in body:
                    self.chunks.put(chunk)
            finally:
                self.chunks.put(None)

        threading.Thread(target=pump, name="sse_sync-test-reader", daemon=True).start()


def _app_iter(response: _TestResponse) -> Iterable[bytes]:
    body = getattr(response, "response", None)
    if body is None or not hasattr(response, "request"):
        msg = (
            f"Expected a Werkzeug/Flask test client response, got {type(response).__name__!r}; "
            "use client.get(..., buffered=False)"
        )
        raise TypeError(msg)
    return body  # type: ignore[no-any-return]


def _find_stream(obj: object) -> EventStream | None:
    # The test client wraps our app iterable in werkzeug ClosingIterators, which keep the
    # close callbacks they chain (EventStream.close among them) in ``_callbacks``.
    if isinstance(obj, EventStream):
        return obj
    for callback in getattr(obj, "_callbacks", ()):
        found = _find_stream(getattr(callback, "__self__", None))
        if found is not None:
            return found
    return None


def read_events(
    response: _TestResponse, count: int | None = None, timeout: float = 5.0
) -> list[MessageEvent]:
    """Read events from a test client's streamed response, as a browser would dispatch them.

    Call it again on the same response to read the next events. Pings and comments dispatch
    nothing, so they are not returned.

    :param response: from ``client.get(path, buffered=False)``.
    :param count: return once this many events have arrived; ``None`` reads to the end.
    :param timeout: seconds to wait in all; then :class:`TimeoutError`, naming what came.
    :raises AssertionError: the stream ended before ``count`` events.
    """
    if count is not None and count < 1:
        msg = f"Expected count to be None or an int >= 1, got {count!r}"
        raise ValueError(msg)
    body = _app_iter(response)
    reader: _Reader | None = _READERS.get(body)
    if reader is None:
        reader = _READERS[body] = _Reader()
        reader.start(body)
    deadline = time.monotonic() + timeout
    while count is None or len(reader.pending) < count:
        if reader.ended:
            if count is None:
                break
            msg = f"The event stream ended after {len(reader.pending)} events, expected {count}"
            raise AssertionError(msg)
        try:
            chunk = reader.chunks.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            wanted = "the end of the stream" if count is None else f"{count} events"
            msg = f"Expected {wanted} within {timeout} s, got {reader.pending!r}"
            raise TimeoutError(msg) from None
        if chunk is None:
            reader.ended = True
        else:
            reader.pending += reader.parser.feed(chunk)
    taken = len(reader.pending) if count is None else count
    events, reader.pending = reader.pending[:taken], reader.pending[taken:]
    return events


@contextmanager
def override_ping(seconds: float | None) -> Iterator[None]:
    """Within this block, event streams created here ping every ``seconds`` (``None``: never).

    It wins over the ``ping=`` a view passes to :func:`~sse_sync.sse_response`, so a test can
    see pings (or silence) quickly. Scoped to the current context: other threads are not affected.
    """
    check_seconds(seconds, "ping")
    token = PING_OVERRIDE.set((seconds,))
    try:
        yield
    finally:
        PING_OVERRIDE.reset(token)


def assert_cleaned_up(response: _TestResponse, timeout: float = 5.0) -> None:
    """Assert that a closed event stream released everything: its producer has stopped.

    Call ``response.close()`` first (a server does when the client goes away). Waits up to
    ``timeout`` seconds for the producer thread/greenlet to finish closing the source.
    """
    stream = _find_stream(_app_iter(response))
    if stream is None:
        msg = "Expected a response from sse_response()/EventStreamResponse, found no event stream"
        raise TypeError(msg)
    if not stream.closed:
        msg = "Expected the event stream to be closed; call response.close() first"
        raise AssertionError(msg)
    deadline = time.monotonic() + timeout
    while getattr(stream.source, "running", False):
        if time.monotonic() > deadline:
            msg = f"The event stream's producer was still running {timeout} s after close()"
            raise AssertionError(msg)
        time.sleep(0.01)
