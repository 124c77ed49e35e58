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
    No events; a keep-alive ping every ``PING`` seconds.
``GET /sub?channel=C``
    A subscriber of channel ``C``.
``POST /publish?channel=C&seq=S``
    Publishes ``event(S)`` to every subscriber of ``C``.
``GET /first``
    One event, sent at once, then the end of the stream (time to first event).
"""

from __future__ import annotations

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
