"""``RedisBroker``: fan-out and replay across processes and hosts with Redis Streams.

Each channel is a stream (``XADD <prefix><channel> MAXLEN ~ <history> * ...``); its stream ids
are the events' ids. Per process, one reader (``_redis_reader``) follows every channel this
process has subscribers for and appends what it reads to the channels' logs. This module is the
broker: publishing, and the :class:`~sse_sync.brokers.Store` its subscriptions ask.

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

* Resume (:meth:`RedisBroker.locate`): a ``Last-Event-ID`` is resumed only if its entry is
  there: in the process's log (an entry, or the log's floor or head), else in Redis
  (``XRANGE`` in the ``MULTI`` with ``XINFO``). Otherwise ``reset``: ``expired`` (below the
  first entry of a trimmed stream) or ``unknown`` (never issued, or from a stream Redis lost
  since, even once newer events were published). Catching up from Redis reads from the
  position inclusively, so the same check costs nothing there.
* Live: the reader checks on every reconnection, and after any reply long enough to have
  skipped trimmed entries (see ``_redis_reader``).

What no reader can see: with ``appendfsync everysec`` (Redis's default for AOF) a crash loses
up to a second of acknowledged writes that no process had read yet; ``appendfsync always``
closes that gap.

Invariant: what the broker keeps per process (the reader, its logs, the counters) is made
again in a forked child (gunicorn ``--preload``), under ``_setup_lock``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

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
from ._redis_reader import StreamReader
from ._redis_streams import (
    StreamInfo,
    entry_of,
    import_redis,
    ms,
    parse_id,
    position_of,
    probe,
    stream_key,
    text,
)
from ._store import Counters
from ._subscription import Subscription

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBroker"]

#: Publishes with an idempotency key, atomically: ``XADD`` unless the key names an event
#: already; the key (``KEYS[2]``) then holds that event's id for ``ARGV[2]`` ms. Returns the id
#: and whether it was added now (1) or known (0).
_PUBLISH_ONCE = """
local known = redis.call('GET', KEYS[2])
if known then return {known, 0} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
return {id, 1}
"""


class _Here(NamedTuple):
    """What a broker keeps per process (made again after a fork)."""

    pid: int
    reader: StreamReader
    counters: Counters


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
        redis_module = import_redis()
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
        self._here_now: _Here | None = None
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
        return stream_key(self.prefix, channel)

    def _here(self) -> _Here:
        """This process's reader and counters (made again in a forked child)."""
        here = self._here_now
        if here is None or here.pid != os.getpid():
            with self._setup_lock:
                here = self._here_now
                if here is None or here.pid != os.getpid():
                    counters = Counters()
                    reader = StreamReader(
                        commands=self._commands,
                        connect=self._connect_reader,
                        error=self._redis.RedisError,
                        prefix=self.prefix,
                        block=self.block,
                        history=self.history,
                        log_size=self.local_history,
                        counters=counters,
                    )
                    here = self._here_now = _Here(os.getpid(), reader, counters)
        return here

    def _connect_reader(self) -> Any:
        return self._redis.Redis.from_url(self.url, **self._reader_options)

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
            window_ms = ms(self.idempotency_window)
            args = [self.history, window_ms, *(part for pair in fields.items() for part in pair)]
            stream_id, added = self._publish_once(keys=keys, args=args)
            if not added:
                return text(stream_id)  # published before: not counted again
        self.counters.event_published()
        return text(stream_id)

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

    # -- the Store protocol: what its subscriptions ask ----------------------------------

    @property
    def counters(self) -> Counters:
        """This process's counters (:class:`~sse_sync.brokers.Store`)."""
        return self._here().counters

    def head(self, channel: str) -> str | None:
        """The id of the newest event of ``channel`` (:class:`~sse_sync.brokers.Store`).

        From the process's log if it follows the channel, else from Redis (``XINFO``), so
        that "live" means from ``subscribe()`` on. If Redis cannot be reached, ``None``: live
        starts at the first read instead, where the stream reports the error (and ends, so
        the client reconnects).
        """
        if self._closed:
            return None  # the subscription ends at its first read: no need to ask Redis
        log = self._here().reader.log(channel)
        if log is not None:
            return log.head.id
        pipe = self._commands.pipeline(transaction=False)
        pipe.xinfo_stream(self._key(channel))
        try:
            (reply,) = pipe.execute(raise_on_error=False)
            return StreamInfo.parse(reply).last.id
        except self._redis.RedisError:
            return None

    def attach(self, channel: str) -> ChannelLog | None:
        """The channel's log in this process, followed by the reader until :meth:`detach`."""
        if self._closed:  # the reader is stopped: register nothing
            return None
        return self._here().reader.acquire(channel)

    def detach(self, log: ChannelLog) -> None:
        """One subscription less reads ``log``; the reader stops following it with the last."""
        self._here().reader.release(log)

    def locate(self, log: ChannelLog, last_id: str) -> Order | ResetReason:
        """The order of ``last_id`` if every later event of the channel is still in Redis.

        A position is an entry's id: in the log's range it must be one of the log's positions;
        else its entry is looked for in Redis (``XRANGE id id``, in a ``MULTI`` with
        ``XINFO STREAM``).
        """
        order = parse_id(last_id)
        if order is None:
            return "unknown"
        found = log.lookup(order)
        if found is not None:  # in the log's range: a position of this stream, or not ours
            return order if found else "unknown"
        info, present = probe(self._commands, self._key(log.channel), last_id)
        return info.verdict(order, present) or order

    def catch_up(self, channel: str, after: Position, limit: int) -> list[Entry] | None:
        """The entries after ``after`` from Redis (``XRANGE``), checked in the same ``MULTI``.

        Read from the position itself: while its entry is there, nothing after it is gone.
        """
        key = self._key(channel)
        while True:
            pipe = self._commands.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xrange(key, min=after.id, max="+", count=limit + 1)
            info_reply, rows = pipe.execute(raise_on_error=False)
            if isinstance(rows, Exception):
                raise rows
            first = position_of(rows[0]) if rows else None
            present = first is not None and first.order == after.order
            if StreamInfo.parse(info_reply).verdict(after.order, present) is not None:
                return None
            if present:
                rows = rows[1:]
            entries = [e for e in map(entry_of, rows) if e is not None]
            last = position_of(rows[-1]) if rows else None
            if entries or last is None:
                return entries
            after = last  # a page of malformed entries only: read on after it

    # -- the rest ------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters of this process: ``channels``, ``subscribers``, ``published``,
        ``overflows`` and ``reconnects`` (of the reader, after Redis errors)."""
        here = self._here()
        counters = here.counters
        return {
            "channels": len(here.reader),
            **counters.snapshot(),
            "reconnects": counters.reconnects,
        }

    def close(self) -> None:
        """Stop the reader, end every subscription and close the connections. Idempotent."""
        self._closed = True
        self._here().reader.close(timeout=self.block + 1.0)
        self._commands.close()
        self._commands.connection_pool.disconnect()  # close() leaves a pool it was given open
