"""Item rules: what each yielded item becomes on the wire, per peer, and the one warning."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import BaseModel

from sse_sync import MemoryBroker, ServerSentEvent, sse_response


class Item(BaseModel):
    name: str
    price: float


def wire(source: Iterable[Any], **kwargs: Any) -> bytes:
    """Everything a stream of ``source`` sends, in process."""
    return b"".join(sse_response(source, ping=None, **kwargs).iter_encoded())


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sse_sync"]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("data: Message 1\n\n", b"data: Message 1\n\n"),
        ("event: a\ndata: x\nid: 1\n\ndata: y\n\n", b"event: a\ndata: x\nid: 1\n\ndata: y\n\n"),
        (": just a comment\n\n", b": just a comment\n\n"),
        ("data: crlf\r\n\r\n", b"data: crlf\r\n\r\n"),
        ("data: cr\r\r", b"data: cr\r\r"),
        ("data\n\n", b"data\n\n"),
        ("retry: 10\n\n", b"retry: 10\n\n"),
        ("hello", b'data: "hello"\n\n'),
        ("database: down\n\n", b'data: "database: down\\n\\n"\n\n'),
        ("unknown: field\n\n", b'data: "unknown: field\\n\\n"\n\n'),
        (":)", b'data: ":)"\n\n'),
        ("", b'data: ""\n\n'),
        ({"tick": 1}, b'data: {"tick":1}\n\n'),
        ({"data": 1, "total": 2}, b'data: {"data":1,"total":2}\n\n'),
        (Item(name="n", price=2), b'data: {"name":"n","price":2.0}\n\n'),
        (7, b"data: 7\n\n"),
        (b"event: raw\ndata: x\n\n", b"event: raw\ndata: x\n\n"),
        (ServerSentEvent(raw_data="r", event="e"), b"event: e\ndata: r\n\n"),
    ],
)
def test_default_rules(item: Any, expected: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """Complete frames given as text pass through; everything else keeps fastapi.sse's JSON."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([item]) == expected
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("item", "expected", "fix"),
    [
        ("data: x\n", b'data: "data: x\\n"\n\n', "End each frame with a blank line"),
        ("data: x\r\n", b'data: "data: x\\r\\n"\n\n', "End each frame with a blank line"),
        ("event: e\ndata: x", b'data: "event: e\\ndata: x"\n\n', "End each frame"),
        ("data: a\n\nnot a field\n\n", b'data: "data: a\\n\\nnot a field\\n\\n"\n\n', "End"),
        ({"data": 5}, b'data: {"data":5}\n\n', "items='sse-starlette'"),
        ({"event": "s", "data": 1}, b'data: {"event":"s","data":1}\n\n', "items='fastapi-views'"),
    ],
)
def test_default_rules_warn_about_foreign_idioms(
    item: Any, expected: bytes, fix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An incomplete frame or a dict of event fields goes out as JSON, warned with the fix."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([item]) == expected
    [warning] = warnings_of(caplog)
    assert fix in warning and "ServerSentEvent(" in warning


def test_one_warning_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    """Each stream logs its first foreign idiom once, however many follow; ordinary data none."""
    items = [{"tick": 0}, {"data": 1}, {"data": 2}, "data: 3\n", {"tick": 4}]
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        wire(items)
        assert len(warnings_of(caplog)) == 1
        wire(items)
        assert len(warnings_of(caplog)) == 2
        wire([{"tick": i} for i in range(50)] + ["text", 5, None, [1]])
    assert len(warnings_of(caplog)) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert "{'data': 1}" in warnings_of(caplog)[0]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"data": 5}, b"data: 5\n\n"),
        ({"data": "Event 1"}, b"data: Event 1\n\n"),
        (
            {"event": "score", "data": "x", "id": "1", "retry": 10, "comment": "c"},
            b": c\nevent: score\nid: 1\nretry: 10\ndata: x\n\n",
        ),
        ({"data": "a\nb\r\nc"}, b"data: a\ndata: b\ndata: c\n\n"),
        ({"data": "", "id": None}, b"data: \n\n"),
        ({"event": "ping"}, b"event: ping\n\n"),
        ({"comment": 5}, b": 5\n\n"),
        ("hello", b"data: hello\n\n"),
        ("two\nlines", b"data: two\ndata: lines\n\n"),
        (42, b"data: 42\n\n"),
        (True, b"data: True\n\n"),
        (b"data: raw\n\n", b"data: raw\n\n"),
        (memoryview(b"data: view\n\n"), b"data: view\n\n"),
        (ServerSentEvent(data={"a": 1}), b'data: {"a":1}\n\n'),
    ],
)
def test_sse_starlette_rules(item: Any, expected: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """items='sse-starlette' encodes as sse-starlette's ensure_bytes(): str() text, dict fields."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([item], items="sse-starlette") == expected
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"data": {"a": 1}}, b"data: {'a': 1}\n\n"),
        ([1, 2], b"data: [1, 2]\n\n"),
        (Item(name="n", price=2), b"data: name='n' price=2.0\n\n"),
        ("data: frame\n\n", b"data: data: frame\ndata: \ndata: \n\n"),
    ],
)
def test_sse_starlette_rules_warn_where_text_is_not_what_was_meant(
    item: Any, expected: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """str() of structured data, or a frame as text, goes out as in sse-starlette, warned."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([item], items="sse-starlette") == expected
    [warning] = warnings_of(caplog)
    assert "items='sse-starlette'" in warning


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        ({"daat": 1}, TypeError, r"got 'daat' in \{'daat': 1\}: put the payload under 'data'"),
        ({"data": 1, "sep": "\n"}, TypeError, "got 'sep'"),
        ({"data": 1, "id": "a\nb"}, ValueError, "without NUL, CR or LF"),
        ({"data": 1, "retry": "5"}, ValueError, "valid integer"),
        ({}, ValueError, "at least one of"),
    ],
)
def test_sse_starlette_dicts_are_checked(
    item: dict[str, Any], error: type[Exception], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown keys and bad fields end the stream with the reason logged, never cleaned up."""
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        sent = wire([{"data": "first"}, item, {"data": "never"}], items="sse-starlette")
    assert sent == b"data: first\n\n"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], error)
    assert re.search(message, str(record.exc_info[1]))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"event": "price", "data": {"p": 1}}, b'event: price\ndata: {"p":1}\n\n'),
        (
            {"event": "data", "data": {"id": 1, "name": "test"}},
            b'event: data\ndata: {"id":1,"name":"test"}\n\n',
        ),
        (
            {"event": "x", "data": None, "id": "7", "retry": 5},
            b"event: x\nid: 7\nretry: 5\ndata: null\n\n",
        ),
        ({"data": "text"}, b'data: "text"\n\n'),
        ({"data": Item(name="n", price=2)}, b'data: {"name":"n","price":2.0}\n\n'),
        ({"p": 1}, b'data: {"p":1}\n\n'),
        ("data: frame\n\n", b"data: frame\n\n"),
        ("plain", b'data: "plain"\n\n'),
    ],
)
def test_fastapi_views_rules(item: Any, expected: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """items='fastapi-views': dicts with data (and event, id, retry) are events with JSON data."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([item], items="fastapi-views") == expected
    assert warnings_of(caplog) == []


def test_fastapi_views_rules_warn_about_sse_starlette_dicts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dict with sse-starlette's comment key is not a fastapi-views event: JSON, warned."""
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert wire([{"data": 1, "comment": "c"}], items="fastapi-views") == (
            b'data: {"data":1,"comment":"c"}\n\n'
        )
    [warning] = warnings_of(caplog)
    assert "items='sse-starlette'" in warning


def test_items_is_checked() -> None:
    """An unknown rule, or items= with encode=, is rejected with what is accepted."""
    with pytest.raises(
        ValueError, match="'default', 'sse-starlette', 'fastapi-views', got 'sse_starlette'"
    ):
        sse_response(iter([]), items="sse_starlette")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either encode= or items="):
        sse_response(iter([]), items="sse-starlette", encode=lambda item: b"")
    with pytest.raises(TypeError, match="items only apply to iterable sources"):
        sse_response(MemoryBroker().subscribe("news"), items="sse-starlette")


def test_custom_encode_still_works() -> None:
    """encode= replaces the item rules entirely, as before."""
    assert wire(["a", "b"], encode=lambda item: f"data: <{item}>\n\n".encode()) == (
        b"data: <a>\n\ndata: <b>\n\n"
    )
