"""Redis Streams as ``RedisBroker`` reads them: stream ids, what ``XINFO STREAM`` says, entries.

Both the broker (publish, resume, catch-up) and its reader (live) use these; nothing here keeps
state. redis-py is imported by :func:`import_redis` only, when a broker is created.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._event import ServerSentEvent
from ._log import Entry, Order, Position, ResetReason
from ._logging import logger

__all__ = [
    "StreamInfo",
    "entry_of",
    "import_redis",
    "ms",
    "parse_id",
    "position_of",
    "probe",
    "run_id",
    "stream_key",
    "text",
]

_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
#: The largest part of a stream id Redis accepts (an unsigned 64-bit int).
_ID_PART_MAX = 2**64 - 1


def import_redis() -> ModuleType:
    """redis-py, or an ``ImportError`` naming the extra to install."""
    try:
        import redis
    except ImportError as exc:
        msg = "RedisBroker requires the 'redis' package: pip install 'sse_sync[redis]'"
        raise ImportError(msg) from exc
    return redis


def stream_key(prefix: str, channel: str) -> bytes:
    """The key of ``channel``'s stream."""
    return (prefix + channel).encode()


def ms(seconds: float) -> int:
    """Seconds (our unit everywhere) to the milliseconds Redis takes (``BLOCK``, ``PX``)."""
    return max(1, round(seconds * 1000))


def parse_id(id: str) -> Order | None:
    """The order of a stream id ``"<ms>-<seq>"`` Redis would accept, else ``None``."""
    found = _STREAM_ID.fullmatch(id)
    if found is None:
        return None
    order = (int(found.group(1)), int(found.group(2)))
    return order if max(order) <= _ID_PART_MAX else None


def run_id(reply: Any) -> str | None:
    """The server's ``run_id`` from an ``INFO server`` reply; ``None`` if INFO was refused
    (some hosted Redis rename it): then every reconnection counts as a restart."""
    return None if isinstance(reply, Exception) else str(reply["run_id"])


def text(value: Any) -> str:
    """A reply's bytes (or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class StreamInfo:
    """What ``XINFO STREAM`` says about going on after a position."""

    exists: bool
    last: Position
    first: Order | None
    trimmed: bool

    @classmethod
    def parse(cls, reply: Any) -> StreamInfo:
        """From an ``XINFO STREAM`` reply (or the error it raised: ``no such key``)."""
        if isinstance(reply, Exception):
            if "no such key" in str(reply).lower():
                return cls(False, Position((0, 0), "0-0"), None, False)
            raise reply
        last_id = text(reply["last-generated-id"])
        first_entry = reply.get("first-entry")
        first = parse_id(text(first_entry[0])) if first_entry else None
        added = reply.get("entries-added")
        # Without entries-added (Redis < 7) assume trimming happened: a reset at worst.
        trimmed = added is None or int(added) > int(reply["length"])
        return cls(True, Position(parse_id(last_id) or (0, 0), last_id), first, trimmed)

    def verdict(self, order: Order, present: bool) -> ResetReason | None:
        """``None`` if every event after position ``order`` is still in the stream, else why not.

        :param present: whether the stream holds an entry at ``order``.

        A position is an entry's id (``0-0``: before the first). Redis trims a stream from its
        start, so while the entry at ``order`` is there, so is everything after it. If it is
        not, it was trimmed (``expired``: below the first retained id of a trimmed stream) or
        is not from this stream (``unknown``: never issued, or the stream was lost and made
        again, as by a Redis restart without persistence). A client whose last event was
        exactly the last one trimmed gets a reset it did not need: Redis does not record the
        last trimmed id.
        """
        if order == (0, 0):
            return "expired" if self.trimmed else None
        if present:
            return None
        if self.exists and self.trimmed and order < (self.first or self.last.order):
            return "expired"
        return "unknown"


def probe(client: Any, key: bytes, at: str) -> tuple[StreamInfo, bool]:
    """``XINFO STREAM`` and whether the entry ``at`` is there, in one ``MULTI``."""
    pipe = client.pipeline(transaction=True)
    pipe.xinfo_stream(key)
    pipe.xrange(key, min=at, max=at, count=1)
    info_reply, rows = pipe.execute(raise_on_error=False)
    if isinstance(rows, Exception):
        raise rows
    return StreamInfo.parse(info_reply), bool(rows)


def entry_of(row: Any) -> Entry | None:
    """The entry of one ``(id, fields)`` row of XREAD/XRANGE; ``None`` (logged) if malformed.

    Anyone can XADD to a stream: an entry that is not UTF-8, has data that is not JSON, or
    fields that make no valid event is skipped, never raised (it would end the reader or
    every replay through it).
    """
    try:
        stream_id = text(row[0])
        order = parse_id(stream_id)
        if order is None:
            msg = f"Expected a stream id, got {stream_id!r}"
            raise ValueError(msg)
        fields = {text(k): text(v) for k, v in row[1].items()}
        data = fields.get("data")
        if data is not None:
            json.loads(data)
        retry = int(fields["retry"]) if "retry" in fields else None
        wire = ServerSentEvent(
            event=fields.get("event"),
            retry=retry,
            raw_data=data if data is not None else fields.get("raw"),
        )
        return Entry(order, stream_id, wire, data is not None, order[0] / 1000)
    except Exception as exc:
        logger.warning("Skipping malformed stream entry %r (%s)", row, exc)
        return None


def position_of(row: Any) -> Position | None:
    """The position of one ``(id, fields)`` row, even if the entry is malformed."""
    try:
        stream_id = text(row[0])
    except Exception:
        return None
    order = parse_id(stream_id)
    return None if order is None else Position(order, stream_id)
