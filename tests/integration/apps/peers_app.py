"""Every peer's tutorial (``tests/peers``) behind a real server, with shorter pauses.

``SSE_SYNC_PEERS_PAUSE`` scales the tutorials' ``time.sleep`` calls (default 0.05: a
tutorial's one-second pause takes 50 ms); ``/`` is a blank page for the browser to run in.
"""

from __future__ import annotations

import os
import time
import types

from tests.integration.apps import server_watchdog
from tests.peers import MODULES, create_app

_SCALE = float(os.environ.get("SSE_SYNC_PEERS_PAUSE", "0.05"))


def _sleep(seconds: float) -> None:
    time.sleep(seconds * _SCALE)


for _module in MODULES:
    _module.time = types.SimpleNamespace(sleep=_sleep)  # type: ignore[attr-defined]

app = create_app()


@app.get("/")
def page() -> str:
    return "<!doctype html><title>peers</title><p>tutorials</p>"


server_watchdog.start()
