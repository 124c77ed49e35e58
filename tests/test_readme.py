"""Every Python block of the README runs as printed, in order, and the apps they define answer.

The blocks are executed top to bottom in one namespace, as a reader pasting them into one
module would (later blocks use the ``app`` and the models of earlier ones). Only two things
are arranged around them: the ``EventSource`` block's HTTP client reaches the README's app
in process (it names ``127.0.0.1:8000``), and its endless ``for ... print`` loop stops after
two events.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from sse_sync.testing import override_ping, read_events

from .conftest import ROOT

README = (ROOT / "README.md").read_text()

#: (line of the block's first code line, minus one; code) for every ```python block.
BLOCKS = [
    (README.count("\n", 0, found.start(1)), found.group(1))
    for found in re.finditer(r"```python\n(.*?)```", README, re.S)
]


class _Enough(Exception):
    """Raised by the README's ``print`` once the client block has shown two events."""


class ReadmeRun:
    """What running the README's blocks left: their namespace, apps and printed lines."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "readme", "print": self.print}
        self.apps: list[Flask] = []
        self.printed: list[str] = []
        self.blocks_run = 0

    def print(self, *args: object) -> None:
        self.printed.append(" ".join(map(str, args)))
        if len(self.printed) == 2:
            raise _Enough

    def run(self) -> None:
        for line, code in BLOCKS:
            try:
                exec(compile("\n" * line + code, "README.md", "exec"), self.namespace)
            except _Enough:
                pass
            self.blocks_run += 1
            app = self.namespace.get("app")
            if isinstance(app, Flask) and app not in self.apps:
                self.apps.append(app)

    @property
    def app(self) -> Flask:
        """The README's own app (the headline's, which later blocks add routes to)."""
        return self.apps[0]


@pytest.fixture(scope="module")
def readme() -> Iterator[ReadmeRun]:
    """The README, run once; httpx clients it creates talk to its app in process."""
    run = ReadmeRun()

    class AppClient(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.WSGITransport(app=run.app), **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx, "Client", AppClient)
        run.run()
    yield run


def test_every_block_runs(readme: ReadmeRun) -> None:
    """Each Python block of the README executes as printed, the last one included."""
    assert len(BLOCKS) >= 8
    assert readme.blocks_run == len(BLOCKS)


def test_headline_snippet_streams_items(readme: ReadmeRun) -> None:
    """The headline app streams its items as named events with ids, resuming after one."""
    response = readme.app.test_client().get("/items/stream", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.last_event_id, event.retry) == ("item_update", "1", 5000)
    assert event.json() == {"name": "Plumbus", "price": 32.99}
    response = readme.app.test_client().get(
        "/items/stream", headers={"Last-Event-ID": "1"}, buffered=False
    )
    [event] = read_events(response, count=1)
    response.close()
    assert (event.last_event_id, event.json()["name"]) == ("2", "Portal Gun")


def test_client_block_prints_events(readme: ReadmeRun) -> None:
    """The EventSource block prints each event's type, id and data."""
    assert readme.printed == [
        "item_update 1 {'name': 'Plumbus', 'price': 32.99}",
        "item_update 2 {'name': 'Portal Gun', 'price': 999.99}",
    ]


def test_sse_view_block(readme: ReadmeRun) -> None:
    """The @sse_view block streams ticks."""
    response = readme.app.test_client().get("/ticks", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert event.json() == {"tick": 0}


def test_event_stream_view_block(readme: ReadmeRun) -> None:
    """The EventStreamView block: event dicts, query parameters, ids, retry, its own schema."""
    client = readme.app.test_client()
    response = client.get("/prices/AAPL/stream?count=1", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.retry) == ("price", 5000)
    assert event.last_event_id.isdigit()
    assert event.json() == {"symbol": "AAPL", "value": 1.5}
    response = client.get("/prices/AAPL/stream/history?order=desc", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert event.json() == [{"symbol": "AAPL", "value": 1.0}, {"symbol": "AAPL", "value": 1.25}]
    response = client.get("/prices/AAPL/stream?count=two")
    assert response.status_code == 400
    assert "Invalid query parameter &#39;count&#39;" in response.get_data(as_text=True)


def test_openapi_block(readme: ReadmeRun) -> None:
    """The API docs block: a flask-openapi3 app documents its stream and streams it."""
    api = readme.namespace["api"]
    assert "/prices/stream" in api.api_doc["paths"]
    response = api.test_client().get("/prices/stream", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("price", {"symbol": "AAPL", "value": 1.5})


def test_brokers_block(readme: ReadmeRun) -> None:
    """The broker block: a POST publishes, a subscriber receives it."""
    client = readme.app.test_client()
    with override_ping(0.05):
        response = client.get("/prices/stream", buffered=False)
    assert client.post("/prices", json={"symbol": "AAPL", "value": 3.5}).status_code == 204
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("price", {"symbol": "AAPL", "value": 3.5})


def test_flask_extension_block(readme: ReadmeRun) -> None:
    """The extension block: /stream serves authorized channels and refuses others."""
    client = readme.app.test_client()
    assert client.get("/stream?channel=secret").status_code == 403
    with override_ping(0.05):
        response = client.get("/stream?channel=news", buffered=False)
    readme.namespace["sse"].publish("news", {"title": "again"}, event="news")
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("news", {"title": "again"})


def test_testing_helpers_snippet_runs(readme: ReadmeRun) -> None:
    """The sse_sync.testing example in the README passes as a test."""
    readme.namespace["test_items_stream"]()
    readme.namespace["test_idle_stream_pings"]()
