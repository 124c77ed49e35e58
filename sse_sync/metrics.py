"""Prometheus metrics of event streams and brokers (``pip install 'sse_sync[metrics]'``).

.. code-block:: python

    import prometheus_client
    import sse_sync.metrics
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    sse_sync.metrics.enable()
    app.wsgi_app = DispatcherMiddleware(
        app.wsgi_app, {"/metrics": prometheus_client.make_wsgi_app()}
    )

Nothing is measured until :func:`enable` is called; ``import sse_sync`` (or this module)
does not import prometheus_client. Under gunicorn with several workers, use
prometheus_client's multiprocess mode: see docs/operations.md, "Metrics".

What is counted per write (events, pings, bytes) and per publish is added up in plain
integers under a lock of the OS thread, and moved into the prometheus_client counters in
batches: ``Counter.inc()`` costs about 0.4 µs, and 1 µs in a gevent worker, where its lock
is gevent's; that, twice per ping, would be several percent of what a ping costs. The
invariants of the batches, and why they hold:

1. Nothing is lost or counted twice: the pending counts are taken and zeroed under the lock.
2. A scrape of one process is exact: a collector registered before the counters moves the
   pending counts into them whenever the registry is collected.
3. Elsewhere (multiprocess mode, where a scrape reads every worker's files) a count waits at
   most ``_FLUSH_EVERY`` seconds while its process goes on counting, and none waits once a
   stream ends: each count looks at the time, and a stream's end moves everything.
4. The lock is never held across a switch (it guards two additions), so under gevent the
   OS thread's own lock, not gevent's, is safe: no greenlet can hold it while another waits.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _observe
from ._observe import CloseReason, Hooks, StreamEnd

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["disable", "enable"]

#: The buckets of ``sse_sync_delivery_seconds``: in-process delivery takes well under a
#: millisecond, through Redis a few; seconds mean a backlog (or a replay of old events).
DELIVERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_CLOSE_REASONS: tuple[CloseReason, ...] = (
    "client_gone",
    "source_end",
    "source_error",
    "drain",
    "max_lifetime",
    "overflow",
)
_RESET_REASONS = ("expired", "unknown", "lost")

#: ``sse_sync_delivery_seconds`` takes at most one sample per this many seconds (per process):
#: an update of the histogram costs as much as the rest of a write's counting, and a fan-out
#: to thousands of subscribers writes thousands of times within milliseconds.
_SAMPLE_EVERY = 0.001

#: The longest a count waits for its batch while its process counts on (see invariant 3).
_FLUSH_EVERY = 1.0

# Indexes of the pending counts.
_EVENTS, _BYTES, _PINGS, _PUBLISHED = range(4)

_monotonic = time.monotonic

_lock = threading.Lock()
#: The hooks made for each registry, so that enabling again registers nothing twice.
_made: weakref.WeakKeyDictionary[CollectorRegistry, _Prometheus] = weakref.WeakKeyDictionary()


def enable(registry: CollectorRegistry | None = None) -> None:
    """Measure event streams and brokers, in prometheus_client metrics of ``registry``.

    Registers these families (the names are stable), and from now on updates them:

    - ``sse_sync_streams_open`` (gauge; ``livesum`` in multiprocess mode),
      ``sse_sync_streams_opened_total`` and ``sse_sync_streams_closed_total{reason}``:
      ``reason`` is ``client_gone`` (the client left, or a write to it failed),
      ``source_end``, ``source_error``, ``drain`` (its gunicorn worker is stopping),
      ``max_lifetime`` or ``overflow`` (a broker subscriber fell behind). A stream is
      counted once it is answered as an event stream: not a ``HEAD`` request, nor one whose
      source raised before its first item (the request is answered with an error).
    - ``sse_sync_events_sent_total`` (the items of generators, the events of broker
      subscriptions), ``sse_sync_pings_sent_total`` and ``sse_sync_bytes_sent_total`` (every
      byte of every stream), as handed to the server to write.
    - ``sse_sync_published_total``: events stored by brokers' ``publish()`` in this process.
    - ``sse_sync_delivery_seconds`` (histogram): for writes of a broker subscription's
      events, the time from the publish of the write's oldest event to the write (wall
      clocks: through Redis, the Redis server's clock at publish). Sampled: at most one
      write per millisecond per process. A replay counts too, with the age of what it
      replays.
    - ``sse_sync_replay_resets_total{reason}`` (``reset`` events sent to subscribers),
      ``sse_sync_subscriber_overflows_total`` and ``sse_sync_broker_reconnects_total``
      (of ``RedisBroker``'s reader).

    Events, pings, bytes and publishes are counted in batches, at little cost: a collection
    of ``registry`` (a scrape) sees every count; in multiprocess mode a worker's counts reach
    its files within a second while it writes, and at once when one of its streams ends.

    Enabling again with the same registry changes nothing; with another registry, the
    metrics go there from then on. Call it once at start-up, before streams open: a stream
    opened before is never counted.

    :param registry: where to register the metrics; prometheus_client's default ``REGISTRY``
        if ``None``.
    :raises ImportError: prometheus_client is not installed.
    """
    try:
        import prometheus_client
    except ImportError as exc:
        msg = (
            "sse_sync.metrics requires the 'prometheus_client' package: "
            "pip install 'sse_sync[metrics]'"
        )
        raise ImportError(msg) from exc
    if registry is None:
        registry = prometheus_client.REGISTRY
    with _lock:
        hooks = _made.get(registry)
        if hooks is None:
            hooks = _made[registry] = _Prometheus(prometheus_client, registry)
        _observe.install(hooks)


def _os_lock() -> Any:
    """A lock of the OS thread, even where gevent patched ``threading`` (invariant 4)."""
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            return monkey.get_original("_thread", "allocate_lock")()
    return _thread.allocate_lock()


def disable() -> None:
    """Stop updating the metrics (they stay registered); :func:`enable` starts again."""
    with _lock:
        _observe.install(None)


class _Flush:
    """A collector of no metrics that moves the pending counts into their counters."""

    def __init__(self, hooks: _Prometheus) -> None:
        self._hooks = hooks

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self._hooks.flush()
        return []


class _Prometheus(Hooks):
    """The hooks, updating prometheus_client metrics (each child looked up once, here)."""

    def __init__(self, prometheus_client: Any, registry: CollectorRegistry) -> None:
        self._lock = _os_lock()
        self._pending = [0, 0, 0, 0]  # by _EVENTS, _BYTES, _PINGS, _PUBLISHED
        self._flush_at = 0.0  # _monotonic() from which the next count flushes
        self._next_sample = 0.0  # time.time() from which the next delivery is sampled
        flush: Any = _Flush(self)
        registry.register(flush)  # first: collecting the registry flushes, then reads
        try:
            self._register(prometheus_client, registry)
        except BaseException:
            registry.unregister(flush)
            raise

    def _register(self, prometheus_client: Any, registry: CollectorRegistry) -> None:
        counter, gauge = prometheus_client.Counter, prometheus_client.Gauge

        def count(name: str, documentation: str, labels: Sequence[str] = ()) -> Any:
            return counter(name, documentation, labels, registry=registry)

        self._open = gauge(
            "sse_sync_streams_open",
            "Event streams open now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._opened = count("sse_sync_streams_opened", "Event streams opened.")
        closed = count("sse_sync_streams_closed", "Event streams ended, by reason.", ["reason"])
        self._closed = {reason: closed.labels(reason) for reason in _CLOSE_REASONS}
        self._events = count(
            "sse_sync_events_sent", "Events handed to the server to write (not pings)."
        )
        self._pings = count("sse_sync_pings_sent", "Keep-alive pings handed to the server.")
        self._bytes = count("sse_sync_bytes_sent", "Bytes of event streams handed to the server.")
        self._published = count("sse_sync_published", "Events published by this process.")
        self._delivery = prometheus_client.Histogram(
            "sse_sync_delivery_seconds",
            "Seconds from publishing a broker event to writing it (sampled writes, oldest event).",
            registry=registry,
            buckets=DELIVERY_BUCKETS,
        )
        resets = count(
            "sse_sync_replay_resets",
            "Reset events sent to subscribers whose events could not be replayed.",
            ["reason"],
        )
        self._resets = {reason: resets.labels(reason) for reason in _RESET_REASONS}
        self._reset_family = resets
        self._overflows = count(
            "sse_sync_subscriber_overflows", "Subscriptions ended for falling behind."
        )
        self._reconnects = count(
            "sse_sync_broker_reconnects", "Reconnections of the Redis reader after errors."
        )
        # The counters of the pending counts, by their indexes.
        self._batched = (self._events, self._bytes, self._pings, self._published)
        self._end: StreamEnd = self._stream_closed  # bound once: every stream shares it

    def _add(self, index: int, amount: int, nbytes: int = 0) -> None:
        """Add ``amount`` to a pending count (and ``nbytes`` to the bytes); flush when due."""
        lock = self._lock
        lock.acquire()
        try:
            pending = self._pending
            pending[index] += amount
            if nbytes:
                pending[_BYTES] += nbytes
        finally:
            lock.release()
        if _monotonic() >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        """Move the pending counts into their counters."""
        lock = self._lock
        lock.acquire()
        try:
            pending = self._pending
            self._pending = [0, 0, 0, 0]
            self._flush_at = _monotonic() + _FLUSH_EVERY
        finally:
            lock.release()
        for counter, amount in zip(self._batched, pending, strict=True):
            if amount:
                counter.inc(amount)

    def stream_opened(self) -> StreamEnd:
        self._opened.inc()
        self._open.inc()
        return self._end

    def _stream_closed(self, reason: CloseReason, source: object) -> None:
        if reason in ("client_gone", "source_end") and getattr(source, "overflowed", False):
            reason = "overflow"
        self._open.dec()
        self._closed[reason].inc()
        self.flush()

    def wrote(self, chunk: bytes) -> bytes:
        self._add(_BYTES, len(chunk))
        return chunk

    def wrote_ping(self, chunk: bytes) -> bytes:
        self._add(_PINGS, 1, len(chunk))
        return chunk

    def events_read(self, count: int) -> None:
        self._add(_EVENTS, count)

    def delivered(self, items: Sequence[object]) -> None:
        self._add(_EVENTS, len(items))
        now = time.time()
        if now < self._next_sample:
            return
        for item in items:
            if type(item) is tuple:  # the first, and oldest, broker event
                self._next_sample = now + _SAMPLE_EVERY  # a race of threads only adds a sample
                delay = now - item[0].published_at
                self._delivery.observe(delay if delay > 0 else 0.0)
                return

    def published(self) -> None:
        self._add(_PUBLISHED, 1)

    def replay_reset(self, reason: str) -> None:
        child = self._resets.get(reason)
        if child is None:
            child = self._reset_family.labels(reason)
        child.inc()

    def overflow(self) -> None:
        self._overflows.inc()

    def broker_reconnect(self) -> None:
        self._reconnects.inc()
