"""A channel's recent events in this process, and the bookmarks of the subscriptions reading it.

A broker keeps one :class:`ChannelLog` per channel and process: the channel's last events, each
encoded once (an :class:`Entry` holds its wire frame). Publishing appends to the log and wakes
the subscriptions reading it; nothing is copied or encoded per subscriber. Each subscription
keeps a :class:`Bookmark` in the log of each of its channels and reads the entries after it, so
replay and live delivery are the same read, and nothing falls between them.

Words: an entry's *id* is its text on the wire (what a client sends back as ``Last-Event-ID``);
its *order* is a pair of ints that sorts a channel's entries as they were published (``(seq, 0)``
in memory, the stream id's ``(ms, seq)`` in Redis). A :class:`Position` is both: where a reader
is, after the entry with that order and id.

Invariants, and why they hold:

1. A log's entries have strictly increasing orders and consecutive indexes (``base + i``):
   :meth:`ChannelLog.extend` drops an entry that is not above the head, and trimming removes
   from the start only, adding to ``base``. So a bookmark's place is one int, and reading on
   from it neither misses nor repeats an entry.
2. Every event of the channel above the floor is in the log, or will be appended to it: a store
   appends in order what it publishes or reads, and the floor moves up only past what was
   trimmed, or (:meth:`ChannelLog.rebase`) past what the store lost, and then every bookmark
   gets one reset. Below the floor, a subscription catches up from the store.
3. No wake-up is lost. An append changes the log under its lock and then wakes the followers; a
   subscription clears its wake-up flag *before* it reads the log. An append before that read
   is seen by it; one after it sets the flag again.
4. A bookmark's place (``pos``, ``order``, ``id``) is written by its subscription's reader only:
   in :meth:`ChannelLog.take` under the lock, in :meth:`Bookmark.give_back` and on delivery
   without it. Publishers read ``pos`` without the lock to tell how far behind it is: a stale
   int counts one batch more or less, once.
5. Followers are told outside every lock (:meth:`Wakeup.send`, called once the caller released
   its own): waking thousands of subscribers, or shutting down the socket of one that stopped
   reading, never happens under a lock that a publisher or a reader waits for.

Lock order: a store's own lock (``MemoryBroker``'s, the Redis reader's), then a log's ``lock``.
A subscription's lock is taken with no other lock held, and none is taken under it. Each is
held for a few list and dict operations, never for I/O or a wake-up; so a lock created before
gevent patched ``threading`` (gunicorn ``--preload``) cannot block gevent's hub either.
"""

from __future__ import annotations

import bisect
import json
import operator
import threading
import time
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple, Protocol

from ._event import ServerSentEvent, cache_frame
from ._logging import logger

__all__ = [
    "Bookmark",
    "ChannelLog",
    "Entry",
    "Follower",
    "Order",
    "Position",
    "ResetReason",
    "Taken",
    "Wakeup",
]

#: Sorts a channel's entries in publish order: ``(seq, 0)`` in memory, ``(ms, seq)`` in Redis.
Order = tuple[int, int]

#: Why a channel cannot go on from a position: its events were trimmed (``"expired"``), the
#: id is no position of this channel (``"unknown"``), or the store lost them (``"lost"``).
ResetReason = Literal["expired", "unknown", "lost"]


class Position(NamedTuple):
    """Where a reader of a channel is: after the entry with this order and id."""

    order: Order
    id: str


class Entry:
    """One published event as this process holds it: its order, its id and its wire frame.

    A store makes one from the event as :func:`~sse_sync.brokers.prepare_event` returns it, or
    as it stored it. A retained entry costs its frame and its data text once each (about twice
    the event's size), plus a few hundred bytes.

    :param order: sorts the channel's entries in publish order (see :data:`Order`).
    :param id: the event's id, as subscribers get it and clients send it back.
    :param wire: the event without an id, its data as text in ``raw_data``.
    :param is_json: whether that text is JSON ``data`` (decoded for :meth:`event`) rather
        than raw text.
    :param published_at: when the event was published, by the wall clock (``time.time()``),
        for ``sse_sync_delivery_seconds``; now when not given. A store that reads events
        published elsewhere passes the time it recorded (``RedisBroker``: its stream id's).
    """

    __slots__ = (
        "_event",
        "_id_at",
        "_id_end",
        "_retry",
        "_text",
        "_type",
        "frame",
        "id",
        "is_json",
        "order",
        "published_at",
    )

    def __init__(
        self,
        order: Order,
        id: str,
        wire: ServerSentEvent,
        is_json: bool,
        published_at: float | None = None,
    ) -> None:
        if wire.id is not None or wire.data is not None or wire.comment is not None:
            msg = (
                "Expected the event of an entry without id, data or comment (its data as "
                f"text in raw_data, as prepare_event() returns it), got {wire!r}"
            )
            raise ValueError(msg)
        body = wire.encode()
        # Field order as ServerSentEvent.encode() writes it: event, id, retry, data.
        at = body.index(b"\n") + 1 if wire.event is not None else 0
        line = b"id: " + id.encode() + b"\n"
        self.order = order
        self.id = id
        self.is_json = is_json
        #: the wire frame, with the id
        self.frame = body[:at] + line + body[at:]
        # The fields, not `wire`: its cached frame (without the id) would be a second copy.
        self._type = wire.event
        self._retry = wire.retry
        self._text = wire.raw_data
        self._id_at = at
        self._id_end = at + len(line)
        self._event: ServerSentEvent | None = None
        self.published_at = time.time() if published_at is None else published_at

    def __repr__(self) -> str:
        return f"<Entry {self.id} {self.frame[:40]!r}>"

    def frame_with_id(self, id: str) -> bytes:
        """The frame with ``id`` in place of the entry's own (a multi-channel cursor)."""
        frame = self.frame
        return frame[: self._id_at] + b"id: " + id.encode() + b"\n" + frame[self._id_end :]

    def event(self, id: str | None = None) -> ServerSentEvent:
        """The event as subscribers get it, with its id (or ``id``, a multi-channel cursor).

        Built on first use (fan-out only needs the frame), with ``data`` decoded once from the
        JSON on the wire: what a client gets, the same from every broker, and never the
        publisher's object. The subscribers of this process share it.
        """
        event = self._event
        if event is None:
            fields: dict[str, Any] = {"event": self._type, "id": self.id, "retry": self._retry}
            if self.is_json:
                fields["data"] = json.loads(self._text or "")
            else:
                fields["raw_data"] = self._text
            event = ServerSentEvent.model_construct(**fields)  # validated when published
            cache_frame(event, self.frame)
            self._event = event
        if id is None:
            return event
        event = event.model_copy(update={"id": id})
        cache_frame(event, self.frame_with_id(id))
        return event


class Follower(Protocol):
    """Who reads a log through a :class:`Bookmark` (a subscription): what the log tells it.

    Called by :meth:`Wakeup.send` on the thread that changed the log, with no lock held. Both
    must return quickly and may be called from any thread or greenlet.
    """

    def notify(self, behind: int) -> None:
        """Entries came, or the log started over: ``behind`` is how many live entries the
        bookmark has not read yet (entries replayed when it started do not count)."""
        ...

    def close(self) -> None:
        """The log was closed (its broker is closing): end."""
        ...


class Bookmark:
    """A subscription's place in one channel's log.

    ``order`` and ``id`` are the position of the last entry delivered (or where it started);
    its subscription sets them as it delivers. The rest belongs to the log.
    """

    __slots__ = ("channel", "follower", "generation", "id", "log", "order", "pos", "start")

    def __init__(self, follower: Follower, log: ChannelLog) -> None:
        self.follower = follower
        self.log = log
        self.channel = log.channel
        #: the log's generation the place belongs to (see :meth:`ChannelLog.rebase`)
        self.generation = log._generation
        #: the next index to read from the log, or -1 to catch up from the store first
        self.pos = log.count
        #: the log's count when the bookmark was made: entries replayed are not "behind"
        self.start = self.pos
        self.order, self.id = log._head

    def give_back(self, count: int) -> None:
        """Read the last ``count`` entries taken again next time (a merge of channels keeps
        only those up to where every channel's batch reaches)."""
        if self.pos >= 0:
            self.pos -= count


class Taken(NamedTuple):
    """What :meth:`ChannelLog.take` gives a bookmark."""

    #: the next entries; ``None`` when the bookmark is below the log: catch up from the store
    entries: list[Entry] | None
    #: whether the log holds more entries after these
    more: bool
    #: why the log started over since the last read, and the id it could not continue from
    reset: tuple[ResetReason, str] | None


class Wakeup:
    """The followers of a log to tell about a change: :meth:`send` it once your locks are released.

    Returned by :meth:`ChannelLog.extend`, :meth:`~ChannelLog.rebase` and
    :meth:`~ChannelLog.close`, so that a store can change a log under its own lock and wake the
    subscribers after releasing it.
    """

    __slots__ = ("_bookmarks", "_count", "_end")

    def __init__(self, bookmarks: tuple[Bookmark, ...], count: int, end: bool) -> None:
        self._bookmarks = bookmarks
        self._count = count
        self._end = end

    def send(self) -> None:
        """Tell each follower: O(1) per subscriber, no encoding, no lock held.

        A follower that fails is logged and skipped: the others are still told.
        """
        count, end = self._count, self._end
        for bookmark in self._bookmarks:
            try:
                if end:
                    bookmark.follower.close()
                    continue
                pos, start = bookmark.pos, bookmark.start
                bookmark.follower.notify(count - (pos if pos > start else start))
            except Exception:
                logger.exception("Waking a subscriber of %s failed; skipping it", bookmark.channel)


_NOBODY = Wakeup((), 0, False)


class ChannelLog:
    """A channel's last entries in this process, and the bookmarks of the subscriptions reading it.

    A store makes one per channel it serves in this process (and returns it from
    :meth:`Store.attach <sse_sync.brokers.Store.attach>`), appends every entry of the channel as
    it is published or read (:meth:`extend`), says when events after the head were lost
    (:meth:`rebase`), and closes it when the broker closes (:meth:`close`). Subscriptions read
    it through their bookmarks. Thread-safe: any method, from any thread or greenlet.

    .. code-block:: python

        log = ChannelLog("news", 1000, Position((0, 0), "0"))
        with store_lock:                # the store's own lock, if it has one
            wakeup = log.extend([Entry((1, 0), "1", wire, is_json=True)])
        wakeup.send()                   # wakes the subscribers, with no lock held

    :param channel: the channel's name.
    :param size: how many entries to keep (trimmed in chunks: a few more may stay).
    :param floor: the position the log starts after: every later event of the channel is
        appended to it; earlier ones are read from the store (:meth:`Store.catch_up
        <sse_sync.brokers.Store.catch_up>`).
    """

    __slots__ = (
        "_base",
        "_closed",
        "_entries",
        "_floor",
        "_generation",
        "_head",
        "_lost_reason",
        "_members",
        "_slack",
        "_snapshot",
        "_users",
        "channel",
        "lock",
        "size",
    )

    def __init__(self, channel: str, size: int, floor: Position) -> None:
        self.channel = channel
        self.size = size
        #: held for a few list operations at a time; take it after the store's own lock
        self.lock = threading.Lock()
        self._slack = max(16, size // 8)  # trim in chunks: one del per `slack` appends
        self._entries: list[Entry] = []
        self._base = 0  # the index of _entries[0]
        self._floor = floor
        self._head = floor
        self._generation = 0
        self._lost_reason: ResetReason = "lost"
        self._closed = False
        self._users = 0
        # A dict, so that adding and removing a bookmark is O(1) (a storm of disconnects is not
        # quadratic), handed to publishers as a tuple made at most once per change.
        self._members: dict[Bookmark, None] = {}
        self._snapshot: tuple[Bookmark, ...] | None = ()

    def __repr__(self) -> str:
        return f"<ChannelLog {self.channel} head={self._head.id} entries={len(self._entries)}>"

    def __len__(self) -> int:
        """How many entries the log holds."""
        return len(self._entries)

    @property
    def head(self) -> Position:
        """The position of the newest entry (or the floor, or where the store said it read to)."""
        with self.lock:
            return self._head

    @property
    def floor(self) -> Position:
        """The position the log starts after: it holds every later entry."""
        with self.lock:
            return self._floor

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def count(self) -> int:
        """The index the next entry gets."""
        return self._base + len(self._entries)

    def lookup(self, order: Order) -> bool | None:
        """Whether ``order`` is a position of the log: its floor, its head or an entry's.

        ``None`` when it is outside the log's range (below the floor or above the head): ask
        the store.
        """
        with self.lock:
            if order == self._floor.order or order == self._head.order:
                return True
            if not self._floor.order < order < self._head.order:
                return None
            at = self._index_after(order) - self._base
            return at > 0 and self._entries[at - 1].order == order

    def _index_after(self, order: Order) -> int:
        """The index of the first entry above ``order`` (the lock held)."""
        return self._base + bisect.bisect_right(
            self._entries, order, key=operator.attrgetter("order")
        )

    def _followers(self) -> tuple[Bookmark, ...]:
        """The bookmarks: a snapshot, safe to iterate without the lock (the lock held)."""
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = tuple(self._members)
        return snapshot

    # -- what a store does ---------------------------------------------------------------

    def acquire(self) -> None:
        """One more subscription uses the log (a store's :meth:`Store.attach
        <sse_sync.brokers.Store.attach>` counts it here)."""
        with self.lock:
            self._users += 1

    def release(self) -> int:
        """One subscription less uses the log (:meth:`Store.detach
        <sse_sync.brokers.Store.detach>`); how many are left: at 0, the store may drop it."""
        with self.lock:
            self._users -= 1
            return self._users

    def extend(self, entries: Iterable[Entry], read_to: Position | None = None) -> Wakeup:
        """Append ``entries`` (those not above the head are dropped); the followers to wake.

        :param read_to: where the store read up to, if past the last entry (entries after it
            were skipped as malformed): the head moves there, so they are not read again.
        """
        with self.lock:
            added = False
            for entry in entries:
                if entry.order > self._head.order:
                    self._entries.append(entry)
                    self._head = Position(entry.order, entry.id)
                    added = True
            if read_to is not None and read_to.order > self._head.order:
                self._head = read_to
            excess = len(self._entries) - self.size
            if excess > self._slack:
                last = self._entries[excess - 1]
                self._floor = Position(last.order, last.id)
                del self._entries[:excess]
                self._base += excess
            if not added:
                return _NOBODY
            return Wakeup(self._followers(), self.count, False)

    def rebase(self, to: Position, reason: ResetReason) -> Wakeup:
        """Start over at ``to``: the store lost events after the head (``reason`` says how).

        The entries are dropped; every bookmark gets a ``reset`` event at its next read, then
        reads on from ``to``.
        """
        with self.lock:
            self._base += len(self._entries)
            self._entries = []
            self._floor = self._head = to
            self._generation += 1
            self._lost_reason = reason
            return Wakeup(self._followers(), self.count, False)

    def close(self) -> Wakeup:
        """Close the log (the broker is closing): its followers end, and no bookmark is added."""
        with self.lock:
            self._closed = True
            return Wakeup(self._followers(), self.count, True)

    # -- what a subscription does --------------------------------------------------------

    def add_bookmark(self, follower: Follower, after: Position | None) -> Bookmark | None:
        """A bookmark for ``follower`` after ``after`` (``None``: the head); ``None`` if closed.

        A position below the floor is caught up from the store first; one above the head
        (published, not read here yet) waits for the log to pass it.
        """
        with self.lock:
            if self._closed:
                return None
            bookmark = Bookmark(follower, self)
            if after is not None:
                bookmark.order, bookmark.id = after
                below = after.order < self._floor.order
                bookmark.pos = -1 if below else self._index_after(after.order)
            self._members[bookmark] = None
            self._snapshot = None
            return bookmark

    def remove_bookmark(self, bookmark: Bookmark) -> None:
        """Remove ``bookmark``: its follower is told nothing more."""
        with self.lock:
            if bookmark in self._members:
                del self._members[bookmark]
                self._snapshot = None

    def take(self, bookmark: Bookmark, limit: int) -> Taken:
        """The next entries after ``bookmark``, at most ``limit``; moves it past them.

        If the log started over since its last read, the bookmark moves to the new floor and
        the reason comes with the entries. If it is below the floor, no entries come: its
        subscription catches up from the store, then calls :meth:`rejoin`.
        """
        with self.lock:
            reset = None
            if bookmark.generation != self._generation:
                reset = (self._lost_reason, bookmark.id)
                bookmark.generation = self._generation
                bookmark.pos = -1
                bookmark.order, bookmark.id = self._floor
            if 0 <= bookmark.pos < self._base:
                bookmark.pos = -1  # fell off the log: catch up from the store, if it can
            if bookmark.pos < 0 and bookmark.order >= self._floor.order:
                bookmark.pos = self._index_after(bookmark.order)
            if bookmark.pos < 0:
                return Taken(None, True, reset)
            return self._read_on(bookmark, limit, reset)

    def take_live(self, bookmark: Bookmark, limit: int) -> Taken | None:
        """Like :meth:`take`, for a bookmark reading on in the log: ``None``, and the bookmark
        left as it was, when its read needs more (a reset, or a catch-up from the store)."""
        with self.lock:
            if bookmark.generation != self._generation or bookmark.pos < self._base:
                return None
            return self._read_on(bookmark, limit, None)

    def _read_on(
        self, bookmark: Bookmark, limit: int, reset: tuple[ResetReason, str] | None
    ) -> Taken:
        """The next entries of a bookmark in the log, at most ``limit``; moves it past them
        (the lock held)."""
        start = bookmark.pos - self._base
        entries = self._entries[start : start + limit]
        bookmark.pos += len(entries)
        return Taken(entries, bookmark.pos < self.count, reset)

    def rejoin(self, bookmark: Bookmark) -> None:
        """The store has nothing after ``bookmark``: read on from the log (from its floor, if
        the bookmark is below it: the log holds everything after that)."""
        with self.lock:
            if bookmark.order < self._floor.order:
                bookmark.order, bookmark.id = self._floor
            bookmark.pos = self._index_after(bookmark.order)
