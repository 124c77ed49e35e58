"""Property tests: what ``ServerSentEvent.encode()`` writes, the parser reads back unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sse_sync import ServerSentEvent
from sse_sync.client import EventParser, MessageEvent, iter_events

# Pieces that stress the framing: every line terminator, characters str.splitlines() would
# (wrongly, for this format) split on, spaces a parser might strip, BOMs, NUL, colons.
_TRICKY = [
    "\r", "\n", "\r\n", "\n\r", "\r\r", "\n\n", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c",
    "\x1c", " ", "  ", "\t", "\ufeff", "\0", ":", ": ", "data: x", "id: 1", "\ufffd",
    "\U0001f600", "\u00e9",
]  # fmt: skip
_CHARS = st.characters(exclude_categories=["Cs"])  # lone surrogates cannot be UTF-8 encoded


def _text(tricky: list[str]) -> st.SearchStrategy[str]:
    piece = st.sampled_from(tricky) | st.text(_CHARS, max_size=6)
    return st.lists(piece, max_size=8).map("".join)


TEXT = _text(_TRICKY)
# Event types and ids never contain CR or LF (the encoder rejects them), ids never NUL.
EVENT_NAME = _text([t for t in _TRICKY if "\r" not in t and "\n" not in t]).map(
    lambda s: s.replace("\r", "").replace("\n", "")
)
EVENT_ID = EVENT_NAME.map(lambda s: s.replace("\0", ""))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=10,
)


@st.composite
def events(draw: st.DrawFn) -> ServerSentEvent:
    """Any valid event: JSON data, raw text, or neither; with or without event/id/retry."""
    kwargs: dict[str, Any] = {}
    kind = draw(st.sampled_from(["data", "raw_data", "none"]))
    if kind == "data":
        kwargs["data"] = draw(JSON.filter(lambda v: v is not None))
    elif kind == "raw_data":
        kwargs["raw_data"] = draw(TEXT)
    for name, strategy in [
        ("event", EVENT_NAME),
        ("id", EVENT_ID),
        ("retry", st.integers(min_value=0, max_value=2**53)),
        ("comment", TEXT),
    ]:
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    if not kwargs:
        kwargs["comment"] = ""
    return ServerSentEvent(**kwargs)


def _expected(sent: list[ServerSentEvent]) -> list[tuple[str, Any, str, int | None]]:
    """What a browser dispatches for ``sent``: (type, payload, last event id, retry)."""
    out = []
    last_id = ""
    retry = None
    for event in sent:
        if event.retry is not None:
            retry = event.retry
        if event.id is not None:
            last_id = event.id
        if event.data is not None:
            out.append((event.event or "message", event.data, last_id, retry))
        elif event.raw_data is not None:
            # The wire format has one kind of line break: CR and CRLF in raw text come back LF.
            text = event.raw_data.replace("\r\n", "\n").replace("\r", "\n")
            out.append((event.event or "message", text, last_id, retry))
    return out


def _received(
    sent: list[ServerSentEvent], got: list[MessageEvent]
) -> list[tuple[str, Any, str, int | None]]:
    """``got`` as comparable tuples, JSON-decoding the events that were sent with ``data=``."""
    dispatched = [e for e in sent if e.data is not None or e.raw_data is not None]
    assert len(got) == len(dispatched)
    return [
        (m.type, m.json() if e.data is not None else m.data, m.last_event_id, m.retry)
        for e, m in zip(dispatched, got, strict=True)
    ]


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(deadline=None)
@given(event=events())
def test_one_event_round_trips(event: ServerSentEvent) -> None:
    """One encoded event parses back to its type, payload, id and retry."""
    got = EventParser().feed(event.encode())
    assert _received([event], got) == _expected([event])


@settings(deadline=None)
@given(text=TEXT.filter(lambda s: "\r" not in s), event=EVENT_NAME, id=EVENT_ID)
def test_raw_data_without_cr_round_trips_exactly(text: str, event: str, id: str) -> None:
    """raw_data without CR comes back exactly, with U+2028, U+0085, spaces and empty lines."""
    (got,) = EventParser().feed(ServerSentEvent(raw_data=text, event=event, id=id).encode())
    assert got == MessageEvent(type=event or "message", data=text, last_event_id=id)


@settings(deadline=None)
@given(value=TEXT)
def test_str_data_round_trips_exactly(value: str) -> None:
    """A str sent as JSON data decodes back to exactly the same str, CRs included."""
    (got,) = EventParser().feed(ServerSentEvent(data=value).encode())
    assert got.json() == value


@settings(deadline=None)
@given(
    sent=st.lists(events(), max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=16),
)
def test_event_sequence_round_trips_in_any_chunking(
    sent: list[ServerSentEvent], cuts: list[int]
) -> None:
    """Several encoded events, cut into arbitrary chunks, parse back in order with sticky ids."""
    stream = b"".join(e.encode() for e in sent)
    got = list(iter_events(_chunks(stream, cuts)))
    assert _received(sent, got) == _expected(sent)


@settings(deadline=None)
@given(sent=st.lists(events(), min_size=1, max_size=4))
def test_event_sequence_round_trips_byte_at_a_time(sent: list[ServerSentEvent]) -> None:
    """Encoded events fed one byte at a time parse back in order."""
    stream = b"".join(e.encode() for e in sent)
    got = list(iter_events(stream[i : i + 1] for i in range(len(stream))))
    assert _received(sent, got) == _expected(sent)


@settings(deadline=None)
@given(sent=st.lists(events(), max_size=6))
def test_parser_state_matches_stream_state(sent: list[ServerSentEvent]) -> None:
    """After a stream, the parser's last event id and retry are the last ones sent."""
    parser = EventParser()
    parser.feed(b"".join(e.encode() for e in sent))
    ids = [e.id for e in sent if e.id is not None]
    retries = [e.retry for e in sent if e.retry is not None]
    assert parser.last_event_id == (ids[-1] if ids else "")
    assert parser.retry == (retries[-1] if retries else None)


def test_empty_event_name_dispatches_as_message() -> None:
    """An event sent with an empty event name is a "message" event, as the spec says."""
    (got,) = EventParser().feed(ServerSentEvent(raw_data="x", event="").encode())
    assert got.type == "message"


def test_json_special_characters_round_trip() -> None:
    """JSON data with CR, LF, U+2028 and quotes is one data line and decodes back exactly."""
    value = {"text": 'a\r\nb\rc\nd\u2028e\u0085f "g"', "n": [1, 2.5, None, True]}
    frame = ServerSentEvent(data=value).encode()
    assert frame.count(b"\n") == 2  # one data line and the blank line
    (got,) = EventParser().feed(frame)
    assert json.loads(got.data) == value
