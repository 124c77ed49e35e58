"""The event-stream parser against the WHATWG spec, the web-platform-tests and chunk boundaries.

Cases named ``wpt_format_*`` replay web-platform-tests ``eventsource/format-*`` streams;
``spec_*`` are the examples of WHATWG HTML, "Server-sent events", section "Event stream
interpretation".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_sync._parse import EventParser, MessageEvent, iter_events


def M(data: str, type: str = "message", id: str = "", retry: int | None = None) -> MessageEvent:
    """Shorthand for an expected event."""
    return MessageEvent(type=type, data=data, last_event_id=id, retry=retry)


def parse(*chunks: bytes) -> list[MessageEvent]:
    """Feed ``chunks`` to one parser and return every event."""
    return list(iter_events(chunks))


LONG = "x" * 2049

# (stream, expected events). Streams are str and encoded as UTF-8 unless they are bytes.
CASES: dict[str, tuple[str | bytes, list[MessageEvent]]] = {
    # --- web-platform-tests eventsource/format-*
    "wpt_format_bom": ("\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3\n\n", [M("1"), M("3")]),
    "wpt_format_bom_2": ("\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3\n\n", [M("2"), M("3")]),
    "wpt_format_comments": (
        f"data:1\r:\0\n:\r\ndata:2\n:{LONG}\rdata:3\n:data:fail\r:{LONG}\ndata:4\n\n",
        [M("1\n2\n3\n4")],
    ),
    "wpt_format_data_before_final_empty_line": (
        "retry:1000\ndata:test1\n\nid:test\ndata:test2",
        [M("test1", retry=1000)],
    ),
    "wpt_format_field_data": ("data:\n\ndata\ndata\n\ndata:test\n\n", [M(""), M("\n"), M("test")]),
    "wpt_format_field_event": (
        "event:test\ndata:x\n\ndata:x\n\n",
        [M("x", type="test"), M("x")],
    ),
    "wpt_format_field_event_empty": ("event: \ndata:data\n\n", [M("data")]),
    "wpt_format_field_id": ("id:1\ndata:x\n\ndata:y\n\n", [M("x", id="1"), M("y", id="1")]),
    "wpt_format_field_id_2": (
        "id:1\ndata:\n\ndata:\n\nid:\ndata:\n\n",
        [M("", id="1"), M("", id="1"), M("", id="")],
    ),
    "wpt_format_field_id_3": ("id\ndata:x\n\n", [M("x")]),
    "wpt_format_field_id_null": (
        "id:1\ndata:a\n\nid:2\0\ndata:b\n\nid:3\0x\ndata:c\n\n",
        [M("a", id="1"), M("b", id="1"), M("c", id="1")],
    ),
    "wpt_format_field_parsing": (
        "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
        "data:\r\n data:32\ndata:4\n\n",
        [M("\0\n 2\n1\n3\n\n4")],
    ),
    "wpt_format_field_retry": ("retry:03000\ndata:x\n\n", [M("x", retry=3000)]),
    "wpt_format_field_retry_bogus": (
        "retry:3000\nretry:1000x\ndata:x\n\n",
        [M("x", retry=3000)],
    ),
    "wpt_format_field_retry_empty": ("retry\ndata:test\n\n", [M("test")]),
    "wpt_format_field_unknown": (
        "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
        [M("test\n\ntest")],
    ),
    "wpt_format_leading_space": ("data:\ttest\rdata: \ndata:test\n\n", [M("\ttest\n\ntest")]),
    "wpt_format_newlines": ("data:test\r\ndata\ndata:test\r\n\r", [M("test\n\ntest")]),
    "wpt_format_null_character": ("data:\0\n\n\n\n", [M("\0")]),
    "wpt_format_utf_8": ("data:ok\u2026\n\n", [M("ok\u2026")]),
    # --- WHATWG spec examples
    "spec_stock_ticker": ("data: YHOO\ndata: +2\ndata: 10\n\n", [M("YHOO\n+2\n10")]),
    "spec_ids_and_comment": (
        ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        "data:  third event\n",
        [M("first event", id="1"), M("second event", id="")],
    ),
    "spec_empty_data": ("data\n\ndata\ndata\n\ndata:\n", [M(""), M("\n")]),
    "spec_one_space_removed": ("data:test\n\ndata: test\n\n", [M("test"), M("test")]),
    # --- dispatch rules
    "data_alone_dispatches_empty": ("data\n\n", [M("")]),
    "event_alone_dispatches_nothing": ("event: x\n\n", []),
    "comment_alone_dispatches_nothing": (": ping\n\n", []),
    "id_alone_dispatches_nothing": ("id: 7\n\n", []),
    "retry_alone_dispatches_nothing": ("retry: 7\n\n", []),
    "event_type_reset_without_data": ("event: x\n\ndata: y\n\n", [M("y")]),
    "event_type_reset_after_dispatch": (
        "event: x\ndata: 1\n\ndata: 2\n\n",
        [M("1", type="x"), M("2")],
    ),
    "last_event_field_wins": ("event: a\nevent: b\ndata: 1\n\n", [M("1", type="b")]),
    "id_set_without_dispatch_is_kept": ("id: 7\n\ndata: x\n\n", [M("x", id="7")]),
    "id_without_blank_line_before_eof_applies_to_next": (
        "data: a\nid: 1\n\n",
        [M("a", id="1")],
    ),
    "empty_id_resets": ("id: 1\ndata: a\n\nid: \ndata: b\n\n", [M("a", id="1"), M("b", id="")]),
    "incomplete_event_discarded": ("data: a\n\ndata: b\n", [M("a")]),
    "incomplete_line_discarded": ("data: a\n\ndata: b", [M("a")]),
    # --- field parsing
    "only_one_space_removed": ("data:   x  \n\n", [M("  x  ")]),
    "tab_is_not_removed": ("data:\tx\n\n", [M("\tx")]),
    "colon_in_value_kept": ("data: a: b:c\n\n", [M("a: b:c")]),
    "field_without_colon": ("data\ndata: x\n\n", [M("\nx")]),
    "field_names_case_sensitive": ("DATA: x\nEvent: y\ndata: z\n\n", [M("z")]),
    "space_before_colon_is_part_of_name": ("data : x\ndata: y\n\n", [M("y")]),
    "unknown_fields_ignored": ("foo: bar\nfoo\ndata: x\n\n", [M("x")]),
    "comment_with_data_inside": (":data: no\ndata: yes\n\n", [M("yes")]),
    "event_name_keeps_spaces": ("event:  x \ndata: 1\n\n", [M("1", type=" x ")]),
    "id_keeps_spaces_and_colons": ("id:  a:b \ndata: 1\n\n", [M("1", id=" a:b ")]),
    # --- retry
    "retry_is_sticky": ("retry: 10\ndata: a\n\ndata: b\n\n", [M("a", retry=10), M("b", retry=10)]),
    "retry_set_by_dataless_event": ("retry: 5\n\ndata: a\n\n", [M("a", retry=5)]),
    "retry_zero": ("retry: 0\ndata: a\n\n", [M("a", retry=0)]),
    "retry_negative_ignored": ("retry: -1\ndata: a\n\n", [M("a")]),
    "retry_plus_ignored": ("retry: +1\ndata: a\n\n", [M("a")]),
    "retry_decimal_ignored": ("retry: 1.5\ndata: a\n\n", [M("a")]),
    "retry_inner_space_ignored": ("retry: 1 0\ndata: a\n\n", [M("a")]),
    "retry_two_leading_spaces_ignored": ("retry:  10\ndata: a\n\n", [M("a")]),
    "retry_trailing_space_ignored": ("retry: 10 \ndata: a\n\n", [M("a")]),
    "retry_underscore_ignored": ("retry: 1_0\ndata: a\n\n", [M("a")]),
    "retry_non_ascii_digits_ignored": (
        "retry: \u0661\u0662\ndata: a\n\nretry: \u00b2\n\n",
        [M("a")],
    ),
    "retry_bogus_keeps_previous": ("retry: 10\nretry: x\ndata: a\n\n", [M("a", retry=10)]),
    # --- line terminators
    "lf": ("data: a\ndata: b\n\n", [M("a\nb")]),
    "cr": ("data: a\rdata: b\r\r", [M("a\nb")]),
    "crlf": ("data: a\r\ndata: b\r\n\r\n", [M("a\nb")]),
    "mixed_terminators": ("data: a\rdata: b\r\ndata: c\n\r\n", [M("a\nb\nc")]),
    "cr_cr_is_blank_line": ("data: a\r\rdata: b\r\n\r\n", [M("a"), M("b")]),
    "lf_cr_is_blank_line": ("data: a\n\rdata: b\n\n", [M("a"), M("b")]),
    "crlf_then_cr": ("data: a\r\n\rdata: b\n\n", [M("a"), M("b")]),
    # --- characters that are not line terminators
    "unicode_line_separators_kept": (
        "data: a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg\n\n",
        [M("a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg")],
    ),
    "bom_only_at_start": ("data: a\n\n\ufeffdata: b\n\ndata: \ufeffc\n\n", [M("a"), M("\ufeffc")]),
    "bom_then_comment": ("\ufeff: hi\ndata: a\n\n", [M("a")]),
    "non_ascii": (
        "event: \u00e9v\u00e9nement\ndata: \u65e5\u672c \U0001f600\n\n",
        [M("\u65e5\u672c \U0001f600", type="\u00e9v\u00e9nement")],
    ),
    # --- invalid UTF-8
    "invalid_utf8_replaced": (b"data: \xff\xfeok\n\n", [M("\ufffd\ufffdok")]),
    "truncated_utf8_replaced": (b"data: \xe2\x82\ndata: \xf0\x9f\x98\n\n", [M("\ufffd\n\ufffd")]),
    "invalid_utf8_in_field_name": (b"da\xfeta: x\ndata: y\n\n", [M("y")]),
    "lone_surrogate_bytes_replaced": (b"data: \xed\xa0\x80\n\n", [M("\ufffd\ufffd\ufffd")]),
}


def _stream(case: str) -> bytes:
    raw = CASES[case][0]
    return raw if isinstance(raw, bytes) else raw.encode()


@pytest.mark.parametrize("case", list(CASES))
def test_case_in_one_chunk(case: str) -> None:
    """Each stream fed in one chunk gives exactly the expected events."""
    assert parse(_stream(case)) == CASES[case][1]


@pytest.mark.parametrize("case", list(CASES))
def test_case_byte_at_a_time(case: str) -> None:
    """Each stream fed one byte at a time gives the same events as in one chunk."""
    data = _stream(case)
    assert parse(*(data[i : i + 1] for i in range(len(data)))) == CASES[case][1]


@pytest.mark.parametrize("case", list(CASES))
def test_case_split_at_every_point(case: str) -> None:
    """Each stream split in two at any byte gives the same events as in one chunk."""
    data = _stream(case)
    expected = CASES[case][1]
    for i in range(len(data) + 1):
        assert parse(data[:i], data[i:]) == expected, f"split at byte {i}"


@pytest.mark.parametrize(
    "case", ["wpt_format_field_parsing", "wpt_format_newlines", "mixed_terminators", "non_ascii"]
)
def test_case_split_at_every_two_points(case: str) -> None:
    """Each stream split in three at any two bytes (empty chunks too) gives the same events."""
    data = _stream(case)
    expected = CASES[case][1]
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            assert parse(data[:i], data[i:j], data[j:]) == expected, f"split at {i}, {j}"


def test_cr_at_chunk_end_and_lf_at_next_start_is_one_line_end() -> None:
    """A CR ending one chunk and a LF starting the next make one CRLF, not a blank line."""
    parser = EventParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # a blank line here would dispatch "a"
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"\ndata: c\r") == []
    assert parser.feed(b"\n\r") == [M("a\nb\nc")]


def test_cr_at_chunk_end_then_cr_is_a_blank_line() -> None:
    """A CR ending one chunk followed by a CR is a line end and then a blank line."""
    parser = EventParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [M("a")]


def test_cr_at_chunk_end_then_empty_chunks_then_lf() -> None:
    """Empty chunks between a CR and its LF do not break the CRLF pair."""
    parser = EventParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [M("a")]


def test_cr_before_a_character_split_across_chunks_stands_alone() -> None:
    """A CR followed by a character split across chunks ends its line on its own."""
    parser = EventParser()
    assert parser.feed(b"data: a\r\xc3") == []
    # "\xe9" is a line of its own (an unknown field), then a blank line dispatches "a".
    assert parser.feed(b"\xa9\n\n") == [M("a")]


def test_multibyte_character_split_across_chunks() -> None:
    """A 4-byte character split after each of its bytes is decoded whole, with no U+FFFD."""
    emoji = "\U0001f600".encode()
    for i in range(1, 4):
        parser = EventParser()
        assert parser.feed(b"data: " + emoji[:i]) == []
        assert parser.feed(emoji[i:] + b"\n\n") == [M("\U0001f600")]


def test_bom_split_across_chunks_is_stripped() -> None:
    """A BOM arriving one byte per chunk is still the stream's leading BOM."""
    assert parse(b"\xef", b"\xbb", b"\xbf", b"data: x\n\n") == [M("x")]


def test_bom_alone_in_first_chunk_is_stripped_once() -> None:
    """A BOM alone in the first chunk is stripped, and a second BOM is part of the first line."""
    parser = EventParser()
    assert parser.feed(b"\xef\xbb\xbf") == []
    assert parser.feed(b"\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [M("y")]


def test_parser_state_after_dataless_dispatch() -> None:
    """An id and a retry take effect at once even when no event is dispatched."""
    parser = EventParser()
    assert parser.feed(b"id: 7\nretry: 250\n\n") == []
    assert parser.last_event_id == "7"
    assert parser.retry == 250


def test_last_event_id_set_only_at_blank_line() -> None:
    """The last event id changes when the event ends, not when its id field is read."""
    parser = EventParser()
    assert parser.feed(b"id: 1\ndata: x\n") == []
    assert parser.last_event_id == ""
    assert parser.feed(b"\n") == [M("x", id="1")]
    assert parser.last_event_id == "1"


def test_parser_starts_from_given_id_and_retry() -> None:
    """A parser created with a last event id and a retry carries them on its events."""
    parser = EventParser(last_event_id="41", retry=500)
    assert parser.feed(b"data: x\n\nid: 42\ndata: y\n\n") == [
        M("x", id="41", retry=500),
        M("y", id="42", retry=500),
    ]


def test_retry_with_too_many_digits_does_not_raise() -> None:
    """A retry value too long for int() is ignored where Python limits it, never an error."""
    parser = EventParser()
    assert parser.feed(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n")[0].data == "x"
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    assert parser.retry == (None if limit and limit < 5000 else int("9" * 5000))


def test_message_event_json() -> None:
    """MessageEvent.json() decodes the data as JSON."""
    assert M('{"a": [1, 2]}').json() == {"a": [1, 2]}


def test_message_event_is_frozen() -> None:
    """MessageEvent is immutable."""
    event = M("x")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]


def test_iter_events_is_lazy() -> None:
    """iter_events yields each event as soon as its chunk has been read."""

    def chunks() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        raise AssertionError("read past the first event")

    events = iter_events(chunks())
    assert next(events) == M("1")


def test_large_stream_in_odd_chunks() -> None:
    """Thousands of events in 7-byte chunks arrive complete and in order."""
    frames = b"".join(
        b"id: %d\nevent: e\ndata: %d\r\ndata: x\r\n\r\n" % (i, i) for i in range(3000)
    )
    events = parse(*(frames[i : i + 7] for i in range(0, len(frames), 7)))
    assert events == [M(f"{i}\nx", type="e", id=str(i)) for i in range(3000)]


_WIRE_BYTES = st.lists(
    st.sampled_from(
        [b"data", b"data:", b"data: ", b"event", b"event: x", b"id", b"id: 1", b"id: \x00",
         b"retry: 12", b"retry: x", b":", b" ", b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf",
         b"\xc3", b"\xa9", b"\xff", b"\xe2\x80\xa8", b"a", b"\x00"]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)  # fmt: skip


def _reference(data: bytes) -> list[MessageEvent]:
    """A slow, literal transcription of the spec, character by character, as an oracle."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\r" and i + 1 < len(text) and text[i + 1] == "\n":
            lines.append(current)
            current = ""
            i += 2
            continue
        if c in "\r\n":
            lines.append(current)
            current = ""
        else:
            current += c
        i += 1
    events = []
    data_buffer, event_type, id_buffer, last_id, retry = "", "", "", "", None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data_buffer == "":
                event_type = ""
                continue
            if data_buffer.endswith("\n"):
                data_buffer = data_buffer[:-1]
            events.append(M(data_buffer, type=event_type or "message", id=last_id, retry=retry))
            data_buffer, event_type = "", ""
        elif line.startswith(":"):
            continue
        else:
            if ":" in line:
                field, value = line.split(":", 1)
                if value.startswith(" "):
                    value = value[1:]
            else:
                field, value = line, ""
            if field == "event":
                event_type = value
            elif field == "data":
                data_buffer += value + "\n"
            elif field == "id" and "\0" not in value:
                id_buffer = value
            elif field == "retry" and value and all(ch in "0123456789" for ch in value):
                retry = int(value)
    return events


@pytest.mark.parametrize("case", list(CASES))
def test_reference_agrees_with_table(case: str) -> None:
    """The literal reference implementation used as an oracle agrees with the table."""
    assert _reference(_stream(case)) == CASES[case][1]


@given(data=_WIRE_BYTES, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_bytes_any_chunking_same_events(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes cut at arbitrary points give the events a literal spec reading gives."""
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert parse(*chunks) == _reference(data)
