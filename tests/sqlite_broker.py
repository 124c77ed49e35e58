"""A broker of one's own, built on ``sse_sync.brokers`` alone: history in SQLite, live in-process.

Complete and small: it passes tests/broker_contract.py (tests/test_custom_broker.py runs it),
and docs/brokers.md quotes it. The history outlives the process in the database file;
subscribers in this process get events live. Ids are the rows' ``seq`` (one sequence across
channels, never reused), so any id issued is a position in every channel.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

from sse_sync import ServerSentEvent
from sse_sync.brokers import (
    IDEMPOTENCY_WINDOW,
    MAX_EVENT_SIZE,
    ChannelLog,
    Counters,
    Entry,
    Order,
    Position,
    ResetReason,
    Subscription,
    check_channel,
    check_idempotency_key,
    check_limits,
    check_sizes,
    prepare_event,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT,
    event TEXT, text TEXT, retry INTEGER, json INTEGER);
CREATE INDEX IF NOT EXISTS by_channel ON events (channel, seq);
CREATE TABLE IF NOT EXISTS trimmed (channel TEXT PRIMARY KEY, seq INTEGER);
CREATE TABLE IF NOT EXISTS keys (channel TEXT, key TEXT, id TEXT, expires REAL,
    PRIMARY KEY (channel, key));
"""
#: The seq of the channel's event just before the ``history`` newest (trimmed with those before).
_NTH_NEWEST = "SELECT seq FROM events WHERE channel = ? ORDER BY seq DESC LIMIT 1 OFFSET ?"
_SEQ = re.compile(r"[0-9]{1,18}")


class SQLiteBroker:
    """Keeps the last ``history`` events of each channel in SQLite: a Broker, and a Store."""

    def __init__(
        self,
        path: str = ":memory:",
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
        self.counters = Counters()
        # One connection, used under _lock only; _lock is taken before any log's lock.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._logs: dict[str, ChannelLog] = {}
        self._closed = False

    def _one(self, query: str, *args: Any) -> Any:
        row = self._db.execute(query, args).fetchone()
        return None if row is None else row[0]

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
        check_channel(channel)
        key = check_idempotency_key(idempotency_key)
        wire, json_bytes = prepare_event(data, event, raw_data, retry, self.max_event_size)
        sql, now = self._db.execute, time.time()
        with self._lock:
            if self._closed:
                raise RuntimeError("This SQLiteBroker was closed; publish() needs it open")
            with self._db:  # one transaction
                sql("DELETE FROM keys WHERE expires <= ?", (now,))
                known = self._one("SELECT id FROM keys WHERE channel = ? AND key = ?", channel, key)
                if known is not None:
                    return str(known)
                row = (channel, wire.event, wire.raw_data, wire.retry, json_bytes is not None)
                seq = sql("INSERT INTO events VALUES (NULL, ?, ?, ?, ?, ?)", row).lastrowid or 0
                cut = self._one(_NTH_NEWEST, channel, self.history)
                if cut is not None:
                    sql("DELETE FROM events WHERE channel = ? AND seq <= ?", (channel, cut))
                    sql("INSERT OR REPLACE INTO trimmed VALUES (?, ?)", (channel, cut))
                if key is not None:
                    keyed = (channel, key, str(seq), now + self.idempotency_window)
                    sql("INSERT INTO keys VALUES (?, ?, ?, ?)", keyed)
            entry = Entry((seq, 0), str(seq), wire, json_bytes is not None)
            log = self._logs.get(channel)
            wakeup = None if log is None else log.extend([entry])
        self.counters.event_published()
        if wakeup is not None:
            wakeup.send()  # with no lock held, as the Store protocol asks
        return entry.id

    def subscribe(
        self, channel: str | Iterable[str], last_event_id: str | None = None
    ) -> Subscription:
        return Subscription(self, channel, last_event_id, self.max_pending)

    # -- the Store protocol --------------------------------------------------------------

    def head(self, channel: str) -> str | None:
        with self._lock:
            return None if self._closed else str(self._newest())

    def _newest(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events"))

    def attach(self, channel: str) -> ChannelLog | None:
        with self._lock:
            if self._closed:
                return None
            log = self._logs.get(channel)
            if log is None:  # it gets every event from now on; earlier ones come from catch_up
                newest = self._newest()
                log = self._logs[channel] = ChannelLog(
                    channel, self.history, Position((newest, 0), str(newest))
                )
            log.acquire()
            return log

    def detach(self, log: ChannelLog) -> None:
        with self._lock:
            if not log.release() and self._logs.get(log.channel) is log:
                del self._logs[log.channel]

    def locate(self, log: ChannelLog, last_id: str) -> Order | ResetReason:
        if not _SEQ.fullmatch(last_id):
            return "unknown"
        with self._lock:
            if int(last_id) > self._newest():
                return "unknown"
            trimmed = self._one("SELECT seq FROM trimmed WHERE channel = ?", log.channel)
        return "expired" if trimmed is not None and int(last_id) < trimmed else (int(last_id), 0)

    def catch_up(self, channel: str, after: Position, limit: int) -> list[Entry] | None:
        with self._lock:
            trimmed = self._one("SELECT seq FROM trimmed WHERE channel = ?", channel)
            if trimmed is not None and after.order[0] < trimmed:
                return None  # events after `after` were trimmed
            rows = self._db.execute(
                "SELECT seq, event, text, retry, json FROM events WHERE channel = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (channel, after.order[0], limit),
            ).fetchall()
        return [
            Entry((seq, 0), str(seq), ServerSentEvent(event=e, raw_data=t, retry=r), bool(j))
            for seq, e, t, r, j in rows
        ]

    # -- the rest of the Broker protocol -------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {"channels": len(self._logs), **self.counters.snapshot()}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            logs = list(self._logs.values())
        for log in logs:
            log.close().send()  # ends their subscriptions
        with self._lock:
            self._db.close()
