"""Streams in the API docs: a flask-openapi3 app whose Swagger UI shows each stream's events.

pip install 'sse_sync[flask-openapi3]'
gunicorn -k gevent examples.openapi_app:app      # or: python examples/openapi_app.py
open http://127.0.0.1:8000/swagger               # the document itself: /openapi.json

Swagger UI (served from the flask-openapi3-swagger package, no CDN) reads OpenAPI up to 3.1,
so the document is 3.1 by default; ``SSE_SYNC_OPENAPI_VERSION=3.2`` serves the OpenAPI 3.2
form, with ``itemSchema``, for tools that read it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Literal

from flask_openapi3 import Info, OpenAPI
from pydantic import BaseModel, Field

from sse_sync import ServerSentEvent, sse_view
from sse_sync.openapi import flask_openapi3_responses

DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "1.0"))


class Item(BaseModel):
    """An item of the catalogue."""

    name: str = Field(description="What the item is called")
    price: float = Field(description="Its price in euros")


class Price(BaseModel):
    """A new price for a symbol."""

    symbol: str = Field(description="The ticker symbol")
    value: float = Field(description="The last traded price")


class Reset(BaseModel):
    """Sent when the client's Last-Event-ID could not be resumed: reload the state."""

    channel: str
    reason: Literal["expired", "unknown"]


class SymbolPath(BaseModel):
    symbol: str


ITEMS = [Item(name="Plumbus", price=32.99), Item(name="Portal Gun", price=999.99)]


def create_app(version: Literal["3.2", "3.1"] = "3.1") -> OpenAPI:
    """The app, documenting its streams in an OpenAPI ``version`` document."""
    # security_schemes={}: flask-openapi3 writes "securitySchemes": null without it (invalid).
    info = Info(title="Catalogue", version="1.0.0")
    app = OpenAPI(__name__, info=info, security_schemes={}, doc_prefix="")
    app.openapi_version = f"{version}.0"
    # Open every operation and show the response schemas (not examples), expanded.
    app.config["SWAGGER_CONFIG"] = {
        "docExpansion": "full",
        "defaultModelRendering": "model",
        "defaultModelExpandDepth": 10,
    }

    @app.get("/items/stream", responses=flask_openapi3_responses(app, Item, version=version))
    @sse_view(ping=5)
    def items_stream() -> Iterator[Item]:
        """Every item of the catalogue, one event each."""
        for item in ITEMS:
            yield item
            time.sleep(DELAY)

    prices = flask_openapi3_responses(app, {"price": Price, "reset": Reset}, version=version)

    @app.get("/prices/<symbol>/stream", responses=prices)
    @sse_view(ping=5)
    def prices_stream(path: SymbolPath) -> Iterator[ServerSentEvent]:
        """Live prices of one symbol: `price` events, and `reset` when history was lost."""
        for i in range(1, 4):
            price = Price(symbol=path.symbol, value=100.0 + i)
            yield ServerSentEvent(data=price, event="price", id=str(i))
            time.sleep(DELAY)

    return app


app = create_app("3.2" if os.environ.get("SSE_SYNC_OPENAPI_VERSION") == "3.2" else "3.1")


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
