"""The encoder: ServerSentEvent -> exact wire bytes, and every rejected value."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sse_sync import ServerSentEvent
from sse_sync._event import encode_item, split_lines


class Item(BaseModel):
    name: str
    price: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (ServerSentEvent(data={"a": 1}), b'data: {"a":1}\n\n'),
        (ServerSentEvent(data="hi"), b'data: "hi"\n\n'),
        (ServerSentEvent(data=""), b'data: ""\n\n'),
        (ServerSentEvent(data="a\nb"), b'data: "a\\nb"\n\n'),
        (ServerSentEvent(data=Item(name="x", price=1.5)), b'data: {"name":"x","price":1.5}\n\n'),
        (ServerSentEvent(data=Point(1, 2)), b'data: {"x":1,"y":2}\n\n'),
        (ServerSentEvent(data=[1, None, True]), b"data: [1,null,true]\n\n"),
        (ServerSentEvent(data=0), b"data: 0\n\n"),
        (
            ServerSentEvent(data=datetime.datetime(2026, 1, 2, 3, 4, 5)),
            b'data: "2026-01-02T03:04:05"\n\n',
        ),
        (
            ServerSentEvent(data=uuid.UUID(int=1)),
            b'data: "00000000-0000-0000-0000-000000000001"\n\n',
        ),
        (ServerSentEvent(raw_data="plain"), b"data: plain\n\n"),
        (ServerSentEvent(raw_data=""), b"data: \n\n"),
        (ServerSentEvent(raw_data=" lead"), b"data:  lead\n\n"),
        (ServerSentEvent(raw_data="a\nb"), b"data: a\ndata: b\n\n"),
        (ServerSentEvent(raw_data="a\r\nb\rc"), b"data: a\ndata: b\ndata: c\n\n"),
        (ServerSentEvent(raw_data="end\n"), b"data: end\ndata: \n\n"),
        (ServerSentEvent(raw_data="\n"), b"data: \ndata: \n\n"),
        (ServerSentEvent(raw_data="x\u2028y\x85z"), "data: x\u2028y\x85z\n\n".encode()),
        (
            ServerSentEvent(raw_data="caf\u00e9 \U0001f600"),
            "data: caf\u00e9 \U0001f600\n\n".encode(),
        ),
        (ServerSentEvent(comment="c"), b": c\n\n"),
        (ServerSentEvent(comment=""), b": \n\n"),
        (ServerSentEvent(comment="a\nb"), b": a\n: b\n\n"),
        (ServerSentEvent(event="update", data=1), b"event: update\ndata: 1\n\n"),
        (ServerSentEvent(id="7", data=1), b"id: 7\ndata: 1\n\n"),
        (ServerSentEvent(id=""), b"id: \n\n"),
        (ServerSentEvent(retry=0), b"retry: 0\n\n"),
        (ServerSentEvent(retry=5000), b"retry: 5000\n\n"),
        (
            ServerSentEvent(comment="hi", event="e", id="1", retry=10, raw_data="d"),
            b": hi\nevent: e\nid: 1\nretry: 10\ndata: d\n\n",
        ),
    ],
)
def test_event_encodes_to_exact_wire_bytes(event: ServerSentEvent, wire: bytes) -> None:
    """Each event encodes to exactly the expected frame, ending in a blank line."""
    assert event.encode() == wire


@pytest.mark.parametrize(
    ("item", "wire"),
    [
        ({"a": 1}, b'data: {"a":1}\n\n'),
        ("text", b'data: "text"\n\n'),
        (None, b"data: null\n\n"),
        (Item(name="n", price=2), b'data: {"name":"n","price":2.0}\n\n'),
        (b"event: raw\ndata: x\n\n", b"event: raw\ndata: x\n\n"),
        (ServerSentEvent(raw_data="r"), b"data: r\n\n"),
    ],
)
def test_yielded_items_encode_like_fastapi(item: Any, wire: bytes) -> None:
    """Non-event items become JSON data frames; bytes pass through as pre-framed wire bytes."""
    assert encode_item(item) == wire


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": 1, "raw_data": "1"}, r"either data= \(JSON-encoded\) or raw_data="),
        ({"id": "a\nb"}, "without NUL, CR or LF"),
        ({"id": "a\rb"}, "without NUL, CR or LF"),
        ({"id": "a\0b"}, "without NUL, CR or LF"),
        ({"event": "a\nb"}, "without CR or LF"),
        ({"event": "a\rb"}, "without CR or LF"),
        ({"retry": -1}, "milliseconds >= 0"),
        ({"retry": True}, "valid integer"),
        ({"retry": "10"}, "valid integer"),
        ({"retry": 1.5}, "valid integer"),
        ({"id": 5}, "valid string"),
        ({"raw_data": b"x"}, "valid string"),
        ({}, "at least one of"),
        ({"daat": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    """Bad values raise ValueError (pydantic ValidationError) naming the problem."""
    with pytest.raises(ValidationError, match=message) as info:
        ServerSentEvent(**kwargs)
    assert isinstance(info.value, ValueError)


def test_unencodable_data_names_its_type() -> None:
    """Data that cannot be JSON-encoded fails with a TypeError that names its type."""

    class Opaque:
        pass

    event = ServerSentEvent(data=Opaque())
    with pytest.raises(TypeError, match="'test_unencodable_data_names_its_type.<locals>.Opaque'"):
        event.encode()
    with pytest.raises(TypeError, match="raw_data="):
        encode_item({"x": Opaque()})


def test_event_is_frozen_and_encoded_once() -> None:
    """Events are immutable, so the cached frame always matches the fields."""
    event = ServerSentEvent(data=[1])
    assert event.encode() is event.encode()
    with pytest.raises(ValidationError):
        event.data = [2]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("", [""]),
        ("a", ["a"]),
        ("a\nb", ["a", "b"]),
        ("a\r\nb", ["a", "b"]),
        ("a\rb", ["a", "b"]),
        ("a\n\rb", ["a", "", "b"]),
        ("a\n", ["a", ""]),
        ("\r\n", ["", ""]),
        ("a\u2028b\x0bc\x0cd\x1ce\x85f", ["a\u2028b\x0bc\x0cd\x1ce\x85f"]),
    ],
)
def test_split_lines_splits_on_cr_lf_crlf_only(text: str, pieces: list[str]) -> None:
    """Lines split on CRLF, CR and LF only, unlike str.splitlines(), keeping empty pieces."""
    assert split_lines(text) == pieces
