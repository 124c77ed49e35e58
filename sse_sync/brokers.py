"""Building blocks for a broker of your own: the :class:`Store` protocol and what it works with.

``MemoryBroker`` and ``RedisBroker`` are built on these and nothing else. A broker keeps its
events where it likes (a list, Redis Streams, a database) and meets two protocols: the public
:class:`~sse_sync.Broker` (``publish``, ``subscribe``, ``stats``, ``close``) and :class:`Store`,
what the :class:`~sse_sync.Subscription` its ``subscribe()`` returns asks it. Per channel and
process it keeps a :class:`ChannelLog`, appends an :class:`Entry` to it for every event, and
sends the :class:`Wakeup` that returns once its own locks are released.

.. code-block:: python

    from sse_sync.brokers import ChannelLog, Counters, Entry, Position, Subscription

    class ListBroker:                                  # a Broker, and a Store
        def subscribe(self, channel, last_event_id=None):
            return Subscription(self, channel, last_event_id, self.max_pending)
        ...

The checks (:func:`check_channel`, :func:`prepare_event`, ...) make a broker refuse what the
built-in ones refuse, with the same messages. A complete small broker, which passes the test
suite's broker contract, is ``tests/sqlite_broker.py``; see docs/brokers.md, "Writing your
own broker".

Thread-safety: stores are required to be thread-safe (see :class:`Store`); :class:`ChannelLog`,
:class:`Counters` and :class:`Subscription` are. Lock order: a :class:`ChannelLog`'s methods
may be called under the store's own lock (the log's lock comes after it); call
:class:`Counters`' and :class:`Subscription`'s methods, and :meth:`Wakeup.send`, with no lock
of yours held.
"""

from __future__ import annotations

from ._broker import (
    IDEMPOTENCY_WINDOW,
    MAX_EVENT_SIZE,
    Broker,
    check_idempotency_key,
    check_limits,
    check_sizes,
    prepare_event,
)
from ._channel import check_channel
from ._log import ChannelLog, Entry, Order, Position, ResetReason, Wakeup
from ._store import Counters, Store
from ._subscription import RESET_EVENT, Subscription

__all__ = [
    "Broker",
    "ChannelLog",
    "Counters",
    "Entry",
    "IDEMPOTENCY_WINDOW",
    "MAX_EVENT_SIZE",
    "Order",
    "Position",
    "RESET_EVENT",
    "ResetReason",
    "Store",
    "Subscription",
    "Wakeup",
    "check_channel",
    "check_idempotency_key",
    "check_limits",
    "check_sizes",
    "prepare_event",
]
