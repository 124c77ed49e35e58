"""The ``Broker`` protocol, and the validation every broker does before it stores anything.

What a broker is made of is elsewhere: a channel's log in this process (``_log``), a
subscriber's view (``_subscription``), and what a subscription asks a broker (``_store``, the
extension point). ``sse_sync.brokers`` offers all of it to brokers of your own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ._channel import check_channel
from ._event import ServerSentEvent, encode_data
from ._subscription import Subscription

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "MAX_EVENT_SIZE",
    "Broker",
    "Subscription",
    "check_channel",
    "check_idempotency_key",
    "check_limits",
    "check_sizes",
    "prepare_event",
]

#: The default largest event a broker accepts: 1 MiB of encoded frame (without its id).
MAX_EVENT_SIZE = 1024 * 1024

#: The default time, in seconds, a broker remembers an ``idempotency_key``.
IDEMPOTENCY_WINDOW = 600.0


def check_sizes(history: object, max_pending: object) -> tuple[int, int]:
    """Validate a broker's ``history`` and ``max_pending``; return both (the default filled in).

    ``history`` is the events kept per channel (an int >= 1); ``max_pending`` how many live
    events a subscriber may fall behind, at most ``history`` (``None``: half the history, at
    most 1000). Raises ``ValueError``.
    """
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
    """Validate a broker's ``max_event_size`` (bytes) and ``idempotency_window`` (seconds).

    Returns both, the window as a float. Raises ``TypeError`` or ``ValueError``.
    """
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
    """Return ``key`` if it is ``None`` or a valid idempotency key (1 to 200 characters).

    Raises ``TypeError`` or ``ValueError`` otherwise.
    """
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
    text in ``raw_data``), as an :class:`~sse_sync.brokers.Entry` takes it, and the JSON bytes
    of ``data`` (``None`` without data). Raises ``ValueError`` or ``TypeError`` before anything
    is published, ``ValueError`` too when the encoded event (without its id) is longer than
    ``max_event_size`` bytes. The arguments are those of ``Broker.publish``.
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


class Broker(Protocol):
    """Fans published events out to subscribers and keeps a bounded history for replay.

    :class:`~sse_sync.MemoryBroker` (one process) and :class:`~sse_sync.RedisBroker` (any
    number of processes and hosts) meet it; so can your own, built on
    :class:`sse_sync.brokers.Store` (docs/brokers.md, "Writing your own broker").
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
