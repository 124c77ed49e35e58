"""What streams and brokers report as they work, for :mod:`sse_sync.metrics`: no-ops until enabled.

Where something happens, the core calls a hook of the one module-level :data:`observe`:
``observe.overflow()``, ``return observe.wrote(frames)``. Every hook of :class:`Hooks` does
nothing, until :func:`install` routes them to an implementation (``sse_sync.metrics.enable()``
installs one backed by prometheus_client). This module imports nothing: ``import sse_sync``
never imports prometheus_client.

Invariants, and why they hold:

1. Disabled, a call site costs one method call: :data:`observe` is a plain object whose hooks
   are methods of its class. :func:`install` puts an implementation's bound methods in the
   object's ``__dict__``, which Python looks at before the class, so call sites never change
   and nothing is looked up twice.
2. A stream's opening and its end are counted by the same implementation:
   :meth:`Hooks.stream_opened` returns the function that reports its end, which the stream
   keeps and calls once (from ``close()``). A stream opened before metrics were enabled, or
   after they were disabled, is never counted as closed, so the open-streams gauge stays
   balanced whenever :func:`install` is called.
3. Per read and per write, not per event: a source reports how many events one read hands
   to the stream (:meth:`Hooks.events_read`, :meth:`Hooks.delivered`), the stream the bytes
   of each write. Counting events in the written bytes instead (``count(b"\\n\\n")``) would
   cost about 1 ns per byte, several percent of a fast stream.
4. Hooks never block, raise or do I/O (sse_sync.metrics takes short locks that are never
   held across a switch), so they may run on any thread or greenlet, in the middle of a
   write, a publish or the Redis reader's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

__all__ = ["CloseReason", "Hooks", "StreamEnd", "ignore_end", "install", "observe"]

#: Why a stream ended, as ``sse_sync_streams_closed_total`` counts it.
CloseReason = Literal[
    "client_gone", "source_end", "source_error", "drain", "max_lifetime", "overflow"
]

#: Reports the end of one stream: called once with why it ended and its frame source (a broker
#: subscription that fell behind, its ``overflowed`` true, makes the reason ``"overflow"``).
StreamEnd = Callable[[CloseReason, object], None]


def ignore_end(reason: CloseReason, source: object) -> None:
    """Report nothing: the end of a stream that was not counted as opened (yet)."""


class Hooks:
    """Every hook, each doing nothing; an implementation overrides the ones it needs."""

    def stream_opened(self) -> StreamEnd:
        """An event stream opened; return what its ``close()`` calls, once, to report its end."""
        return ignore_end

    def wrote(self, chunk: bytes) -> bytes:
        """A stream hands ``chunk`` to the server to write; return ``chunk``."""
        return chunk

    def wrote_ping(self, chunk: bytes) -> bytes:
        """A stream hands a ``: ping`` to the server to write; return ``chunk``."""
        return chunk

    def events_read(self, count: int) -> None:
        """A producer hands ``count`` items of its source to its stream, in one read."""

    def delivered(self, items: Sequence[object]) -> None:
        """A broker subscription hands ``items`` to its stream, in one read.

        Each item is a ``ServerSentEvent`` (a ``reset``) or a tuple whose first element is
        the broker's entry, with ``published_at``: when it was published (``time.time()``).
        """

    def published(self) -> None:
        """A broker stored one event published in this process."""

    def replay_reset(self, reason: str) -> None:
        """A subscriber gets a ``reset`` event (``reason``: expired, unknown or lost)."""

    def overflow(self) -> None:
        """A subscription was ended for falling more than ``max_pending`` events behind."""

    def broker_reconnect(self) -> None:
        """The Redis reader of this process lost its connection and reconnects."""


#: The hooks the core calls. Its methods are :class:`Hooks`' until :func:`install`.
observe = Hooks()

_HOOKS = tuple(name for name in vars(Hooks) if not name.startswith("_"))


def install(hooks: Hooks | None) -> None:
    """Route every hook of :data:`observe` to ``hooks``' methods; ``None``: back to no-ops."""
    routes = vars(observe)
    if hooks is None:
        routes.clear()
    else:
        routes.update({name: getattr(hooks, name) for name in _HOOKS})
