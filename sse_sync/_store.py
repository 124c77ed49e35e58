"""The extension point of brokers: the :class:`Store` a :class:`~sse_sync.Subscription` reads.

A broker keeps its events somewhere (a list, Redis Streams, a database) and hands a
:class:`~sse_sync.brokers.ChannelLog` per channel to the subscriptions of this process, feeding
it what is published. A :class:`Store` is what a subscription asks the broker for: a channel's
log, where an id is in the channel, and the events it no longer holds in the log.
``MemoryBroker`` and ``RedisBroker`` are stores, built on nothing else; so is the SQLite broker
of the test suite (``tests/sqlite_broker.py``).

Invariant: :class:`Counters` change under their own lock, taken with no other lock held.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from ._observe import observe

if TYPE_CHECKING:
    from ._log import ChannelLog, Entry, Order, Position, ResetReason

__all__ = ["Counters", "Store"]


class Counters:
    """A broker's counters in this process, for its ``stats()``; thread-safe.

    A :class:`~sse_sync.Subscription` counts itself opened and closed, and ended for falling
    behind; a broker counts what it published, and ``RedisBroker`` its reader's reconnections.
    Publishes, overflows and reconnections also reach :mod:`sse_sync.metrics` when it is enabled,
    so a broker of your own is measured as the built-in ones are.
    """

    __slots__ = ("_lock", "_overflows", "_published", "_reconnects", "_subscribers")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers = 0
        self._published = 0
        self._overflows = 0
        self._reconnects = 0

    def __repr__(self) -> str:
        return (
            f"<Counters subscribers={self._subscribers} published={self._published} "
            f"overflows={self._overflows} reconnects={self._reconnects}>"
        )

    def subscription_opened(self) -> None:
        """A subscription started reading (its first read)."""
        with self._lock:
            self._subscribers += 1

    def subscription_closed(self) -> None:
        """A subscription that had started reading ended."""
        with self._lock:
            self._subscribers -= 1

    def subscription_overflowed(self) -> None:
        """A subscription was ended for falling more than ``max_pending`` events behind."""
        with self._lock:
            self._overflows += 1
        observe.overflow()

    def event_published(self) -> None:
        """This process published an event (stored: ``publish()`` returned its id)."""
        with self._lock:
            self._published += 1
        observe.published()

    def reader_reconnected(self) -> None:
        """A reader of the broker's store lost its connection, and connects again."""
        with self._lock:
            self._reconnects += 1
        observe.broker_reconnect()

    def snapshot(self) -> dict[str, int]:
        """``subscribers``, ``published`` and ``overflows``: what every ``stats()`` reports."""
        with self._lock:
            return {
                "subscribers": self._subscribers,
                "published": self._published,
                "overflows": self._overflows,
            }

    @property
    def subscribers(self) -> int:
        """Open subscriptions that started reading."""
        return self._subscribers

    @property
    def published(self) -> int:
        """Events published by this process."""
        return self._published

    @property
    def overflows(self) -> int:
        """Subscriptions ended for falling more than ``max_pending`` events behind."""
        return self._overflows

    @property
    def reconnects(self) -> int:
        """Reconnections of a reader of the broker's store, after errors."""
        return self._reconnects


class Store(Protocol):
    """What a :class:`~sse_sync.Subscription` asks its broker: the extension point of brokers.

    A broker's ``subscribe()`` returns ``Subscription(self, channel, last_event_id,
    max_pending)``; the subscription calls these methods. Stores are required to be thread-safe:
    every method may be called from any request's thread or greenlet, at the same time as the
    others and as ``publish()``. Stores may do I/O in :meth:`head`, :meth:`attach`,
    :meth:`locate` and :meth:`catch_up`; an error raised there ends the subscription (a
    stream's client reconnects and resumes).

    The store's part of the bargain, besides these methods: every event published on a channel
    is appended, in order, to the channel's log while it is attached
    (:meth:`ChannelLog.extend <sse_sync.brokers.ChannelLog.extend>`); events found lost after
    its head are signalled with :meth:`~sse_sync.brokers.ChannelLog.rebase`; and closing the
    broker closes every log (:meth:`~sse_sync.brokers.ChannelLog.close`) and makes
    :meth:`attach` return ``None``. Send each :class:`~sse_sync.brokers.Wakeup` these return
    once the store's own locks are released.
    """

    @property
    def counters(self) -> Counters:
        """This process's counters, which ``stats()`` reports."""
        ...

    def head(self, channel: str) -> str | None:
        """The id of the newest event of ``channel``, or ``None`` if it cannot be known now.

        Called by ``Subscription()`` (in ``subscribe()``) for each channel it starts live:
        "live" means published after this. With ``None``, live starts at the first read.
        Any id :meth:`locate` accepts will do (an id of another channel, if the store's ids are
        ordered across channels).
        """
        ...

    def attach(self, channel: str) -> ChannelLog | None:
        """The log of ``channel`` in this process, kept until :meth:`detach`; ``None`` once
        the broker is closed.

        Called at a subscription's first read, once for each of its channels. Each log
        returned is given to :meth:`detach` exactly once.
        """
        ...

    def detach(self, log: ChannelLog) -> None:
        """A subscription no longer reads ``log``: drop it if nothing else needs it."""
        ...

    def locate(self, log: ChannelLog, last_id: str) -> Order | ResetReason:
        """Where the event with id ``last_id`` is in ``log``'s channel, to resume after it.

        Return its order if every event of the channel after it can still be read (from the
        log, or from :meth:`catch_up`); else why not: ``"expired"`` (trimmed from the history)
        or ``"unknown"`` (no id of this channel: garbage, another store's, lost). The
        subscription then sends the client a ``reset`` event. Any text may come: a client
        sends what it likes.
        """
        ...

    def catch_up(self, channel: str, after: Position, limit: int) -> list[Entry] | None:
        """The channel's entries after ``after``, oldest first, at most ``limit`` (a page).

        Called for a subscription below its log's floor (it resumes from further back than
        the log reaches, or fell off its end). Return ``[]`` when the store has no entry after
        ``after``: the subscription then reads on from the log. Return ``None`` when some
        events after ``after`` are gone: the subscription ends (its client reconnects, and
        gets a ``reset``). A store that keeps no more than the log returns ``None``.
        """
        ...
