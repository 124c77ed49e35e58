"""What every broker shares: the ``Broker`` protocol, the in-process log, and ``Subscription``.

A broker keeps, per channel and per process, a :class:`_Log`: the last events of the channel,
each encoded once (:class:`_Entry` holds the wire frame). Publishing appends to the log and wakes
the channel's subscribers; it never copies or encodes anything per subscriber. Each
:class:`Subscription` keeps a position per channel and reads the frames after it from the shared
log, so replay and live delivery are the same read and nothing falls between them.

Ids and cursors:

* A single-channel subscription sends each event with the channel's own id (``MemoryBroker``:
  ``"<epoch>:<seq>"``; ``RedisBroker``: the stream id ``"<ms>-<seq>"``). Ids of one channel are
  monotonic and comparable.
* A multi-channel subscription sends a cursor as the id: ``"<channel>=<id>,<channel>=<id>"``,
  sorted by channel, with the position of every channel, so one ``Last-Event-ID`` resumes all of
  them. A channel missing from a cursor starts live, as on a first connect.
* A ``Last-Event-ID`` whose events are no longer retained, or that this broker never issued,
  gets one ``reset`` event per affected channel (no id, data
  ``{"channel": ..., "reason": "expired" | "unknown", "lastEventId": ...}``); the channel then
  continues live. A cursor must name valid, distinct channels, at least one of those
  subscribed; any other text is ``unknown``. Pings and control frames never carry an id.
* When the broker finds that events of a channel after what this process read are gone from
  its store (``_Log.rebase``), every live subscriber of that channel gets a ``reset``
  (reason ``"lost"`` or ``"expired"``) at its next read, and continues from there.

Slow subscribers: a subscription that falls more than ``max_pending`` live events behind is
ended (and counted): its client reconnects with its ``Last-Event-ID`` and replays from the
history. If it is stuck in a write (the client reads nothing), the connection's socket is shut
down, the only way to end a ``sendall`` blocked on another greenlet or thread.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._event import ServerSentEvent, encode_data
from ._logging import logger
from ._server import ClientConnection
from ._wake import Wake, new_wake

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "MAX_EVENT_SIZE",
    "RESET_EVENT",
    "Broker",
    "Key",
    "Subscription",
    "check_channel",
    "check_idempotency_key",
    "check_limits",
    "check_sizes",
    "cursors_of",
    "prepare_event",
]

#: The event type sent when a ``Last-Event-ID`` cannot be resumed, or events were lost.
RESET_EVENT = "reset"

#: The default largest event a broker accepts: 1 MiB of encoded frame (without its id).
MAX_EVENT_SIZE = 1024 * 1024

#: The default time, in seconds, a broker remembers an ``idempotency_key``.
IDEMPOTENCY_WINDOW = 600.0

#: Comparable position of an entry in its channel: ``(seq, 0)`` in memory, ``(ms, seq)`` in Redis.
Key = tuple[int, int]

_monotonic = time.monotonic

#: The most entries one read takes from one channel.
_BATCH = 256

_CHANNEL = re.compile(r"[A-Za-z0-9_.:/@-]{1,200}")


def check_channel(channel: object) -> str:
    """Return ``channel`` if it is a valid channel name; raise ``TypeError``/``ValueError``."""
    if not isinstance(channel, str):
        msg = f"Expected a channel name (str), got {type(channel).__name__!r}"
        raise TypeError(msg)
    if not _CHANNEL.fullmatch(channel):
        msg = f"Expected a channel name of 1 to 200 letters, digits and '_.:/@-', got {channel!r}"
        raise ValueError(msg)
    return channel


def check_sizes(history: object, max_pending: object) -> tuple[int, int]:
    """Validate ``history`` and ``max_pending`` (``None``: the default) and return both."""
    if isinstance(history, bool) or not isinstance(history, int) or history < 1:
        msg = f"Expected history to be an int >= 1 (events kept per channel), got {history!r}"
        raise ValueError(msg)
    if max_pending is None:
        return history, min(1000, max(1, history // 2))
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        msg = f"Expected max_pending to be an int >= 1 or None, got {max_pending!r}"
        raise ValueError(msg)
    if max_pending > history:
        msg = (
            f"Expected max_pending <= history ({history}), got {max_pending!r}: a subscriber "
            "cut off at the bound must find its missed events in the history when it reconnects"
        )
        raise ValueError(msg)
    return history, max_pending


def check_limits(max_event_size: object, idempotency_window: object) -> tuple[int, float]:
    """Validate ``max_event_size`` (bytes) and ``idempotency_window`` (seconds); return both."""
    if isinstance(max_event_size, bool) or not isinstance(max_event_size, int):
        msg = f"Expected max_event_size to be an int (bytes), got {max_event_size!r}"
        raise TypeError(msg)
    if max_event_size < 1:
        msg = f"Expected max_event_size to be bytes >= 1, got {max_event_size!r}"
        raise ValueError(msg)
    if isinstance(idempotency_window, bool) or not isinstance(idempotency_window, (int, float)):
        msg = f"Expected idempotency_window to be seconds (a float), got {idempotency_window!r}"
        raise TypeError(msg)
    if not idempotency_window > 0:
        msg = f"Expected idempotency_window to be seconds > 0, got {idempotency_window!r}"
        raise ValueError(msg)
    return max_event_size, float(idempotency_window)


def check_idempotency_key(key: object) -> str | None:
    """Return ``key`` if it is ``None`` or a valid idempotency key; raise otherwise."""
    if key is None:
        return None
    if not isinstance(key, str):
        msg = f"Expected idempotency_key to be a str or None, got {type(key).__name__!r}"
        raise TypeError(msg)
    if not 1 <= len(key) <= 200:
        msg = f"Expected an idempotency_key of 1 to 200 characters, got {len(key)}: {key[:50]!r}"
        raise ValueError(msg)
    return key


def prepare_event(
    data: Any, event: str | None, raw_data: str | None, retry: int | None, max_event_size: int
) -> tuple[ServerSentEvent, bytes | None]:
    """Validate an event to publish and encode its data once.

    Returns the event to put on the wire (without an id; JSON ``data`` already turned into its
    text) and the JSON bytes of ``data`` (``None`` without data). Raises ``ValueError`` or
    ``TypeError`` before anything is published, ``ValueError`` too when the encoded event
    (without its id) is longer than ``max_event_size`` bytes.
    """
    if data is None and raw_data is None:
        # WHATWG "dispatch the event": with an empty data buffer nothing is dispatched, so an
        # event type or retry alone would be published, stored and replayed, and never seen.
        msg = (
            "Expected publish() to get data= (JSON-encoded) or raw_data= (sent as is), got "
            "neither: a browser dispatches no event without a data line. Pass data= or "
            "raw_data= (raw_data='' for an event with empty data)"
        )
        raise ValueError(msg)
    checked = ServerSentEvent(data=data, raw_data=raw_data, event=event, retry=retry)
    if data is None:
        wire, json_bytes = checked, None
    else:
        json_bytes = encode_data(data)
        wire = checked.model_copy(update={"data": None, "raw_data": json_bytes.decode()})
    size = len(wire.encode())
    if size > max_event_size:
        msg = (
            f"Expected an event of at most {max_event_size} bytes encoded (the broker's "
            f"max_event_size), got {size} bytes: publish less per event (an id to fetch it "
            "by, say), or raise max_event_size"
        )
        raise ValueError(msg)
    return wire, json_bytes


def _reset(channel: str, reason: str, given: str | None) -> ServerSentEvent:
    """The ``reset`` event telling a client that events of ``channel`` it could get are gone."""
    return ServerSentEvent(
        event=RESET_EVENT, data={"channel": channel, "reason": reason, "lastEventId": given}
    )


class _Entry:
    """One published event as this process holds it: its position, id and wire frame.

    Both brokers build their entries here, from the event as it goes on the wire (without an
    id; JSON ``data`` as its text in ``raw_data``) and whether that text is JSON ``data``. A
    retained entry costs its frame and the text once each (about twice the event's size),
    plus a few hundred bytes: the wire event's own cached frame is dropped.
    """

    __slots__ = ("_event", "_id_at", "_id_end", "frame", "id", "is_json", "key", "wire")

    def __init__(self, key: Key, id: str, wire: ServerSentEvent, is_json: bool) -> None:
        body = wire.encode()
        wire._frame = None  # the entry keeps its own frame (with the id): not two copies
        # Field order as ServerSentEvent.encode() writes it: event, id, retry, data.
        at = body.index(b"\n") + 1 if wire.event is not None else 0
        line = b"id: " + id.encode() + b"\n"
        self.key = key
        self.id = id
        self.wire = wire
        self.is_json = is_json
        self.frame = body[:at] + line + body[at:]
        self._id_at = at
        self._id_end = at + len(line)
        self._event: ServerSentEvent | None = None

    def frame_with_id(self, id: str) -> bytes:
        """The frame with ``id`` in place of the entry's own id (a multi-channel cursor)."""
        frame = self.frame
        return frame[: self._id_at] + b"id: " + id.encode() + b"\n" + frame[self._id_end :]

    def event(self, id: str | None = None) -> ServerSentEvent:
        """The event as subscribers get it, with its id (or ``id``, a multi-channel cursor).

        Built on first use (fan-out only needs the frame), with ``data`` decoded once from the
        JSON on the wire: what a client gets, the same from either broker, and never the
        publisher's object. The subscribers of this process share it.
        """
        event = self._event
        if event is None:
            update: dict[str, Any] = {"id": self.id}
            if self.is_json:
                update["data"] = json.loads(self.wire.raw_data or "")
                update["raw_data"] = None
            event = self.wire.model_copy(update=update)
            event._frame = self.frame
            self._event = event
        if id is None:
            return event
        event = event.model_copy(update={"id": id})
        event._frame = self.frame_with_id(id)
        return event


def _entry_key(entry: _Entry) -> Key:
    return entry.key


class _Log:
    """A channel's recent entries in this process, and the cursors reading them.

    ``entries[i]`` has index ``base + i``; indexes are consecutive, so a cursor's position is
    one int. Every entry with a key above ``floor`` is in the log (or will be appended).

    When the broker finds that events after the head are gone from its store (:meth:`rebase`),
    the log starts over at a new position and its ``generation`` grows: each cursor of an
    older generation gets one ``reset`` event and continues from there.
    """

    __slots__ = (
        "_members",
        "_snapshot",
        "base",
        "channel",
        "entries",
        "floor",
        "floor_id",
        "generation",
        "head",
        "head_id",
        "lock",
        "lost_reason",
        "size",
        "slack",
    )

    def __init__(self, channel: str, size: int, floor: Key, floor_id: str) -> None:
        self.channel = channel
        self.size = size
        self.slack = max(16, size // 8)  # trim in chunks: one del per `slack` appends
        self.lock = threading.Lock()
        self.entries: list[_Entry] = []
        self.base = 0
        self.floor = floor
        self.floor_id = floor_id
        self.head = floor
        self.head_id = floor_id
        self.generation = 0
        self.lost_reason = ""
        self._members: dict[_Cursor, None] = {}
        self._snapshot: tuple[_Cursor, ...] | None = ()

    @property
    def count(self) -> int:
        """The index the next entry gets."""
        return self.base + len(self.entries)

    def index_after(self, key: Key) -> int:
        """The index of the first entry whose key is above ``key`` (call with the lock held)."""
        return self.base + bisect.bisect_right(self.entries, key, key=_entry_key)

    def holds(self, key: Key) -> bool:
        """Whether ``key`` is the floor, the head or an entry's key (call with the lock held)."""
        if key == self.floor or key == self.head:
            return True
        at = self.index_after(key) - self.base
        return at > 0 and self.entries[at - 1].key == key

    def rebase(self, key: Key, id: str, reason: str) -> tuple[tuple[_Cursor, ...], int]:
        """Start over at ``key``: the store lost events after the head (``reason`` says how).

        The entries are dropped and every cursor gets a ``reset`` event at its next read, then
        reads on from ``key``. Returns the cursors to wake and the log's count.
        """
        with self.lock:
            self.base += len(self.entries)
            self.entries = []
            self.floor = self.head = key
            self.floor_id = self.head_id = id
            self.generation += 1
            self.lost_reason = reason
            return self.cursors, self.count

    def extend(
        self, entries: Iterable[_Entry], read_to: tuple[Key, str] | None = None
    ) -> tuple[tuple[_Cursor, ...], int]:
        """Append entries above the head (others are dropped); return the cursors to notify.

        :param read_to: the key and id read up to, if past the last entry (entries after it
            were skipped as malformed): the head moves there, so they are not read again.
        """
        with self.lock:
            added = False
            for entry in entries:
                if entry.key > self.head:
                    self.entries.append(entry)
                    self.head = entry.key
                    self.head_id = entry.id
                    added = True
            if read_to is not None and read_to[0] > self.head:
                self.head, self.head_id = read_to
            excess = len(self.entries) - self.size
            if excess > self.slack:
                last = self.entries[excess - 1]
                self.floor, self.floor_id = last.key, last.id
                del self.entries[:excess]
                self.base += excess
            return (self.cursors if added else ()), self.count

    # The cursors are kept in a dict, so that adding and removing one is O(1) (a storm of
    # disconnects is not quadratic), and handed to publishers as a tuple made at most once per
    # change. Call these with the lock held.

    @property
    def cursors(self) -> tuple[_Cursor, ...]:
        """The cursors reading this log: a snapshot, safe to iterate without the lock."""
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = tuple(self._members)
        return snapshot

    @property
    def read(self) -> bool:
        """Whether any cursor reads this log."""
        return bool(self._members)

    def add(self, cursor: _Cursor) -> None:
        self._members[cursor] = None
        self._snapshot = None

    def remove(self, cursor: _Cursor) -> bool:
        """Remove ``cursor``; whether it was there."""
        if self._members.pop(cursor, False) is False:
            return False
        self._snapshot = None
        return True


def cursors_of(logs: Iterable[_Log]) -> list[_Cursor]:
    """Every cursor reading ``logs``, each log's read under its lock (a broker's ``close()``)."""
    cursors: list[_Cursor] = []
    for log in logs:
        with log.lock:
            cursors += log.cursors
    return cursors


def notify(cursors: tuple[_Cursor, ...], count: int) -> None:
    """Wake the subscriptions behind ``cursors``; end those more than ``max_pending`` behind.

    O(1) per subscriber, no encoding: a flag check and an event ``set()``. A subscription
    that fails to be woken is logged and skipped: the others still get the event.
    """
    for cursor in cursors:
        try:
            sub = cursor.sub
            pos = cursor.pos
            behind = count - (pos if pos > cursor.start else cursor.start)
            if behind > sub.max_pending:
                sub._overflow()
            else:
                wake = sub._wake
                if wake is not None:
                    wake.set()
        except Exception:
            logger.exception("Waking a subscriber of %s failed; skipping it", cursor.channel)


class _Cursor:
    """A subscription's position in one channel."""

    __slots__ = ("channel", "generation", "id", "key", "log", "pos", "start", "sub")

    def __init__(self, sub: Subscription, log: _Log) -> None:
        self.sub = sub
        self.log = log
        self.channel = log.channel
        #: the log's generation this cursor's position belongs to (see ``_Log.rebase``)
        self.generation = log.generation
        #: the next index to read from the log, or -1 to catch up from the broker's store
        self.pos = log.count
        #: the log's count when the subscription started: replayed entries are not "pending"
        self.start = log.count
        #: key and id of the last entry read (or the starting position)
        self.key = log.head
        self.id = log.head_id


class _Hub(Protocol):
    """What a :class:`Subscription` needs from its broker."""

    def _attach(
        self, sub: Subscription, channel: str, position: str | None, valid: bool
    ) -> tuple[_Cursor, ServerSentEvent | None]:
        """Register a cursor at ``position`` (``None``: live); a reset event if it cannot be."""
        ...

    def _detach(self, cursor: _Cursor) -> None: ...

    def _head(self, channel: str) -> str | None:
        """The id of the channel's newest event, if known without I/O (``None``: unknown)."""
        ...

    def _catch_up(self, cursor: _Cursor, limit: int) -> list[_Entry] | None:
        """Entries after ``cursor.key`` from the broker's store, or ``None`` if it has none."""
        ...

    def _count(self, counter: str, delta: int) -> None:
        """Add ``delta`` to the ``stats()`` counter named ``counter``."""
        ...


class _Lost(Exception):
    """The entries after a cursor are gone from the store: the subscriber fell too far behind."""


def _positions(
    channels: tuple[str, ...], last_event_id: str | None
) -> tuple[dict[str, str | None], bool]:
    """Split a ``Last-Event-ID`` into a position per channel, and whether it could be.

    A cursor is valid when it is ``channel=position`` pairs of valid, distinct channel names
    and names at least one of ``channels`` (the others start live: the page added them).
    """
    if last_event_id is None:
        return dict.fromkeys(channels), True
    if "=" not in last_event_id:
        if len(channels) == 1:
            return {channels[0]: last_event_id}, True
        return dict.fromkeys(channels), False  # one channel's id cannot resume several
    pairs: dict[str, str] = {}
    for piece in last_event_id.split(","):
        channel, sep, position = piece.partition("=")
        if not sep or not position or channel in pairs or not _CHANNEL.fullmatch(channel):
            return dict.fromkeys(channels), False
        pairs[channel] = position
    positions = {channel: pairs.get(channel) for channel in channels}
    if all(position is None for position in positions.values()):
        return positions, False  # a cursor of other channels: nothing to resume from
    return positions, True


_Item = ServerSentEvent | tuple[_Entry, str | None]


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
    """

    def __init__(
        self,
        hub: _Hub,
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
        self._hub = hub
        #: the channels, in the order given
        self.channels = names
        #: the ``Last-Event-ID`` the subscription resumes from
        self.last_event_id = last_event_id or None
        # "Live" means from now on, not from the first read: remember where each channel is.
        self._positions, self._valid = _positions(names, self.last_event_id)
        if self._valid:
            for channel, position in self._positions.items():
                if position is None:
                    self._positions[channel] = hub._head(channel)
        self.max_pending = max_pending
        self._multi = len(names) > 1
        self._cursors: list[_Cursor] = []
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
        return self._cursor() if self._multi else self._cursors[0].id

    def _cursor(self) -> str:
        return ",".join(f"{c.channel}={c.id}" for c in self._cursors)

    # -- reading -------------------------------------------------------------------------

    def _activate(self) -> None:
        self._wake = new_wake()  # created here, by the reader: after gevent patched threading
        positions, valid = self._positions, self._valid
        with self._lock:
            if self._closed:
                return
            self._active = True
        self._hub._count("subscribers", 1)
        try:
            for channel in sorted(self.channels):
                cursor, reset = self._hub._attach(self, channel, positions[channel], valid)
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._cursors.append(cursor)
                if closed:  # closed from another thread meanwhile
                    self._hub._detach(cursor)
                    return
                if reset is not None:
                    self._control.append(reset)
        except BaseException:
            self.close()
            raise

    def _take(self, cursor: _Cursor, out: list[_Item]) -> tuple[list[_Entry], Key | None]:
        """The next entries of a channel, and the key of the last one read if more may follow.

        The channel's entries after this batch all have keys above that key. If the broker
        lost events of the channel since the cursor's last read, a ``reset`` goes to ``out``
        and the cursor moves to where the log started over.
        """
        log = cursor.log
        entries: list[_Entry] = []
        more = False
        with log.lock:
            if cursor.generation != log.generation:
                out.append(_reset(cursor.channel, log.lost_reason, cursor.id))
                cursor.generation = log.generation
                cursor.pos = -1  # from the new floor: in the log, else from the store
                cursor.key, cursor.id = log.floor, log.floor_id
            if cursor.pos >= 0 and cursor.pos < log.base:
                cursor.pos = -1  # fell off the log: catch up from the store, if there is one
            if cursor.pos < 0 and cursor.key >= log.floor:
                cursor.pos = log.index_after(cursor.key)
            if cursor.pos >= 0:
                start = cursor.pos - log.base
                entries = log.entries[start : start + _BATCH]
                cursor.pos += len(entries)
                more = cursor.pos < log.count
        if cursor.pos < 0:
            caught = self._hub._catch_up(cursor, _BATCH)
            if caught is None:
                raise _Lost(cursor.channel)
            entries = caught
            more = bool(entries)  # the next page, or the log, may follow a page from the store
        end = entries[-1].key if more else None
        if entries and entries[0].key <= cursor.key:
            # A position ahead of what this process has read yet: skip what the client has.
            entries = [e for e in entries if e.key > cursor.key]
        return entries, end

    def _collect(self) -> list[_Item]:
        out: list[_Item] = []
        if self._control:
            out.extend(self._control)
            self._control.clear()
        if not self._multi:
            cursor = self._cursors[0]
            while True:  # a batch the client already has is followed by the next one
                entries, end = self._take(cursor, out)
                if entries or end is None:
                    break
            if entries:
                cursor.key, cursor.id = entries[-1].key, entries[-1].id
                out.extend((entry, None) for entry in entries)
            return out
        while True:
            taken = [(cursor, *self._take(cursor, out)) for cursor in self._cursors]
            # A channel with more entries after its batch may have some below what another
            # channel's batch holds: merge only up to the lowest such batch end, and leave
            # the rest for the next read, so the merged order is the order of the keys.
            ends = [end for _, _, end in taken if end is not None]
            bound = min(ends) if ends else None
            merged: list[tuple[Key, int, _Entry]] = []
            for i, (cursor, entries, _) in enumerate(taken):
                keep = entries
                if bound is not None and entries and entries[-1].key > bound:
                    keep = entries[: bisect.bisect_right(entries, bound, key=_entry_key)]
                    if cursor.pos >= 0:
                        cursor.pos -= len(entries) - len(keep)  # read again next time
                merged.extend((entry.key, i, entry) for entry in keep)
            if merged or bound is None:
                break
        merged.sort()
        for _, i, entry in merged:
            cursor = taken[i][0]
            cursor.key, cursor.id = entry.key, entry.id
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
        :class:`~sse_sync._runner.FrameSource` protocol). An error reading the broker's store
        is logged and ends the subscription: the client reconnects and resumes.
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

    def wake_reader(self) -> None:
        """Make a read waiting now return at once (``None`` if nothing came); any thread.

        A call while nobody reads is not lost: the next read that finds nothing returns
        ``None`` at once (the :class:`~sse_sync._runner.FrameSource` protocol).
        """
        self._nudged = True  # before the set(): a read clears the wake, then looks here
        wake = self._wake
        if wake is not None:
            wake.set()

    # -- ending --------------------------------------------------------------------------

    def attach(self, connection: ClientConnection) -> None:
        """Remember the client's connection, to shut it down if the client stops reading.

        Called by the event stream that serves this subscription.
        """
        self._connection = connection

    def _overflow(self, *, reading: bool = False) -> None:
        """End the subscription: it fell more than ``max_pending`` events behind.

        :param reading: called by the subscription's own reader, which is not stuck anywhere.
        """
        with self._lock:
            if self._overflowed or self._closed:
                return
            self._overflowed = True
            stuck = self._active and not self._waiting and not reading
        self._hub._count("overflows", 1)
        logger.debug(
            "A subscriber of %s fell more than %d events behind; ending its stream (it "
            "reconnects and replays from its Last-Event-ID)",
            ",".join(self.channels),
            self.max_pending,
        )
        if stuck and self._connection is not None:
            # Not waiting for events, so its server thread/greenlet is writing: a write blocked
            # on a client that reads nothing ends only when the socket is shut down.
            self._connection.shut_down()
        wake = self._wake
        if wake is not None:
            wake.set()

    def close(self) -> None:
        """Stop the subscription and unregister it from the broker; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cursors = list(self._cursors)  # kept: `cursor` still answers after close
            counted = self._active
        for cursor in cursors:
            self._hub._detach(cursor)
        if counted:
            self._hub._count("subscribers", -1)
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


class Broker(Protocol):
    """Fans published events out to subscribers and keeps a bounded history for replay.

    :class:`~sse_sync.MemoryBroker` (one process) and :class:`~sse_sync.RedisBroker` (any
    number of processes and hosts) meet it; so can your own.
    """

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
        """Send one event to every subscriber of ``channel`` and keep it in the history.

        ``data`` is JSON-encoded (``raw_data`` is sent as it is); one of them is required,
        since a browser dispatches no event without data. ``event`` is the type a browser
        dispatches; ``retry`` the reconnection time in ms.

        Each call has one of three outcomes:

        - **stored**: it returns the event's id.
        - **not stored**: ``ValueError``/``TypeError`` for a bad channel name, an event that
          cannot be encoded or one longer than the broker's ``max_event_size``; a
          ``RuntimeError`` after :meth:`close`. These are raised before anything is sent.
        - **unknown**: an error of the store after the event was sent to it (for Redis,
          ``redis.TimeoutError`` or ``redis.ConnectionError``): the event may or may not
          have been stored, and delivered. Retry with the same ``idempotency_key``.

        :param idempotency_key: a key (1 to 200 characters) naming this event: publishing
            again with a key already used on ``channel`` within the broker's
            ``idempotency_window`` stores nothing and returns the first event's id, so a
            publish whose outcome is unknown can be retried without a duplicate.
        """
        ...

    def subscribe(
        self, channel: str | Iterable[str], last_event_id: str | None = None
    ) -> Subscription:
        """Return a :class:`Subscription` to one channel or several.

        It yields the retained events after ``last_event_id`` in order, then live ones, each
        with its id (a cursor over all channels when there are several). A channel whose
        position is no longer retained or unknown (any text that is not a position this
        broker issued) gets a ``reset`` event first; a channel whose events are found lost
        later gets one then: a gap is never silent. Each event's ``data`` is decoded from the
        JSON that was sent, as a client would decode it. Raises ``ValueError``/``TypeError``
        for a bad channel name or no channel, never for ``last_event_id``'s content.
        """
        ...

    def stats(self) -> dict[str, int]:
        """Return this process's counters, a snapshot.

        At least ``channels`` (with subscribers or history in this process), ``subscribers``
        (open subscriptions), ``published`` (by this process) and ``overflows``
        (subscriptions ended for falling more than ``max_pending`` behind).
        """
        ...

    def close(self) -> None:
        """End every subscription and release the broker's resources; idempotent.

        ``publish()`` raises ``RuntimeError`` afterwards, and a subscription made afterwards
        ends at its first read.
        """
        ...
