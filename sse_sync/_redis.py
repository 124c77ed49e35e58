"""``RedisBroker``: fan-out and replay across processes and hosts with Redis Streams.

Each channel is a stream (``XADD <prefix><channel> MAXLEN ~ <history> * ...``); its stream ids
are the events' ids. Per process, one reader (a greenlet under gevent, else a daemon thread)
runs ``XREAD BLOCK`` over every channel this process has subscribers for, on one connection,
and appends what it reads to the channel's in-process log, which the subscriptions read:
Redis connections grow with processes, never with clients.

* The reader's socket timeout is longer than its ``BLOCK``, so a quiet channel never looks like
  a dead connection, and a dead one is noticed. On any error it reconnects with capped
  exponential backoff and resumes from the last id it read: subscribers lose nothing Redis kept.
* A new channel is added by unblocking the reader (``CLIENT UNBLOCK``), so its events do not
  wait for the current ``BLOCK`` to time out.
* Replay reads the in-process log when it covers the position (the usual reconnect), else
  ``XRANGE`` pages, each checked against ``XINFO STREAM`` in the same ``MULTI``.
* Nothing is retried after a command was sent: a publish that fails raises and was either
  added once or not at all (a blind retry could add it twice). ``idempotency_key`` makes a
  retry safe: one Lua script ``GET``s the key, else ``XADD``s and ``SET``s it (``PX``).

Loss is never silent. The signal is the cheapest one Redis Streams give exactly: a position
is an entry's id (or ``0-0``, before the first), Redis trims a stream only from its start,
and auto-generated ids only grow, so *while the entry at a position is in the stream, every
entry after it is too*. Looking for it is one ``XRANGE id id``. (``XINFO``'s
``max-deleted-entry-id`` is not moved by ``MAXLEN`` trimming, and ids alone cannot tell a
stream made again after a restart from the old one: its new ids are just larger.)

* Resume: a ``Last-Event-ID`` is resumed only if its entry is there: in the process's log
  (an entry, or the log's floor or head), else in Redis (``XRANGE`` in the ``MULTI`` with
  ``XINFO``). Otherwise ``reset``: ``expired`` (below the first entry of a trimmed stream)
  or ``unknown`` (never issued, or from a stream Redis lost since, even once newer events
  were published). Catching up from Redis reads from the position inclusively, so the same
  check costs nothing there.
* Live, on every (re)connection of the reader: one ``MULTI`` with ``INFO server`` and, per
  channel followed, ``XINFO STREAM`` and ``XRANGE head head``. A channel whose head entry is
  gone (a restart without persistence, a stream deleted or trimmed past the reader) starts
  over at the stream's current end, and its subscribers get a ``reset`` (``lost``;
  ``expired`` if only trimmed). A channel at ``0-0`` has no entry to look for: if the
  server's ``run_id`` is not the one its position was read from (noted when the process
  started following it), it gets a ``reset`` too, since events published just before the
  restart may be gone unseen.
* Live, between reconnections: ``XREAD`` after a trimmed position silently returns what is
  left. That needs a reply of ``min(COUNT, history)`` rows or more (a stream keeps at least
  ``history`` entries), so only such a reply costs a check of the head entry (``MULTI``
  ``XINFO`` + ``XRANGE``); the usual reply of a few events costs nothing more.

What no reader can see: with ``appendfsync everysec`` (Redis's default for AOF) a crash loses
up to a second of acknowledged writes that no process had read yet; ``appendfsync always``
closes that gap.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._broker import (
    IDEMPOTENCY_WINDOW,
    MAX_EVENT_SIZE,
    Key,
    Subscription,
    _Cursor,
    _Entry,
    _Log,
    _reset,
    check_channel,
    check_idempotency_key,
    check_limits,
    check_sizes,
    cursors_of,
    notify,
    prepare_event,
)
from ._event import ServerSentEvent
from ._logging import logger
from ._observe import observe

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBroker"]

_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
#: The largest part of a stream id Redis accepts (an unsigned 64-bit int).
_ID_PART_MAX = 2**64 - 1
#: Most entries one XREAD takes per stream.
_READ_COUNT = 1000
#: Reconnection backoff of the reader, in seconds.
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0


def _import_redis() -> ModuleType:
    try:
        import redis
    except ImportError as exc:
        msg = "RedisBroker requires the 'redis' package: pip install 'sse_sync[redis]'"
        raise ImportError(msg) from exc
    return redis


def _ms(seconds: float) -> int:
    """Seconds (our unit everywhere) to the milliseconds Redis takes for ``BLOCK``."""
    return max(1, round(seconds * 1000))


def _parse_id(text: str) -> Key | None:
    """The key of a stream id ``"<ms>-<seq>"`` Redis would accept, else ``None``."""
    found = _STREAM_ID.fullmatch(text)
    if found is None:
        return None
    key = (int(found.group(1)), int(found.group(2)))
    return key if max(key) <= _ID_PART_MAX else None


#: Publishes with an idempotency key, atomically: ``XADD`` unless the key names an event
#: already; the key (``KEYS[2]``) then holds that event's id for ``ARGV[2]`` ms.
_PUBLISH_ONCE = """
local known = redis.call('GET', KEYS[2])
if known then return known end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
return id
"""


def _run_id(reply: Any) -> str | None:
    """The server's ``run_id`` from an ``INFO server`` reply; ``None`` if INFO was refused
    (some hosted Redis rename it): then every reconnection counts as a restart."""
    return None if isinstance(reply, Exception) else str(reply["run_id"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class _StreamInfo:
    """What ``XINFO STREAM`` says about replaying after a position."""

    exists: bool
    last: Key
    last_id: str
    first: Key | None
    trimmed: bool

    @classmethod
    def parse(cls, reply: Any) -> _StreamInfo:
        if isinstance(reply, Exception):
            if "no such key" in str(reply).lower():
                return cls(False, (0, 0), "0-0", None, False)
            raise reply
        last_id = _text(reply["last-generated-id"])
        first_entry = reply.get("first-entry")
        first = _parse_id(_text(first_entry[0])) if first_entry else None
        added = reply.get("entries-added")
        # Without entries-added (Redis < 7) assume trimming happened: a reset at worst.
        trimmed = added is None or int(added) > int(reply["length"])
        return cls(True, _parse_id(last_id) or (0, 0), last_id, first, trimmed)

    def verdict(self, key: Key, present: bool) -> str | None:
        """``None`` if every event after position ``key`` is still in the stream, else why not.

        :param present: whether the stream holds an entry with id ``key``.

        A position is an entry's id (``0-0``: before the first). Redis trims a stream from its
        start, so while the entry at ``key`` is there, so is everything after it. If it is not,
        ``key`` was trimmed (``expired``: below the first retained id of a trimmed stream) or
        is not from this stream (``unknown``: never issued, or the stream was lost and made
        again, as by a Redis restart without persistence). A client whose last event was
        exactly the last one trimmed gets a reset it did not need: Redis does not record the
        last trimmed id.
        """
        if key == (0, 0):
            return "expired" if self.trimmed else None
        if present:
            return None
        if self.exists and self.trimmed and key < (self.first or self.last):
            return "expired"
        return "unknown"


class _Process:
    """What a :class:`RedisBroker` keeps per process (rebuilt after a fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.logs: dict[str, _Log] = {}
        self.by_key: dict[bytes, _Log] = {}
        self.users: dict[str, int] = {}
        self.pending: dict[str, threading.Event] = {}
        self.wakeup = threading.Event()
        self.stop = threading.Event()
        self.reader: threading.Thread | None = None
        self.reader_id: int | None = None
        #: stream key -> the Redis server's run_id its log's position was read from
        self.runs: dict[bytes, str | None] = {}
        self.version = 0  # bumped when the set of channels changes
        self.reading = 0  # the version the reader's current XREAD was built from
        self.subscribers = 0
        self.reconnects = 0


class RedisBroker:
    """Publishes events through Redis Streams to subscribers in every process and host.

    .. code-block:: python

        broker = RedisBroker.from_url("redis://localhost:6379/0", history=10_000)

        @app.post("/prices")
        def publish():
            broker.publish("prices", Price(**request.json), event="price")  # any worker/process
            return "", 204

        @app.get("/prices/stream")
        def prices():
            return sse_response(broker.subscribe("prices", last_event_id=last_event_id()))

    Event ids are the stream ids (``"<ms>-<seq>"``, monotonic and comparable). Creating a
    broker does no I/O; the reader starts with the first subscription in each process.

    :param url: ``redis://``, ``rediss://`` or ``unix://`` URL, as redis-py takes it.
    :param history: how many events each channel's stream keeps (``MAXLEN ~``: at least that).
    :param max_pending: how many live events a subscriber may fall behind before its stream
        is ended (it reconnects and replays); at most ``history``. Defaults to
        ``min(1000, history // 2)``.
    :param prefix: prepended to channel names to make the stream keys.
    :param max_connections: the most connections of this process's command pool (publish,
        replay); the reader has one more of its own.
    :param block: seconds one ``XREAD BLOCK`` waits; the reader's socket timeout is 10 s more.
    :param timeout: socket timeout of commands, in seconds.
    :param max_event_size: the largest event :meth:`publish` accepts, in bytes of its encoded
        frame (1 MiB by default). Each retained event costs about its size in Redis, and
        about twice that in each process that follows the channel.
    :param idempotency_window: seconds Redis remembers an ``idempotency_key``.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        history: int = 1000,
        max_pending: int | None = None,
        prefix: str = "sse:",
        max_connections: int = 16,
        block: float = 2.0,
        timeout: float = 10.0,
        max_event_size: int = MAX_EVENT_SIZE,
        idempotency_window: float = IDEMPOTENCY_WINDOW,
    ) -> None:
        redis_module = _import_redis()
        self.history, self.max_pending = check_sizes(history, max_pending)
        self.max_event_size, self.idempotency_window = check_limits(
            max_event_size, idempotency_window
        )
        if not isinstance(prefix, str):
            msg = f"Expected prefix to be a str, got {type(prefix).__name__!r}"
            raise TypeError(msg)
        if isinstance(block, bool) or not block > 0 or not timeout > 0:
            msg = f"Expected block and timeout to be seconds > 0, got {block!r} and {timeout!r}"
            raise ValueError(msg)
        self.url = url
        self.prefix = prefix
        self.block = float(block)
        #: entries kept per channel in each process: enough for every subscriber within bounds
        self.local_history = min(self.history, max(2 * self.max_pending, 256))
        no_retry = redis_module.retry.Retry(redis_module.backoff.NoBackoff(), 0)
        self._redis = redis_module
        self._commands: redis.Redis = redis_module.Redis(
            connection_pool=redis_module.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=min(timeout, 5.0),
                retry=no_retry,
            )
        )
        self._publish_once = self._commands.register_script(_PUBLISH_ONCE)
        self._reader_options: dict[str, Any] = {
            "socket_timeout": self.block + 10.0,
            "socket_connect_timeout": min(timeout, 5.0),
            "socket_keepalive": True,
            "retry": no_retry,
            "single_connection_client": True,
        }
        self._setup_lock = threading.Lock()
        self._process: _Process | None = None
        self._published = 0
        self._overflows = 0
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        history: int = 1000,
        max_pending: int | None = None,
        prefix: str = "sse:",
        max_connections: int = 16,
        block: float = 2.0,
        timeout: float = 10.0,
        max_event_size: int = MAX_EVENT_SIZE,
        idempotency_window: float = IDEMPOTENCY_WINDOW,
    ) -> RedisBroker:
        """Create a broker for the Redis server at ``url``; see :class:`RedisBroker`."""
        return cls(
            url,
            history=history,
            max_pending=max_pending,
            prefix=prefix,
            max_connections=max_connections,
            block=block,
            timeout=timeout,
            max_event_size=max_event_size,
            idempotency_window=idempotency_window,
        )

    def __repr__(self) -> str:
        return f"<RedisBroker {self._commands.connection_pool!r} history={self.history}>"

    def _key(self, channel: str) -> bytes:
        return (self.prefix + channel).encode()

    def _proc(self) -> _Process:
        proc = self._process
        if proc is None or proc.pid != os.getpid():
            with self._setup_lock:
                proc = self._process
                if proc is None or proc.pid != os.getpid():
                    proc = self._process = _Process()
        return proc

    # -- publishing ----------------------------------------------------------------------

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
        """Add one event to the channel's stream (``XADD``) and return its id.

        Subscribers in every process read it from there. Parameters as for
        :meth:`MemoryBroker.publish <sse_sync.MemoryBroker.publish>`. The outcomes:

        - the id: stored.
        - ``ValueError``/``TypeError`` (bad channel or event, over ``max_event_size``),
          ``RuntimeError`` (after :meth:`close`): raised before anything is sent; not stored.
        - ``redis.ResponseError``: Redis refused the command (out of memory, a key of another
          type); not stored.
        - ``redis.TimeoutError``, ``redis.ConnectionError``: unknown. Redis may have stored
          the event (and delivered it) before the reply was lost: a ``TimeoutError`` after a
          stall of the server is the usual case. Nothing is retried automatically; retry with
          the same ``idempotency_key`` to have it stored exactly once.

        With an ``idempotency_key`` the publish is one Lua script (``GET`` the key, else
        ``XADD`` and ``SET`` the key with the id for ``idempotency_window``): atomic, and still
        one round trip.
        """
        check_channel(channel)
        idem = check_idempotency_key(idempotency_key)
        wire, json_bytes = prepare_event(data, event, raw_data, retry, self.max_event_size)
        if self._closed:
            msg = "This RedisBroker was closed; publish() can only be used before close()"
            raise RuntimeError(msg)
        fields: dict[str, str | bytes] = {}
        if wire.event is not None:
            fields["event"] = wire.event
        if json_bytes is not None:
            fields["data"] = json_bytes
        elif raw_data is not None:
            fields["raw"] = raw_data
        if retry is not None:
            fields["retry"] = str(retry)
        if idem is None:
            stream_id = self._commands.xadd(
                self._key(channel),
                fields,  # type: ignore[arg-type]
                maxlen=self.history,
                approximate=True,
            )
        else:
            # "#" is in no channel name: this key is no channel's stream.
            keys = [self._key(channel), self._key(channel) + b"#idempotency:" + idem.encode()]
            window_ms = _ms(self.idempotency_window)
            args = [self.history, window_ms, *(part for pair in fields.items() for part in pair)]
            stream_id = self._publish_once(keys=keys, args=args)
        with self._setup_lock:
            self._published += 1
        observe.published()
        return _text(stream_id)

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self, channel: str | Iterable[str], last_event_id: str | None = None
    ) -> Subscription:
        """Return a :class:`Subscription` to ``channel`` (or several channels).

        It yields the retained events after ``last_event_id`` (``None``: none), then live
        ones. Unless this process already follows the channel, this asks Redis where the
        channel is (one ``XINFO STREAM``); the rest happens on the first read. See
        :class:`~sse_sync.Broker`.
        """
        return Subscription(self, channel, last_event_id, self.max_pending)

    def _info(self, channel: str) -> _StreamInfo:
        pipe = self._commands.pipeline(transaction=False)
        pipe.xinfo_stream(self._key(channel))
        (reply,) = pipe.execute(raise_on_error=False)
        return _StreamInfo.parse(reply)

    def _probe(self, client: Any, key: bytes, at: str) -> tuple[_StreamInfo, bool]:
        """``XINFO STREAM`` and whether the entry ``at`` is there, in one ``MULTI``."""
        pipe = client.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xrange(key, min=at, max=at, count=1)
        info_reply, rows = pipe.execute(raise_on_error=False)
        if isinstance(rows, Exception):
            raise rows
        return _StreamInfo.parse(info_reply), bool(rows)

    def _entry(self, row: Any) -> _Entry | None:
        """An entry from one ``(id, fields)`` of XREAD/XRANGE; ``None`` (logged) if malformed.

        Anyone can XADD to a stream: an entry that is not UTF-8, has data that is not JSON, or
        fields that make no valid event is skipped, never raised (it would end the reader or
        every replay through it).
        """
        try:
            stream_id = _text(row[0])
            key = _parse_id(stream_id)
            if key is None:
                msg = f"Expected a stream id, got {stream_id!r}"
                raise ValueError(msg)
            fields = {_text(k): _text(v) for k, v in row[1].items()}
            data = fields.get("data")
            if data is not None:
                json.loads(data)
            retry = int(fields["retry"]) if "retry" in fields else None
            wire = ServerSentEvent(
                event=fields.get("event"),
                retry=retry,
                raw_data=data if data is not None else fields.get("raw"),
            )
            return _Entry(key, stream_id, wire, data is not None, key[0] / 1000)
        except Exception as exc:
            logger.warning("Skipping malformed stream entry %r (%s)", row, exc)
            return None

    def _position(self, row: Any) -> tuple[Key, str] | None:
        """The key and id of one ``(id, fields)`` row, even if the entry is malformed."""
        try:
            stream_id = _text(row[0])
        except Exception:
            return None
        key = _parse_id(stream_id)
        return None if key is None else (key, stream_id)

    def _acquire(self, channel: str) -> _Log:
        """The channel's log in this process, created with one XINFO if missing; +1 user.

        Creating it notes the Redis server's ``run_id`` too: the reader checks positions read
        from another run of the server (see :meth:`_check_heads`).
        """
        proc = self._proc()
        while True:
            with proc.lock:
                log = proc.logs.get(channel)
                if log is not None:
                    proc.users[channel] += 1
                    self._start_reader(proc)  # if it died: every new subscription checks
                    return log
                pending = proc.pending.get(channel)
                creator = pending is None
                if pending is None:
                    pending = proc.pending[channel] = threading.Event()
            if not creator:
                pending.wait(10.0)
                continue
            try:
                pipe = self._commands.pipeline(transaction=False)
                pipe.xinfo_stream(self._key(channel))
                pipe.info("server")
                info_reply, server = pipe.execute(raise_on_error=False)
                info = _StreamInfo.parse(info_reply)
                log = _Log(channel, self.local_history, info.last, info.last_id)
                with proc.lock:
                    proc.logs[channel] = log
                    proc.by_key[self._key(channel)] = log
                    proc.runs[self._key(channel)] = _run_id(server)
                    proc.users[channel] = 1
                    proc.version += 1
                    self._start_reader(proc)
                self._unblock_reader(proc)
                return log
            finally:
                with proc.lock:
                    proc.pending.pop(channel, None)
                pending.set()

    def _release(self, log: _Log) -> None:
        proc = self._proc()
        with proc.lock:
            users = proc.users.get(log.channel, 0) - 1
            if users > 0:
                proc.users[log.channel] = users
            elif proc.logs.get(log.channel) is log:
                # The reader stops reading it at its next XREAD; entries it still gets for the
                # key go to a new log, if one was made meanwhile, which drops what it has.
                key = self._key(log.channel)
                del proc.logs[log.channel], proc.by_key[key], proc.runs[key]
                del proc.users[log.channel]
                proc.version += 1

    def _head(self, channel: str) -> str | None:
        if self._closed:
            return None  # the subscription ends at its first read: no need to ask Redis
        proc = self._proc()
        with proc.lock:
            log = proc.logs.get(channel)
        if log is not None:
            with log.lock:
                return log.head_id
        # Not followed in this process yet: ask Redis, so that "live" means from subscribe()
        # on. If Redis cannot be reached, live starts at the first read instead; the stream
        # itself then reports the error (and ends, so the client reconnects).
        try:
            return self._info(channel).last_id
        except self._redis.RedisError:
            return None

    def _attach(
        self, sub: Subscription, channel: str, position: str | None, valid: bool
    ) -> tuple[_Cursor, ServerSentEvent | None]:
        if self._closed:  # the reader is stopped: end the subscription, registering nothing
            sub.close()
            return _Cursor(sub, _Log(channel, 1, (0, 0), "0-0")), None
        log = self._acquire(channel)
        try:
            reset = None
            key = None if position is None else _parse_id(position)
            with log.lock:
                cursor = _Cursor(sub, log)
                if not valid:
                    reset = _reset(channel, "unknown", sub.last_event_id)
                elif position is not None and key is None:
                    reset = _reset(channel, "unknown", position)
                elif key is not None and position is not None and log.floor <= key <= log.head:
                    if log.holds(key):
                        cursor.pos = log.index_after(key)  # the in-process log has it all
                        cursor.key, cursor.id = key, position
                    else:  # in the log's range, yet no position of this stream: not ours
                        reset = _reset(channel, "unknown", position)
                    key = None
            if key is not None and position is not None:
                info, present = self._probe(self._commands, self._key(channel), position)
                verdict = info.verdict(key, present)
                if verdict is not None:
                    reset = _reset(channel, verdict, position)
                else:
                    cursor.pos = -1  # catch up from Redis first
                    cursor.key, cursor.id = key, position
            with log.lock:
                log.add(cursor)
            if self._closed:  # closed meanwhile, perhaps after close() ended the others
                sub.close()
            return cursor, reset
        except BaseException:
            self._release(log)
            raise

    def _detach(self, cursor: _Cursor) -> None:
        log = cursor.log
        with log.lock:
            present = log.remove(cursor)
        if present:
            self._release(log)

    def _catch_up(self, cursor: _Cursor, limit: int) -> list[_Entry] | None:
        key = self._key(cursor.channel)
        while True:
            # From the position itself: while its entry is there, nothing after it is gone.
            pipe = self._commands.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xrange(key, min=cursor.id, max="+", count=limit + 1)
            info_reply, rows = pipe.execute(raise_on_error=False)
            if isinstance(rows, Exception):
                raise rows
            first = self._position(rows[0]) if rows else None
            present = first is not None and first[0] == cursor.key
            if _StreamInfo.parse(info_reply).verdict(cursor.key, present) is not None:
                return None
            if present:
                rows = rows[1:]
            entries = [e for e in map(self._entry, rows) if e is not None]
            last = self._position(rows[-1]) if rows else None
            if entries or last is None:
                break
            # A page of malformed entries only: move past it, so they are not read again.
            cursor.key, cursor.id = last
        if not rows:
            # Redis has nothing after the position: the log has everything there is after it.
            log = cursor.log
            with log.lock:
                if cursor.key < log.floor:
                    cursor.key, cursor.id = log.floor, log.floor_id
        return entries

    def _count(self, counter: str, delta: int) -> None:
        if counter == "overflows":
            with self._setup_lock:
                self._overflows += delta
        else:
            proc = self._proc()
            with proc.lock:
                proc.subscribers += delta

    # -- the reader ----------------------------------------------------------------------

    def _start_reader(self, proc: _Process) -> None:
        """Start this process's reader, or a new one if it died (call with ``proc.lock`` held)."""
        reader = proc.reader
        if (reader is None or not reader.is_alive()) and not proc.stop.is_set():
            if reader is not None:
                logger.error("The Redis reader had stopped; starting a new one")
            proc.reader_id = None
            proc.reader = threading.Thread(
                target=self._read_forever, args=(proc,), name="sse_sync-redis-reader", daemon=True
            )
            proc.reader.start()

    def _unblock_reader(self, proc: _Process) -> None:
        """Make the reader's XREAD return now, to read a channel just added (or to stop).

        ``CLIENT UNBLOCK`` only works once the XREAD is blocked in Redis, so it is repeated
        (for at most half a second) until the reader is reading the current channels.
        """
        proc.wakeup.set()
        deadline = time.monotonic() + 0.5
        while True:
            reader = proc.reader
            if reader is None or not reader.is_alive() or reader is threading.current_thread():
                return
            with proc.lock:
                if not proc.stop.is_set() and proc.reading == proc.version:
                    return
            reader_id = proc.reader_id
            if reader_id is not None:
                try:
                    if self._commands.client_unblock(reader_id):
                        return
                except self._redis.RedisError:
                    return  # it sees the change after its current BLOCK instead
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def _read_forever(self, proc: _Process) -> None:
        redis = self._redis
        client: Any = None
        backoff = _BACKOFF_MIN
        failing = False
        while not proc.stop.is_set():
            with proc.lock:
                streams = {key: log.head_id for key, log in proc.by_key.items()}
                proc.reading = proc.version
                proc.wakeup.clear()
            if not streams:
                proc.wakeup.wait(self.block)
                continue
            try:
                if client is None:
                    client = redis.Redis.from_url(self.url, **self._reader_options)
                    proc.reader_id = client.client_id()
                    self._check_heads(proc, client)
                    continue  # the heads may have moved
                batches = self._check_jumps(
                    proc,
                    client,
                    streams,
                    client.xread(streams, count=_READ_COUNT, block=_ms(self.block)),
                )
            except Exception as exc:
                proc.reader_id = None
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        logger.debug("Closing the Redis reader's connection failed", exc_info=True)
                    client = None
                if proc.stop.is_set():
                    break
                with proc.lock:
                    proc.reconnects += 1
                observe.broker_reconnect()
                if not isinstance(exc, redis.RedisError):
                    logger.exception("The Redis reader failed; retrying in %.2f s", backoff)
                elif not failing:
                    logger.warning("Reading from Redis failed (%s); reconnecting", exc)
                else:
                    logger.debug("Reading from Redis failed again (%s)", exc)
                failing = True
                proc.stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            if failing:
                logger.warning("Reading from Redis again; subscribers resume where they were")
                failing = False
            backoff = _BACKOFF_MIN
            try:
                self._fan_out(proc, batches)
            except Exception:
                # Not a Redis error: log it, and read on after a pause (the heads did not move
                # past what was not delivered, so the next XREAD reads it again).
                logger.exception("Delivering events read from Redis failed; retrying")
                proc.stop.wait(_BACKOFF_MAX)
            del batches  # not kept while the next XREAD waits: a batch can be large
        if client is not None:
            client.close()

    def _check_heads(self, proc: _Process, client: Any) -> None:
        """On (re)connecting: start over, with a ``reset``, every stream that lost events.

        A stream kept everything after the position the process read to only if the entry
        there is still in it (Redis trims from the start, and a restart without persistence
        loses the whole stream). From position ``0-0`` (nothing read yet) there is no entry
        to look for: after a restart of the server (another ``run_id``) such a stream gets a
        reset, since events published before the restart may be gone unseen.
        """
        with proc.lock:
            followed = list(proc.by_key.items())
            runs = dict(proc.runs)
        if not followed:
            return
        # Not a MULTI: a refused INFO must not abort the rest. Each XRANGE is what counts.
        pipe = client.pipeline(transaction=False)
        pipe.info("server")
        heads = []
        for key, log in followed:
            with log.lock:
                head, head_id = log.head, log.head_id
            heads.append((key, log, head))
            pipe.xinfo_stream(key)
            pipe.xrange(key, min=head_id, max=head_id, count=1)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[2::2]:  # the XRANGEs
            if isinstance(reply, Exception):
                raise reply
        run = _run_id(replies[0])
        lost = []
        for i, (key, log, head) in enumerate(heads):
            info = _StreamInfo.parse(replies[1 + 2 * i])
            same_run = run is not None and runs.get(key) == run
            kept = bool(replies[2 + 2 * i]) if head != (0, 0) else same_run
            if not kept:
                lost.append((log, info, "expired" if same_run and info.exists else "lost"))
        self._lost(lost)
        with proc.lock:
            for key, log, _ in heads:
                if proc.by_key.get(key) is log:
                    proc.runs[key] = run

    def _check_jumps(
        self, proc: _Process, client: Any, streams: dict[bytes, str], reply: Any
    ) -> list[tuple[bytes, list[Any]]]:
        """The rows of ``reply`` per stream, without those of streams that lost events.

        ``XREAD`` after a position that was trimmed meanwhile returns what is left after it,
        skipping what was trimmed. Only a reply of ``min(COUNT, history)`` rows or more can
        follow a trimmed position (a stream keeps at least ``history`` entries), so only
        then is the position's entry looked for; if it is gone, the stream starts over with
        a ``reset``. (Checked just after the read, so it can be trimmed in between: a reset
        not needed, for a process already about ``history`` events behind.)
        """
        items = reply.items() if isinstance(reply, dict) else (reply or ())
        batches = []
        for name, rows in items:
            key = name if isinstance(name, bytes) else name.encode()
            head_id = streams.get(key)
            if head_id is not None and len(rows) >= min(_READ_COUNT, self.history):
                info, present = self._probe(client, key, head_id)
                if info.verdict(_parse_id(head_id) or (0, 0), present) is not None:
                    with proc.lock:
                        log = proc.by_key.get(key)
                    if log is not None:
                        self._lost([(log, info, "expired")])
                    continue
            batches.append((key, rows))
        return batches

    def _lost(self, lost: list[tuple[_Log, _StreamInfo, str]]) -> None:
        """Start each log over at its stream's end, ``reason`` given; log it once."""
        if not lost:
            return
        names = ", ".join(f"{log.channel} ({reason})" for log, _, reason in lost[:10])
        more = f" and {len(lost) - 10} more" if len(lost) > 10 else ""
        logger.warning(
            "Events after what this process read are gone from Redis for %d channel(s): "
            "%s%s; their subscribers get a reset event and continue live",
            len(lost),
            names,
            more,
        )
        for log, info, reason in lost:
            cursors, count = log.rebase(info.last, info.last_id, reason)
            notify(cursors, count)

    def _fan_out(self, proc: _Process, batches: list[tuple[bytes, list[Any]]]) -> None:
        for key, rows in batches:
            with proc.lock:
                log = proc.by_key.get(key)
            if log is None or not rows:
                continue
            entries = [e for e in map(self._entry, rows) if e is not None]
            # Move the head past malformed entries too, or the next XREAD would read them again.
            read_to = self._position(rows[-1]) if len(entries) < len(rows) else None
            cursors, count = log.extend(entries, read_to)
            notify(cursors, count)

    # -- the rest ------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters of this process: ``channels``, ``subscribers``, ``published``,
        ``overflows`` and ``reconnects`` (of the reader, after Redis errors)."""
        proc = self._proc()
        with proc.lock:
            return {
                "channels": len(proc.logs),
                "subscribers": proc.subscribers,
                "published": self._published,
                "overflows": self._overflows,
                "reconnects": proc.reconnects,
            }

    def close(self) -> None:
        """Stop the reader, end every subscription and close the connections. Idempotent."""
        self._closed = True
        proc = self._proc()
        proc.stop.set()
        proc.wakeup.set()
        self._unblock_reader(proc)
        with proc.lock:
            logs = list(proc.logs.values())
            reader = proc.reader
        for cursor in cursors_of(logs):
            cursor.sub.close()
        if reader is not None and reader is not threading.current_thread():
            reader.join(self.block + 1.0)
        self._commands.close()
