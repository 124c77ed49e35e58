"""``Subscription``: one subscriber's view of one or more channels, read through a broker's store.

A subscription registers a bookmark in the log of each of its channels at its first read
(:meth:`Store.attach <sse_sync.brokers.Store.attach>`), then reads the entries after them; a log
wakes it when entries come. Resuming and live delivery are the same read.

* A single-channel subscription sends each event with the channel's own id. A multi-channel one
  sends a cursor (``"<channel>=<id>,..."``, see ``_channel``), with every channel's position.
* A ``Last-Event-ID`` whose events are no longer retained, or that the broker never issued,
  gets one ``reset`` event per affected channel (no id, data
  ``{"channel": ..., "reason": "expired" | "unknown", "lastEventId": ...}``); the channel then
  continues live. When the store finds that events of a channel after what this process read
  are gone (:meth:`ChannelLog.rebase <sse_sync.brokers.ChannelLog.rebase>`), every live
  subscriber of it gets a ``reset`` (``"lost"`` or ``"expired"``) at its next read, and
  continues from there. Pings and control frames never carry an id.
* A subscription more than ``max_pending`` live events behind is ended (and counted): its
  client reconnects with its ``Last-Event-ID`` and replays from the history. If it is stuck in
  a write (the client reads nothing), or waits with the rest of a direct write still to go
  out, the client's connection is shut down, the only way to end a ``sendall`` blocked on
  another greenlet or thread. An overflowed subscription gets no more direct writes.

Invariants, and why they hold:

1. One reader at a time: ``read_frames``, ``read_events`` and iteration are called by the
   stream serving the subscription (or one consumer), never concurrently. :meth:`close`,
   :meth:`notify` and the connection's shut-down may come from any thread or greenlet.
2. ``_active``, ``_closed``, ``_overflowed`` and the list of bookmarks change under ``_lock``,
   which is taken with no other lock held (the log's lock order); ending is idempotent.
3. Every log :meth:`Store.attach <sse_sync.brokers.Store.attach>` returned is given to
   :meth:`~sse_sync.brokers.Store.detach` exactly once: by :meth:`close` for the bookmarks in
   the list, by ``_attach`` for a log it could not add one to (closed meanwhile, or an error).
4. No wake-up is lost: the reader clears the flag before it looks at the logs (the log's
   invariant 3), and ``close()`` and an overflow set it after changing the state it reads.
"""

from __future__ import annotations

import bisect
import operator
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ._channel import check_channel, format_cursor, parse_last_event_id
from ._event import ServerSentEvent
from ._log import Bookmark, ChannelLog, Entry, Order, Position, ResetReason
from ._logging import logger
from ._observe import observe
from ._server import ClientConnection
from ._wake import Wake, new_wake

if TYPE_CHECKING:
    from types import TracebackType

    from ._store import Store

__all__ = ["RESET_EVENT", "Subscription"]

#: The event type sent when a ``Last-Event-ID`` cannot be resumed, or events were lost.
RESET_EVENT = "reset"

_monotonic = time.monotonic

#: The most entries one read takes from one channel.
_BATCH = 256


def _unseen(entries: list[Entry], bookmark: Bookmark) -> list[Entry]:
    """The entries after the bookmark's position: a position ahead of what this process has
    read yet (a client resuming from an id published elsewhere) skips what the client has."""
    if entries and entries[0].order <= bookmark.order:
        return [e for e in entries if e.order > bookmark.order]
    return entries


class _Lost(Exception):
    """Events after a bookmark are gone from the store: the subscriber fell too far behind."""


#: What a read yields: a control event (a reset), or an entry and the cursor to send it with.
_Item = ServerSentEvent | tuple[Entry, str | None]


class Subscription:
    """The events of one or more channels: the retained ones after a position, then live ones.

    Returned by ``broker.subscribe()``. It is an iterator of :class:`ServerSentEvent` (each with
    its id) and also what :func:`sse_response` waits on directly, with no producer thread:

    .. code-block:: python

        @app.get("/prices/stream")
        def prices():
            return sse_response(broker.subscribe("prices", last_event_id=last_event_id()))

    Nothing happens until the first read: then the subscription registers with the broker,
    replays what came after ``last_event_id`` and continues live. It ends when it is closed,
    when the broker is closed, or when it falls more than the broker's ``max_pending`` events
    behind (the client then reconnects and replays). Iterating it blocks until an event comes;
    :meth:`read_events` takes a timeout.

    A broker of your own makes one with ``Subscription(self, channel, last_event_id,
    max_pending)`` (see :class:`sse_sync.brokers.Store`).

    :param store: the broker, which meets the :class:`~sse_sync.brokers.Store` protocol.
    :param channel: a channel name, or several.
    :param last_event_id: the id to resume after (a cursor for several channels); ``None``:
        live only.
    :param max_pending: how many live events it may fall behind before it is ended.
    """

    def __init__(
        self,
        store: Store,
        channel: str | Iterable[str],
        last_event_id: str | None,
        max_pending: int,
    ) -> None:
        names = tuple(dict.fromkeys([channel] if isinstance(channel, str) else channel))
        for name in names:
            check_channel(name)
        if not names:
            msg = "Expected at least one channel to subscribe to, got none"
            raise ValueError(msg)
        if last_event_id is not None and not isinstance(last_event_id, str):
            kind = type(last_event_id).__name__
            msg = f"Expected last_event_id to be a str or None, got {kind!r}"
            raise TypeError(msg)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            msg = f"Expected max_pending to be an int >= 1, got {max_pending!r}"
            raise ValueError(msg)
        self._store = store
        #: the channels, in the order given
        self.channels = names
        #: the ``Last-Event-ID`` the subscription resumes from
        self.last_event_id = last_event_id or None
        #: how many live events it may fall behind before it is ended
        self.max_pending = max_pending
        # "Live" means from now on, not from the first read: remember where each channel is.
        self._ids, self._valid = parse_last_event_id(names, self.last_event_id)
        if self._valid:
            for name, id in self._ids.items():
                if id is None:
                    self._ids[name] = store.head(name)
        self._multi = len(names) > 1
        self._bookmarks: list[Bookmark] = []
        self._control: list[ServerSentEvent] = []
        self._events: deque[ServerSentEvent] | None = None  # read, not yet iterated; made on use
        self._wake: Wake | None = None
        self._connection: ClientConnection | None = None
        self._lock = threading.Lock()
        self._active = False
        self._closed = False
        self._overflowed = False
        self._waiting = False
        self._look = True  # whether a read must look at the channels even if not woken
        self._nudged = False  # wake_reader() was called: the next empty read returns None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "overflowed" if self._overflowed else "open"
        return f"<Subscription {','.join(self.channels)} {state}>"

    @property
    def overflowed(self) -> bool:
        """Whether the subscription was ended for falling more than ``max_pending`` behind."""
        return self._overflowed

    @property
    def cursor(self) -> str | None:
        """The id a client that got everything read so far would send back (``None`` before)."""
        if not self._active:
            return None
        if not self._multi:
            return self._bookmarks[0].id if self._bookmarks else None
        return self._cursor()

    def _cursor(self) -> str:
        return format_cursor((b.channel, b.id) for b in self._bookmarks)

    def _reset(self, channel: str, reason: ResetReason, given: str | None) -> ServerSentEvent:
        """The ``reset`` event telling a client that events of ``channel`` it could get are gone.

        Every reset a subscription sends is made here.
        """
        observe.replay_reset(reason)
        return ServerSentEvent(
            event=RESET_EVENT, data={"channel": channel, "reason": reason, "lastEventId": given}
        )

    # -- starting ------------------------------------------------------------------------

    def _activate(self) -> None:
        self._wake = new_wake()  # created here, by the reader: after gevent patched threading
        with self._lock:
            if self._closed:
                return
            self._active = True
        self._store.counters.subscription_opened()
        try:
            for channel in sorted(self.channels):
                if not self._attach(channel):
                    self.close()  # the broker was closed, or this subscription meanwhile
                    return
        except BaseException:
            self.close()
            raise

    def _attach(self, channel: str) -> bool:
        """Add a bookmark to the channel's log: after the position resumed, else at its head.

        ``False`` if the broker or the subscription was closed meanwhile.
        """
        store = self._store
        log = store.attach(channel)
        if log is None:
            return False
        try:
            bookmark = log.add_bookmark(self, self._start(channel, log))
        except BaseException:
            store.detach(log)
            raise
        if bookmark is not None:
            with self._lock:
                closed = self._closed
                if not closed:
                    self._bookmarks.append(bookmark)
                    return True
            log.remove_bookmark(bookmark)  # closed from another thread meanwhile
        store.detach(log)
        return False

    def _start(self, channel: str, log: ChannelLog) -> Position | None:
        """Where ``channel`` resumes from (``None``: live, from the log's head); queues a
        ``reset`` if the client's position cannot be resumed."""
        if not self._valid:
            self._control.append(self._reset(channel, "unknown", self.last_event_id))
            return None
        id = self._ids[channel]
        if id is None:
            return None
        where = self._store.locate(log, id)
        if isinstance(where, str):
            self._control.append(self._reset(channel, where, id))
            return None
        return Position(where, id)

    # -- reading -------------------------------------------------------------------------

    def _take(self, bookmark: Bookmark, out: list[_Item]) -> tuple[list[Entry], Order | None]:
        """The next entries of a channel, and the order of the last one read if more may follow.

        The channel's entries after this batch all have orders above that one. A ``reset``
        the log gives (it started over) goes to ``out``.
        """
        log = bookmark.log
        entries, more, reset = log.take(bookmark, _BATCH)
        if reset is not None:
            out.append(self._reset(bookmark.channel, *reset))
        if entries is None:  # below the log: from the store
            after = Position(bookmark.order, bookmark.id)
            entries = self._store.catch_up(bookmark.channel, after, _BATCH)
            if entries is None:
                raise _Lost(bookmark.channel)
            if not entries:
                log.rejoin(bookmark)
            more = bool(entries)  # the next page, or the log, may follow a page from the store
        end = entries[-1].order if more else None
        return _unseen(entries, bookmark), end

    def _collect(self) -> list[_Item]:
        out: list[_Item] = []
        if self._control:
            out.extend(self._control)
            self._control.clear()
        if not self._multi:
            bookmark = self._bookmarks[0]
            while True:  # a batch the client already has is followed by the next one
                entries, end = self._take(bookmark, out)
                if entries or end is None:
                    break
            if entries:
                bookmark.order, bookmark.id = entries[-1].order, entries[-1].id
                out.extend((entry, None) for entry in entries)
            return out
        while True:
            taken = [(b, *self._take(b, out)) for b in self._bookmarks]
            # A channel with more entries after its batch may have some below what another
            # channel's batch holds: merge only up to the lowest such batch end, and leave
            # the rest for the next read, so the merged order is the order of the entries.
            ends = [end for _, _, end in taken if end is not None]
            bound = min(ends) if ends else None
            merged: list[tuple[Order, int, Entry]] = []
            for i, (bookmark, entries, _) in enumerate(taken):
                keep = entries
                if bound is not None and entries and entries[-1].order > bound:
                    keep = entries[
                        : bisect.bisect_right(entries, bound, key=operator.attrgetter("order"))
                    ]
                    bookmark.give_back(len(entries) - len(keep))
                merged.extend((entry.order, i, entry) for entry in keep)
            if merged or bound is None:
                break
        merged.sort()
        for _, i, entry in merged:
            bookmark = taken[i][0]
            bookmark.order, bookmark.id = entry.order, entry.id
            out.append((entry, self._cursor()))
        return out

    def _read(self, timeout: float | None) -> list[_Item] | None:
        """Items after the position: a list, ``[]`` at the end, ``None`` on timeout."""
        if self._closed or self._overflowed:
            self.close()
            return []
        if not self._active:
            self._activate()
            if self._closed:
                return []
        wake = self._wake
        assert wake is not None
        deadline = None if timeout is None else _monotonic() + timeout
        wait = timeout
        woken = False
        while True:
            # Look only when woken or when the last look may have left entries behind: an
            # idle stream's read every second then costs a wait and nothing else.
            if self._look or wake.is_set():
                wake.clear()  # before looking: a publish after the look sets it again
                try:
                    items = self._collect()
                except _Lost:
                    self._overflow(reading=True)
                    items = []
                except BaseException:
                    self.close()  # positions may have moved past events not delivered: end here
                    raise
                if self._overflowed or self._closed:
                    self.close()
                    return []
                self._look = bool(items)
                if items:
                    return items
            if self._nudged:  # consumed only here: see wake_reader()
                self._nudged = False
                return None
            if woken and deadline is not None:  # woken for nothing new: wait for what is left
                wait = deadline - _monotonic()
                if wait <= 0:
                    return None
            self._waiting = True
            try:
                if not wake.wait(wait):
                    return None  # what came meanwhile is read next time
            finally:
                self._waiting = False
            woken = True

    def read_frames(self, timeout: float | None) -> bytes | None:
        """Wait up to ``timeout`` seconds for events and return their wire frames, joined.

        ``b""`` once the subscription has ended, ``None`` when nothing came in time (the
        :class:`~sse_sync.FrameSource` protocol). An error reading the broker's store is
        logged and ends the subscription: the client reconnects and resumes.
        """
        try:
            items = self._read(timeout)
        except Exception:
            logger.warning(
                "Reading channel(s) %s failed; ending the event stream (the client "
                "reconnects and resumes from its Last-Event-ID)",
                ",".join(self.channels),
                exc_info=True,
            )
            self.close()
            return b""
        if items is None:
            return None
        observe.delivered(items)
        frames = []
        for item in items:
            if isinstance(item, ServerSentEvent):
                frames.append(item.encode())
            else:
                entry, cursor = item
                frames.append(entry.frame if cursor is None else entry.frame_with_id(cursor))
        return b"".join(frames)

    def read_events(self, timeout: float | None = None) -> list[ServerSentEvent] | None:
        """Like :meth:`read_frames`, as events: a list, ``[]`` at the end, ``None`` on timeout.

        Errors reading the broker's store are raised.
        """
        if self._events:
            events = list(self._events)
            self._events.clear()
            return events
        items = self._read(timeout)
        if items is None:
            return None
        events = []
        for item in items:
            if isinstance(item, ServerSentEvent):
                events.append(item)
            else:
                entry, cursor = item
                events.append(entry.event(cursor))
        return events

    def __iter__(self) -> Iterator[ServerSentEvent]:
        return self

    def __next__(self) -> ServerSentEvent:
        while not self._events:
            events = self.read_events(None)
            if events is None:
                continue  # woken by wake_reader() with nothing new
            if not events:
                raise StopIteration
            self._events = deque(events)
        return self._events.popleft()

    # -- what the log and the stream tell it ---------------------------------------------

    def wake_reader(self) -> None:
        """Make a read waiting now return at once (``None`` if nothing came); any thread.

        A call while nobody reads is not lost: the next read that finds nothing returns
        ``None`` at once (the :class:`~sse_sync.FrameSource` protocol).
        """
        self._nudged = True  # before the set(): a read clears the wake, then looks here
        wake = self._wake
        if wake is not None:
            wake.set()

    def notify(self, behind: int) -> None:
        """Entries came to one of its channels: wake the reader, or end the subscription if it
        is more than ``max_pending`` live events ``behind``.

        Called by the channel's log (:class:`~sse_sync.brokers.Wakeup`), from any thread.
        """
        if behind > self.max_pending:
            self._overflow()
            return
        connection = self._connection
        if (
            self._waiting
            and not self._multi  # its cursor ids are the reader's to write
            and connection is not None
            and connection.source is self  # not a source that wraps it: it must see every frame
            and connection.can_write_now()
        ):
            connection.write_soon(self._write)  # with the other events of this hub turn
            return
        wake = self._wake
        if wake is not None:
            wake.set()

    def _write(self) -> None:
        """Write what came to the client from here; else make the reader's wait return, so that
        its stream writes what the socket did not take (or ends) and reads the rest."""
        try:
            written = self._write_now()
        except Exception:
            logger.exception("Writing to a subscriber of %s failed", ",".join(self.channels))
            written = False
        if not written:
            self.wake_reader()

    def _write_now(self) -> bool:
        """Write what came to the client from here, leaving the reader asleep; whether it
        all went out (else the reader must be woken, to write the rest or read more).

        Only while the reader waits (it reads nothing meanwhile: invariant 1 holds), for a
        single channel read on in the log, through a connection that allows it now (the
        server's direct writes: ``sse_sync._server``, invariant 4).
        """
        connection = self._connection
        if (
            connection is None
            or self._multi
            or self._closed
            or self._overflowed
            or not self._waiting
            or not connection.can_write_now()
        ):
            return False
        bookmark = self._bookmarks[0]
        taken = bookmark.log.take_live(bookmark, _BATCH)
        if taken is None:
            return False
        entries = _unseen(taken.entries or [], bookmark)
        if entries:
            bookmark.order, bookmark.id = entries[-1].order, entries[-1].id
            observe.delivered([(entry, None) for entry in entries])
            frames = entries[0].frame if len(entries) == 1 else b"".join(e.frame for e in entries)
            if not connection.write_now(observe.wrote(frames)):
                return False
        return not taken.more

    def attach(self, connection: ClientConnection) -> None:
        """Remember the client's connection, to shut it down if the client stops reading.

        Called by the event stream that serves this subscription.
        """
        self._connection = connection

    # -- ending --------------------------------------------------------------------------

    def _overflow(self, *, reading: bool = False) -> None:
        """End the subscription: it fell more than ``max_pending`` events behind.

        :param reading: called by the subscription's own reader, which is not stuck anywhere.
        """
        with self._lock:
            if self._overflowed or self._closed:
                return
            self._overflowed = True
            connection = self._connection
            # Waiting for events with the rest of a direct write to go out: its stream writes
            # that rest first (ClientConnection.flush), as stuck as a server write.
            writing = not self._waiting or (connection is not None and connection.pending)
            stuck = self._active and writing and not reading
        self._store.counters.subscription_overflowed()
        logger.debug(
            "A subscriber of %s fell more than %d events behind; ending its stream (it "
            "reconnects and replays from its Last-Event-ID)",
            ",".join(self.channels),
            self.max_pending,
        )
        if stuck and connection is not None:
            # Not waiting for events, so its server thread/greenlet is writing: a write blocked
            # on a client that reads nothing ends only when the socket is shut down.
            connection.shut_down()
        wake = self._wake
        if wake is not None:
            wake.set()

    def close(self) -> None:
        """Stop the subscription and unregister it from the broker; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            bookmarks = list(self._bookmarks)  # kept: `cursor` still answers after close
            counted = self._active
        for bookmark in bookmarks:
            bookmark.log.remove_bookmark(bookmark)
            self._store.detach(bookmark.log)
        if counted:
            self._store.counters.subscription_closed()
        wake = self._wake
        if wake is not None:
            wake.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
