"""Each peer's tutorial code, verbatim but for the one line that returns the stream.

Async code is ported only where it must be (``async def`` -> ``def``, ``await asyncio.sleep``
-> ``time.sleep``). Each module's ``time`` is the real one; the live app shortens the pauses
by replacing it (see ``tests/integration/apps/peers_app.py``), and in-process tests do too.
"""

from __future__ import annotations

from flask import Flask

from . import fastapi_sse, fastapi_views, naive, sse_starlette

#: The peers' tutorial modules, each with its ``time`` and a ``register(app)``.
MODULES = (naive, fastapi_sse, sse_starlette, fastapi_views)


def create_app() -> Flask:
    """A Flask app serving every tutorial (``naive`` at ``/naive/...`` and so on)."""
    app = Flask(__name__)
    for module in MODULES:
        module.register(app)
    return app
