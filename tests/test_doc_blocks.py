"""Every Python block of the documentation runs as printed, or quotes a file exactly.

A page's blocks run top to bottom in one namespace, after its hidden setups
(``tests/doc_blocks.py`` says how pages mark them). Blocks that cannot run here — another
library's code, shown for comparison — are compiled, and excerpts must be found verbatim in
the file they quote; longer code is included from ``examples/`` by the site itself
(``literalinclude``), which fails its build when the file or the part is missing.
"""

from __future__ import annotations

import time
import types
from pathlib import Path
from typing import Any

import pytest

from sse_sync.testing import override_ping, read_events

from . import test_peers
from .conftest import ROOT
from .doc_blocks import (
    PAGES,
    excerpt_pieces,
    needs_redis,
    python_blocks,
    read_blocks,
    run_page,
    stream_bytes,
)

DOCS = ROOT / "docs"
#: Every page of docs/ that has Python to run (the README's run in test_readme.py).
RUNNABLE = [page for page in PAGES if page.parent != ROOT and python_blocks(page)]
#: time, without the sleeps (the pages' generators pace themselves with time.sleep).
NO_SLEEP = types.SimpleNamespace(sleep=lambda seconds: None, time_ns=time.time_ns)


def _run(request: pytest.FixtureRequest, page: Path, **kwargs: Any) -> Any:
    """Run ``page`` against a private Redis server when its code names one."""
    redis_url = None
    if needs_redis(python_blocks(page)):
        redis_url = request.getfixturevalue("redis_server").url
    run = run_page(page, redis_url, **kwargs)
    request.addfinalizer(run.close)
    return run


def test_no_python_escapes_the_runner() -> None:
    """Python is fenced as ``python`` only, so the runner sees every block of it."""
    fences = {(b.where, b.lang) for page in PAGES for b in read_blocks(page)}
    assert not [f for f in fences if f[1] in {"py", "python3", "pycon", "ipython", "Python"}]
    assert len(RUNNABLE) >= 14


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: str(page.relative_to(DOCS)))
def test_page_runs(request: pytest.FixtureRequest, page: Path) -> None:
    """Every Python block and hidden setup of the page executes, in order."""
    run = _run(request, page)
    assert run.blocks_run == len(python_blocks(page))


def test_blocks_not_run_compile() -> None:
    """Other libraries' code, shown for comparison, is at least valid Python."""
    shown = [b for page in PAGES for b in read_blocks(page) if b.kind == "not run"]
    assert len(shown) >= 5
    for block in shown:
        compile(block.code, block.where, "exec")


def test_excerpts_are_verbatim() -> None:
    """Each part of an excerpt appears as is (indentation aside) in the file it quotes."""
    excerpts = [b for page in PAGES for b in read_blocks(page) if b.kind == "excerpt"]
    assert excerpts
    for block in excerpts:
        lines = [line.strip() for line in (ROOT / block.what).read_text().splitlines()]
        for piece in excerpt_pieces(block):
            found = any(lines[i : i + len(piece)] == piece for i in range(len(lines)))
            assert found, f"{block.where}: not in {block.what}:\n" + "\n".join(piece)


def test_streams_sse_view_block() -> None:
    """The @sse_view block of streams.md streams ticks."""
    run = run_page(DOCS / "streams.md")
    response = run.app.test_client().get("/ticks", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert event.json() == {"tick": 0}


def test_streams_event_stream_view_block() -> None:
    """The EventStreamView block: event dicts, query parameters, ids, retry, its own schema."""
    client = run_page(DOCS / "streams.md").app.test_client()
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


def test_testing_page_tests_pass() -> None:
    """The sse_sync.testing example of testing.md passes as a test."""
    run = run_page(DOCS / "testing.md")
    run.namespace["test_items_stream"]()
    run.namespace["test_idle_stream_pings"]()


def test_client_block_prints_events() -> None:
    """The EventSource block of client.md prints each event's type, id and data."""
    assert run_page(DOCS / "client.md").printed == [
        "item_update 1 {'name': 'Plumbus', 'price': 32.99}",
        "item_update 2 {'name': 'Portal Gun', 'price': 999.99}",
    ]


def test_token_stream_client_block_prints_tokens() -> None:
    """The POST EventSource block of the token stream tutorial prints the model's tokens."""
    printed = run_page(DOCS / "tutorials" / "token-stream.md", max_prints=3).printed
    assert printed == ["You", " said:", ' "Hi".']


def test_openapi_block() -> None:
    """The flask-openapi3 block of openapi.md documents its stream and streams it."""
    api = run_page(DOCS / "openapi.md").apps[0]
    assert "/prices/stream" in api.api_doc["paths"]  # type: ignore[attr-defined]
    response = api.test_client().get("/prices/stream", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("price", {"symbol": "AAPL", "value": 1.5})


def test_brokers_blocks() -> None:
    """brokers.md: a POST publishes to subscribers; the worker loop handled its job."""
    run = run_page(DOCS / "brokers.md")
    assert run.namespace["handled"] == [{"job": 1}]
    client = run.app.test_client()
    with override_ping(0.05):
        response = client.get("/prices/stream", buffered=False)
    assert client.post("/prices", json={"symbol": "AAPL", "value": 3.5}).status_code == 204
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("price", {"symbol": "AAPL", "value": 3.5})


def test_brokers_extension_block() -> None:
    """brokers.md's extension: /stream serves authorized channels and refuses others."""
    run = run_page(DOCS / "brokers.md")
    client = run.app.test_client()
    assert client.get("/stream?channel=secret").status_code == 403
    with override_ping(0.05):
        response = client.get("/stream?channel=news", buffered=False)
    run.namespace["sse"].publish("news", {"title": "again"}, event="news")
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("news", {"title": "again"})


def test_errors_blocks() -> None:
    """errors.md: a refused reader gets 403, a failing source 500, a finished job a 204 after."""
    run = run_page(DOCS / "errors.md")
    first, second = run.apps
    assert first.test_client().get("/orders/stream").status_code == 403
    run.namespace["allowed"] = True
    assert first.test_client().get("/orders/stream").status_code == 500
    assert second.test_client().get("/orders/stream").status_code == 500
    body = stream_bytes(second, "/jobs/7/report")
    assert b'event: failed\ndata: {"reason":"disk full"}\n\n' in body
    assert body.endswith(b"event: end\nid: sse_sync:end\ndata: \n\n")
    response = second.test_client().get(
        "/jobs/7/progress", headers={"Last-Event-ID": "sse_sync:end"}
    )
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("page", "peer", "path"),
    [
        ("migrating-from-naive.md", "/naive/stream", "/stream"),
        ("migrating-from-fastapi-sse.md", "/fastapi-sse/items/stream", "/items/stream"),
        ("migrating-from-sse-starlette.md", "/sse-starlette/events", "/events"),
        ("migrating-from-fastapi-views.md", "/sse", "/sse"),
        ("migrating-from-fastapi-views.md", *["/quotes?symbol=AAPL&count=2"] * 2),
    ],
)
def test_migrated_blocks_send_the_peers_bytes(page: str, peer: str, path: str) -> None:
    """Each migration guide's sse_sync code sends what tests/test_peers.py pins for that peer."""
    run = run_page(DOCS / page)
    run.namespace["time"] = NO_SLEEP
    assert stream_bytes(run.apps[-1], path) == test_peers.WIRE[peer]


def test_naive_flask_block_sends_the_same_bytes() -> None:
    """The naive Flask code before migration sends the bytes its migrated form sends."""
    run = run_page(DOCS / "migrating-from-naive.md")
    run.namespace["time"] = NO_SLEEP
    before, after = run.apps
    assert stream_bytes(before, "/stream") == stream_bytes(after, "/stream")


def test_flask_sse_migration_block(request: pytest.FixtureRequest) -> None:
    """The migrated Flask-SSE app publishes through Redis to a reader of the default channel."""
    run = _run(request, DOCS / "migrating-from-flask-sse.md")
    client = run.apps[0].test_client()
    with override_ping(0.05):
        response = client.get("/stream", buffered=False)
    assert client.get("/send").get_data(as_text=True) == "Message sent!"
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.json()) == ("greeting", {"message": "Hello!"})
