"""``MemoryBroker``: fan-out and replay inside one process, under threads or gevent.

The broker is a :class:`~sse_sync.brokers.Store` whose history is the channels' logs.

Invariants, and why they hold:

1. Ids follow one sequence across channels and are appended to the logs in that order: ``publish``
   takes the next number and appends the entry under ``_lock``. So a log's entries are in order,
   and any id issued is a position in every channel (the head of one with no event since).
2. A log lives while a subscription attached it (the log counts them) or it holds history.
   ``attach`` and ``detach`` count and drop under ``_lock``, so a log is never dropped between
   a subscription attaching it and adding its bookmark.
3. Nothing is attached after ``close()``: ``_closed`` is set under ``_lock``, which ``attach``
   takes, and every log attached before is closed, so its subscriptions end.

Lock order: ``_lock``, then a log's lock (see ``_log``). Wake-ups are sent after ``_lock`` is
released.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ._broker import (
    IDEMPOTENCY_WINDOW,
    MAX_EVENT_SIZE,
    check_channel,
    check_idempotency_key,
    check_limits,
    check_sizes,
    prepare_event,
)
from ._log import ChannelLog, Entry, Order, Position, ResetReason
from ._store import Counters
from ._subscription import Subscription

__all__ = ["MemoryBroker"]

_SEQ = re.compile(r"[0-9]{1,20}")
#: The most idempotency keys a broker remembers (the oldest are forgotten first).
_MAX_KEYS = 100_000


class MemoryBroker:
    """Publishes events to the subscribers of this process, keeping the last ``history`` each.

    The embedded default: no server to run, safe under threads and gevent. Events published in
    one process reach subscribers in that process only: with several gunicorn workers or
    hosts, use :class:`~sse_sync.RedisBroker`.

    .. code-block:: python

        broker = MemoryBroker(history=1000)

        @app.post("/prices")
        def publish():
            broker.publish("prices", request.json, event="price")
            return "", 204

        @app.get("/prices/stream")
        def prices():
            return sse_response(broker.subscribe("prices", last_event_id=last_event_id()))

    Ids are ``"<epoch>:<seq>"``: ``seq`` grows with every publish, and ``epoch`` is random per
    broker and process, so an id from another process (another worker, or before a restart)
    is recognised as unknown and answered with a ``reset`` event instead of a wrong replay.

    :param history: how many events each channel keeps for replay.
    :param max_pending: how many live events a subscriber may fall behind before its stream
        is ended (it reconnects and replays); at most ``history``. Defaults to
        ``min(1000, history // 2)``.
    :param max_event_size: the largest event :meth:`publish` accepts, in bytes of its encoded
        frame (1 MiB by default). Each retained event costs about twice that in memory.
    :param idempotency_window: seconds an ``idempotency_key`` is remembered (at most the
        100,000 most recent keys are).
    """

    def __init__(
        self,
        history: int = 1000,
        *,
        max_pending: int | None = None,
        max_event_size: int = MAX_EVENT_SIZE,
        idempotency_window: float = IDEMPOTENCY_WINDOW,
    ) -> None:
        self.history, self.max_pending = check_sizes(history, max_pending)
        self.max_event_size, self.idempotency_window = check_limits(
            max_event_size, idempotency_window
        )
        self._reinit()

    def _reinit(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._seq = 0
        self._logs: dict[str, ChannelLog] = {}
        #: (channel, idempotency key) -> (event id, when it is forgotten), oldest first
        self._keys: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._closed = False
        #: this process's counters (:class:`~sse_sync.brokers.Store`)
        self.counters = Counters()

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked (gunicorn workers): a broker of our own
            self._reinit()

    def __repr__(self) -> str:
        return f"<MemoryBroker history={self.history} channels={len(self._logs)}>"

    def _log(self, channel: str) -> ChannelLog:
        """The channel's log, created if missing (call with ``self._lock`` held)."""
        log = self._logs.get(channel)
        if log is None:
            floor = Position((0, 0), f"{self._epoch}:0")
            log = self._logs[channel] = ChannelLog(channel, self.history, floor)
        return log

    def publish(
        self,
        channel: str,
        data: Any = None,
        *,
        event: str | None = None,
        raw_data: str | None = None,
        retry: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Send one event to the subscribers of ``channel``; return its id.

        :param channel: letters, digits and ``_.:/@-``, up to 200 characters.
        :param data: any JSON-encodable value, encoded once for all subscribers.
        :param event: the event type a browser dispatches.
        :param raw_data: text sent as it is, instead of ``data``.
        :param retry: the reconnection time in milliseconds.
        :param idempotency_key: if this key was used on ``channel`` within
            ``idempotency_window``, nothing is published and the first event's id returned.

        Raises ``ValueError``/``TypeError`` (bad channel, neither ``data`` nor ``raw_data``,
        data that cannot be JSON-encoded, an event over ``max_event_size``) and
        ``RuntimeError`` (after :meth:`close`) before anything is published; nothing else.
        """
        check_channel(channel)
        key = check_idempotency_key(idempotency_key)
        wire, json_bytes = prepare_event(data, event, raw_data, retry, self.max_event_size)
        self._check_process()
        with self._lock:
            if self._closed:
                msg = "This MemoryBroker was closed; publish() can only be used before close()"
                raise RuntimeError(msg)
            if key is not None:
                known = self._known(channel, key)
                if known is not None:
                    return known
            self._seq += 1
            seq = self._seq
            entry = Entry((seq, 0), f"{self._epoch}:{seq}", wire, json_bytes is not None)
            wakeup = self._log(channel).extend((entry,))
            if key is not None:
                self._keys[channel, key] = (entry.id, time.monotonic() + self.idempotency_window)
                if len(self._keys) > _MAX_KEYS:
                    self._keys.popitem(last=False)
        self.counters.event_published()
        wakeup.send()
        return entry.id

    def _known(self, channel: str, key: str) -> str | None:
        """The id published with ``key`` on ``channel`` within the window (lock held)."""
        keys = self._keys
        now = time.monotonic()
        while keys:  # forget the expired keys: the oldest come first
            oldest = next(iter(keys.values()))
            if oldest[1] > now:
                break
            keys.popitem(last=False)
        known = keys.get((channel, key))
        return None if known is None else known[0]

    def subscribe(
        self, channel: str | Iterable[str], last_event_id: str | None = None
    ) -> Subscription:
        """Return a :class:`Subscription` to ``channel`` (or several channels).

        It yields the retained events after ``last_event_id`` (``None``: none), then live
        ones. See :class:`~sse_sync.Broker`.
        """
        return Subscription(self, channel, last_event_id, self.max_pending)

    # -- the Store protocol: what its subscriptions ask ----------------------------------

    def head(self, channel: str) -> str | None:
        """The id of the newest event of ``channel`` (:class:`~sse_sync.brokers.Store`)."""
        self._check_process()
        with self._lock:
            log = self._logs.get(channel)
            if log is None:
                # Ids are one sequence over all channels: the newest one is at or after the
                # channel's last event, so it is a position (and no log needs to exist).
                return f"{self._epoch}:{self._seq}"
            return log.head.id

    def attach(self, channel: str) -> ChannelLog | None:
        """The log of ``channel``, kept until :meth:`detach` (:class:`~sse_sync.brokers.Store`)."""
        self._check_process()
        with self._lock:
            if self._closed:
                return None
            log = self._log(channel)
            log.acquire()
            return log

    def detach(self, log: ChannelLog) -> None:
        """Drop ``log`` once no subscription reads it and it holds no history."""
        with self._lock:
            if not log.release() and not len(log) and self._logs.get(log.channel) is log:
                del self._logs[log.channel]

    def locate(self, log: ChannelLog, last_id: str) -> Order | ResetReason:
        """The order of ``last_id`` in ``log``'s channel, or why it cannot be resumed.

        Only this broker's ids (its epoch, a number it issued) are positions; one below the
        log's floor was trimmed.
        """
        epoch, sep, seq = last_id.partition(":")
        if not sep or epoch != self._epoch or not _SEQ.fullmatch(seq) or int(seq) > self._seq:
            return "unknown"
        order = (int(seq), 0)
        return "expired" if order < log.floor.order else order

    def catch_up(self, channel: str, after: Position, limit: int) -> list[Entry] | None:
        """``None``: the log is all the history there is."""
        return None

    # -- the rest ------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters of this process: ``channels``, ``subscribers``, ``published``, ``overflows``.

        ``overflows`` counts subscribers whose stream was ended for falling behind.
        """
        return {"channels": len(self._logs), **self.counters.snapshot()}

    def close(self) -> None:
        """End every subscription; ``publish()`` raises afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            logs = list(self._logs.values())
        for log in logs:
            log.close().send()
