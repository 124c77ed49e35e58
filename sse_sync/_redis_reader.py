"""``RedisBroker``'s reader: one per process, following every channel with subscribers here.

It runs ``XREAD BLOCK`` over those channels' streams on one connection of its own, and appends
what it reads to the channels' logs, which the subscriptions read: Redis connections grow with
processes, never with clients. It owns two threads (greenlets under gevent): the reader, and an
unblocker that makes the reader's ``XREAD`` return when the channels change, so that a new
channel's events do not wait for the current ``BLOCK`` to end.

* The reader's socket timeout is longer than its ``BLOCK`` (the broker sets it), so a quiet
  channel never looks like a dead connection, and a dead one is noticed. On any error it
  reconnects with capped exponential backoff and resumes from the last id it read: subscribers
  lose nothing Redis kept.
* On every (re)connection: one pipeline with ``INFO server`` and, per channel followed,
  ``XINFO STREAM`` and ``XRANGE head head``. A channel whose head entry is gone (a restart
  without persistence, a stream deleted or trimmed past the reader) starts over at the stream's
  current end, and its subscribers get a ``reset`` (``lost``; ``expired`` if only trimmed). A
  channel at ``0-0`` has no entry to look for: if the server's ``run_id`` is not the one its
  position was read from (noted when the process started following it), it gets a ``reset``
  too, since events published just before the restart may be gone unseen.
* Between reconnections, ``XREAD`` after a trimmed position silently returns what is left. That
  needs a reply of ``min(COUNT, history)`` rows or more (a stream keeps at least ``history``
  entries), so only such a reply costs a check of the head entry (``MULTI`` ``XINFO`` +
  ``XRANGE``); the usual reply of a few events costs nothing more.

Invariants, and why they hold:

1. A log is followed while subscriptions hold it: :meth:`StreamReader.acquire` and
   :meth:`~StreamReader.release` count them on the log, under ``_lock``; one creator makes a
   missing log (with one ``XINFO``, outside the lock), concurrent acquirers wait for it.
2. The reader soon reads a channel added: every change bumps ``_version`` under ``_lock``, and
   an addition nudges the unblocker, which repeats ``CLIENT UNBLOCK`` (it only works once the
   ``XREAD`` is blocked in Redis) until the reader has taken that version (``_reading``), for
   at most half a second. Neither a subscribing request nor the reader waits for it. A channel
   dropped is dropped from the next ``XREAD``.
3. A log's head moves only past what was appended (or skipped as malformed), so the next
   ``XREAD`` reads on from exactly there; an error before the append reads the same again.
4. Nothing is acquired after :meth:`~StreamReader.close`: ``_closed`` is set under ``_lock``,
   which ``acquire`` takes; the logs then followed are closed, so their subscriptions end.

Lock order: ``_lock``, then a log's lock (see ``_log``). Wake-ups are sent with no lock held.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ._log import ChannelLog, ResetReason
from ._logging import logger
from ._redis_streams import (
    StreamInfo,
    entry_of,
    ms,
    parse_id,
    position_of,
    probe,
    run_id,
    stream_key,
)
from ._store import Counters

__all__ = ["StreamReader"]

#: Most entries one XREAD takes per stream.
_READ_COUNT = 1000
#: Reconnection backoff of the reader, in seconds.
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
#: How long the unblocker repeats CLIENT UNBLOCK, and how often, in seconds.
_UNBLOCK_FOR = 0.5
_UNBLOCK_EVERY = 0.005


class StreamReader:
    """This process's reader of a ``RedisBroker``'s streams, and the channel logs it feeds.

    :param commands: the broker's command client (``XINFO`` for a new log, ``CLIENT UNBLOCK``).
    :param connect: makes the reader's own connection (a client of one connection).
    :param error: ``redis.RedisError``: what a failing command raises.
    :param prefix: prepended to channel names to make the stream keys.
    :param block: seconds one ``XREAD BLOCK`` waits.
    :param history: the least entries a stream keeps (``MAXLEN ~``).
    :param log_size: entries each log keeps in this process.
    :param counters: this process's counters (the reader counts its reconnections).
    """

    def __init__(
        self,
        *,
        commands: Any,
        connect: Callable[[], Any],
        error: type[Exception],
        prefix: str,
        block: float,
        history: int,
        log_size: int,
        counters: Counters,
    ) -> None:
        self.pid = os.getpid()
        self._commands = commands
        self._connect = connect
        self._error = error
        self._prefix = prefix
        self._block = block
        self._history = history
        self._log_size = log_size
        self._counters = counters
        self._lock = threading.Lock()
        self._logs: dict[str, ChannelLog] = {}
        self._by_key: dict[bytes, ChannelLog] = {}
        self._pending: dict[str, threading.Event] = {}  # channel -> its log is being made
        #: stream key -> the Redis server's run_id its log's position was read from
        self._runs: dict[bytes, str | None] = {}
        self._version = 0  # bumped when the set of channels changes
        self._reading = 0  # the version the reader's current XREAD was built from
        self._changed = threading.Event()  # what an idle reader waits on
        self._nudged = threading.Event()  # what the unblocker waits on
        self._stop = threading.Event()
        self._closed = False
        self._reader: threading.Thread | None = None
        self._unblocker: threading.Thread | None = None
        self._client: Any = None  # the reader's connection, used by the reader only
        self._client_id: int | None = None  # its CLIENT ID

    def __len__(self) -> int:
        """How many channels this process follows."""
        return len(self._logs)

    def key(self, channel: str) -> bytes:
        """The stream key of ``channel``."""
        return stream_key(self._prefix, channel)

    # -- the channels followed -----------------------------------------------------------

    def log(self, channel: str) -> ChannelLog | None:
        """The channel's log, if this process follows it."""
        with self._lock:
            return self._logs.get(channel)

    def acquire(self, channel: str) -> ChannelLog | None:
        """The channel's log, made with one ``XINFO`` if missing; one more user. ``None`` once
        closed.

        Making it notes the Redis server's ``run_id`` too: the reader checks positions read
        from another run of the server (see :meth:`_check_heads`).
        """
        while True:
            with self._lock:
                if self._closed:
                    return None
                log = self._logs.get(channel)
                if log is not None:
                    log.acquire()
                    self._start()  # if a thread died: every new subscription checks
                    return log
                pending = self._pending.get(channel)
                creator = pending is None
                if pending is None:
                    pending = self._pending[channel] = threading.Event()
            if not creator:
                pending.wait(10.0)
                continue
            try:
                key = self.key(channel)
                pipe = self._commands.pipeline(transaction=False)
                pipe.xinfo_stream(key)
                pipe.info("server")
                info_reply, server = pipe.execute(raise_on_error=False)
                log = ChannelLog(channel, self._log_size, StreamInfo.parse(info_reply).last)
                with self._lock:
                    if self._closed:
                        return None
                    self._logs[channel] = log
                    self._by_key[key] = log
                    self._runs[key] = run_id(server)
                    log.acquire()
                    self._changed_locked(nudge=True)
                    self._start()
                return log
            finally:
                with self._lock:
                    self._pending.pop(channel, None)
                pending.set()

    def release(self, log: ChannelLog) -> None:
        """One user less; the reader stops following the channel when none is left."""
        channel = log.channel
        with self._lock:
            if not log.release() and self._logs.get(channel) is log:
                # The reader stops reading it at its next XREAD; entries it still gets for the
                # key go to a new log, if one was made meanwhile, which drops what it has.
                key = self.key(channel)
                del self._logs[channel], self._by_key[key], self._runs[key]
                self._changed_locked(nudge=False)  # read at the next XREAD: no hurry

    def close(self, timeout: float) -> None:
        """Stop both threads (waiting up to ``timeout`` seconds), close every log. Idempotent."""
        with self._lock:
            self._closed = True
            self._stop.set()
            logs = list(self._logs.values())
            threads = [t for t in (self._reader, self._unblocker) if t is not None]
        self._changed.set()
        self._nudged.set()
        for log in logs:
            log.close().send()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _changed_locked(self, *, nudge: bool) -> None:
        """The set of channels changed (``_lock`` held).

        :param nudge: unblock the reader's ``XREAD`` to read the new set now.
        """
        self._version += 1
        if nudge:
            self._changed.set()
            self._nudged.set()

    def _start(self) -> None:
        """Start the threads, or new ones for those that died (``_lock`` held)."""
        if self._stop.is_set():
            return
        if self._reader is None or not self._reader.is_alive():
            if self._reader is not None:
                logger.error("The Redis reader had stopped; starting a new one")
            self._client_id = None
            self._reader = _thread(self._read_forever, "sse_sync-redis-reader")
        if self._unblocker is None or not self._unblocker.is_alive():
            self._unblocker = _thread(self._unblock_forever, "sse_sync-redis-unblocker")

    # -- the unblocker -------------------------------------------------------------------

    def _unblock_forever(self) -> None:
        """Make the reader's ``XREAD`` return whenever the channels change, or it is to stop."""
        while True:
            self._nudged.wait()
            self._nudged.clear()
            deadline = time.monotonic() + _UNBLOCK_FOR
            while not self._reader_current() and time.monotonic() < deadline:
                client_id = self._client_id
                if client_id is not None:
                    try:
                        if self._commands.client_unblock(client_id):
                            break
                    except self._error:
                        break  # it sees the change after its current BLOCK instead
                time.sleep(_UNBLOCK_EVERY)  # until the XREAD is blocked in Redis
            if self._stop.is_set():
                return

    def _reader_current(self) -> bool:
        """Whether the reader reads the current channels (or has ended)."""
        reader = self._reader
        if reader is None or not reader.is_alive():
            return True
        with self._lock:
            return not self._stop.is_set() and self._reading == self._version

    # -- the reader ----------------------------------------------------------------------

    def _read_forever(self) -> None:
        try:
            self._read_loop()
        finally:  # however the thread ends (a BaseException too), its connection is closed
            self._disconnect()

    def _disconnect(self) -> None:
        """Close the reader's connection, if it has one (only the reader calls this)."""
        client, self._client = self._client, None
        self._client_id = None
        if client is not None:
            try:
                client.close()
            except Exception:
                logger.debug("Closing the Redis reader's connection failed", exc_info=True)

    def _read_loop(self) -> None:
        backoff = _BACKOFF_MIN
        failing = False
        while not self._stop.is_set():
            with self._lock:
                streams = {key: log.head.id for key, log in self._by_key.items()}
                self._reading = self._version
                self._changed.clear()
            if not streams:
                self._changed.wait(self._block)
                continue
            try:
                client = self._client
                if client is None:
                    client = self._client = self._connect()
                    self._client_id = client.client_id()
                    self._check_heads(client)
                    continue  # the heads may have moved
                reply = client.xread(streams, count=_READ_COUNT, block=ms(self._block))
                batches = self._check_jumps(client, streams, reply)
            except Exception as exc:
                self._disconnect()
                if self._stop.is_set():
                    break
                self._counters.reader_reconnected()
                if not isinstance(exc, self._error):
                    logger.exception("The Redis reader failed; retrying in %.2f s", backoff)
                elif not failing:
                    logger.warning("Reading from Redis failed (%s); reconnecting", exc)
                else:
                    logger.debug("Reading from Redis failed again (%s)", exc)
                failing = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            if failing:
                logger.warning("Reading from Redis again; subscribers resume where they were")
                failing = False
            backoff = _BACKOFF_MIN
            try:
                self._fan_out(batches)
            except Exception:
                # Not a Redis error: log it, and read on after a pause (the heads did not move
                # past what was not delivered, so the next XREAD reads it again).
                logger.exception("Delivering events read from Redis failed; retrying")
                self._stop.wait(_BACKOFF_MAX)
            del batches  # not kept while the next XREAD waits: a batch can be large

    def _check_heads(self, client: Any) -> None:
        """On (re)connecting: start over, with a ``reset``, every stream that lost events.

        A stream kept everything after the position the process read to only if the entry
        there is still in it (Redis trims from the start, and a restart without persistence
        loses the whole stream). From position ``0-0`` (nothing read yet) there is no entry
        to look for: after a restart of the server (another ``run_id``) such a stream gets a
        reset, since events published before the restart may be gone unseen.
        """
        with self._lock:
            followed = list(self._by_key.items())
            runs = dict(self._runs)
        if not followed:
            return
        # Not a MULTI: a refused INFO must not abort the rest. Each XRANGE is what counts.
        pipe = client.pipeline(transaction=False)
        pipe.info("server")
        heads = []
        for key, log in followed:
            head = log.head
            heads.append((key, log, head.order))
            pipe.xinfo_stream(key)
            pipe.xrange(key, min=head.id, max=head.id, count=1)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[2::2]:  # the XRANGEs
            if isinstance(reply, Exception):
                raise reply
        run = run_id(replies[0])
        lost: list[tuple[ChannelLog, StreamInfo, ResetReason]] = []
        for i, (key, log, head_order) in enumerate(heads):
            info = StreamInfo.parse(replies[1 + 2 * i])
            same_run = run is not None and runs.get(key) == run
            kept = bool(replies[2 + 2 * i]) if head_order != (0, 0) else same_run
            if not kept:
                lost.append((log, info, "expired" if same_run and info.exists else "lost"))
        self._lost(lost)
        with self._lock:
            for key, log, _ in heads:
                if self._by_key.get(key) is log:
                    self._runs[key] = run

    def _check_jumps(
        self, client: Any, streams: dict[bytes, str], reply: Any
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
            if head_id is not None and len(rows) >= min(_READ_COUNT, self._history):
                info, present = probe(client, key, head_id)
                if info.verdict(parse_id(head_id) or (0, 0), present) is not None:
                    with self._lock:
                        log = self._by_key.get(key)
                    if log is not None:
                        self._lost([(log, info, "expired")])
                    continue
            batches.append((key, rows))
        return batches

    def _lost(self, lost: list[tuple[ChannelLog, StreamInfo, ResetReason]]) -> None:
        """Start each log over at its stream's end, for the reason given; log it once."""
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
            log.rebase(info.last, reason).send()

    def _fan_out(self, batches: list[tuple[bytes, list[Any]]]) -> None:
        for key, rows in batches:
            with self._lock:
                log = self._by_key.get(key)
            if log is None or not rows:
                continue
            entries = [e for e in map(entry_of, rows) if e is not None]
            # Move the head past malformed entries too, or the next XREAD would read them again.
            read_to = position_of(rows[-1]) if len(entries) < len(rows) else None
            log.extend(entries, read_to).send()


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
