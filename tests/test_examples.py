"""Every example app streams what docs/examples.md shows (read through the test client)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from sse_sync.client import iter_events
from sse_sync.testing import assert_cleaned_up, read_events


def read(module: str, path: str, headers: dict[str, str] | None = None, count: int = 100) -> Any:
    app = importlib.import_module(f"examples.{module}").app
    response = app.test_client().get(path, headers=headers or {}, buffered=False)
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = []
    for event in iter_events(response.response):
        events.append(event)
        if len(events) == count:
            break
    response.close()
    return events


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples sleep between events; the tests do not need to wait."""
    for name in ("items", "metadata", "logs", "resumable", "classic", "chat"):
        monkeypatch.setattr(importlib.import_module(f"examples.{name}"), "DELAY", 0.0)


def test_items_example() -> None:
    """Pydantic items arrive as JSON data."""
    assert [e.data for e in read("items", "/items/stream")] == [
        '{"name":"Plumbus","price":32.99}',
        '{"name":"Portal Gun","price":999.99}',
        '{"name":"Meeseeks Box","price":49.99}',
    ]


def test_metadata_example_resumes() -> None:
    """Named events with ids and retry; Last-Event-ID skips what the client saw."""
    events = read("metadata", "/items/stream", {"Last-Event-ID": "1"})
    assert [(e.type, e.last_event_id, e.retry) for e in events] == [
        ("item_update", "2", 5000),
        ("item_update", "3", 5000),
    ]


def test_logs_example_keeps_lines() -> None:
    """Multi-line raw_data arrives with its lines intact."""
    events = read("logs", "/logs/stream")
    assert events[1].data == (
        "2026-11-21 10:00:01 WARN  slow query (812 ms)\n    SELECT * FROM orders"
    )
    assert {e.type for e in events} == {"log"}


def test_resumable_example() -> None:
    """The counter resumes after Last-Event-ID, or the lastEventId query parameter."""
    assert [e.data for e in read("resumable", "/counter", {"Last-Event-ID": "4"})] == [
        '{"n":5}',
        '{"n":6}',
    ]
    assert [e.last_event_id for e in read("resumable", "/counter?lastEventId=5")] == ["6"]


@pytest.mark.parametrize("sent", ["abc", "\u00b2", "-1", "1.5", "9" * 5000, "\u0661"])
@pytest.mark.parametrize(
    ("module", "path"), [("metadata", "/items/stream"), ("resumable", "/counter")]
)
def test_examples_start_over_on_ids_they_never_sent(module: str, path: str, sent: str) -> None:
    """Any Last-Event-ID a client sends gets the stream from its start, never an error."""
    assert [e.last_event_id for e in read(module, path, {"Last-Event-ID": sent}, 1)] == ["1"]


def test_classic_example() -> None:
    """The wrapped classic generator streams the server time."""
    [event] = read("classic", "/stream", count=1)
    assert event.data.startswith('{"time":"')


def test_demo_samples_and_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo serves its page and the tricky samples exactly."""
    demo = importlib.import_module("examples.demo")
    # The page starts the demo's publisher thread, which would publish into this test process
    # for good (and into every later test's metrics): not here.
    monkeypatch.setattr(demo, "_start_publisher", lambda: None)
    page = demo.app.test_client().get("/")
    assert b"EventSource" in page.data or b"demo.js" in page.data
    page.close()
    events = read("demo", "/stream/samples")
    # SSE has no way to send a CR: every line terminator arrives as LF (JSON data escapes it).
    assert [e.data for e in events] == [
        "plain text",
        "line one\nline two\nline three\nline four",
        "",
        "  two leading spaces",
        "caf\u00e9 \u2014 \u65e5\u672c \U0001f680 \u2028 sep",
        "trailing newline\n",
        '{"json":["x",1,null],"text":"a\\nb"}',
        '"unnamed"',
    ]
    assert [e.type for e in events] == ["sample"] * 7 + ["message"]


def _chat(body: object) -> Any:
    chat = importlib.import_module("examples.chat")
    return chat.app.test_client().post("/chat", json=body, buffered=False)


def test_chat_example_streams_tokens_then_done() -> None:
    """POST /chat streams one token event per token, then done; the upstream is closed."""
    llm = importlib.import_module("examples.chat").llm
    response = _chat({"prompt": "Hi", "max_tokens": 5})
    events = list(iter_events(response.response))
    response.close()
    assert [e.type for e in events] == ["token"] * 5 + ["done"]
    text = "".join(json.loads(e.data)["text"] for e in events[:5])
    assert text == 'You said: "Hi". Server-sent events'
    call = llm.calls[-1]
    assert (call.prompt, call.tokens, call.finished) == ("Hi", 5, True)
    assert call.closed is not None


def test_chat_example_closes_upstream_when_client_leaves() -> None:
    """Closing the response mid-answer closes the upstream stream, unfinished."""
    llm = importlib.import_module("examples.chat").llm
    response = _chat({"prompt": "Bye", "max_tokens": 1000})
    assert len(read_events(response, count=2)) == 2
    response.close()
    assert_cleaned_up(response)
    call = llm.calls[-1]
    assert call.prompt == "Bye"
    assert call.closed is not None
    assert not call.finished


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("just text", "Expected a JSON object"),
        ({}, "Expected 'prompt' to be a non-empty string, got None"),
        ({"prompt": "  "}, "got '  '"),
        ({"prompt": "x", "max_tokens": "5"}, "Expected 'max_tokens' to be an integer, got '5'"),
        ({"prompt": "x", "max_tokens": True}, "to be an integer, got True"),
        ({"prompt": "x", "max_tokens": 0}, "from 1 to 2000, got 0"),
    ],
)
def test_chat_example_rejects_bad_bodies(body: object, error: str) -> None:
    """A bad chat request is a 400 with a JSON error, before any stream starts."""
    response = _chat(body)
    assert response.status_code == 400
    assert error in response.get_json()["error"]
    response.close()
