"""What every benchmark server shares: the event payload and the endpoints' parameters.

Every implementation serves the same endpoints with the same per-event work in user code
(build one dict per event, hand it to the library to send as JSON):

``GET /health``
    ``200 ok`` once the server is ready.
``GET /stream?n=N``
    ``N`` events as fast as possible, then the end of the stream.
``GET /sleepy?n=N&sleep=T``
    ``N`` events from a *blocking* producer that calls plain ``time.sleep(T)`` between them.
``GET /idle``
    No events; a keep-alive ping every ``PING`` seconds. Where the library has a broker, a
    subscription to a channel nobody publishes on.
``GET /idle_gen``
    No events either, from a *blocking* generator: ``while True: yield changes.get()`` on a
    queue of its own that nothing is ever put in (the ``wait_for_change()`` pattern), with a
    keep-alive ping every ``PING`` seconds.
``GET /sub?channel=C``
    A subscriber of channel ``C``.
``POST /publish?channel=C&seq=S``
    Publishes ``event(S)`` to every subscriber of ``C``.
``GET /first``
    One event, sent at once, then the end of the stream (time to first event).
``GET /stats``
    :func:`server_stats` as JSON: the live greenlets of the process and its ``PING``.
"""

from __future__ import annotations

import gc
import os
from typing import Any

#: Seconds between keep-alive pings on ``/idle`` (the scenario asks for 1 s pings).
PING = float(os.environ.get("BENCH_PING", "1.0"))

#: Pads the JSON so that one frame (``data: {...}\n\n``) is about 100 bytes.
_PAD = "x" * 36


def event(seq: int) -> dict[str, Any]:
    """The payload of event ``seq``: about 90 bytes of JSON."""
    return {"seq": seq, "name": "item", "price": 32.99, "in_stock": True, "pad": _PAD}


def int_arg(value: str | None, default: int) -> int:
    """Parse an optional integer query parameter."""
    return default if value is None else int(value)


def float_arg(value: str | None, default: float) -> float:
    """Parse an optional float query parameter."""
    return default if value is None else float(value)


def server_stats() -> dict[str, Any]:
    """What the process holds: live greenlets (``None`` without greenlet), and ``PING``.

    Walks every object the garbage collector tracks (greenlets are among them): tens of
    milliseconds with thousands of streams, so the client asks only outside its windows.
    """
    try:
        from greenlet import greenlet
    except ImportError:
        greenlets = None
    else:
        greenlets = sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead)
    return {"greenlets": greenlets, "ping": PING}
