"""The event model and its wire encoding (sans-IO: no threads, no sockets, no Flask globals).

Wire format: WHATWG HTML, "Server-sent events", section "Parsing an event stream"
https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Callable
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, PrivateAttr, StrictInt, StrictStr, model_validator

__all__ = [
    "ENCODERS",
    "EVENT_FIELDS",
    "LINE_BREAK",
    "Encoder",
    "PING",
    "ItemRules",
    "ServerSentEvent",
    "Warn",
    "cache_frame",
    "default_encoder",
    "encode_data",
    "encode_item",
    "fastapi_views_encoder",
    "fields_but_data",
    "is_frames",
    "is_views_event",
    "split_lines",
    "sse_starlette_encoder",
    "sse_starlette_fields",
    "sse_starlette_text",
]

#: The keep-alive frame: a comment, so it never dispatches an event and never carries an id.
PING = b": ping\n\n"

# The spec's line terminators are CRLF, lone CR and lone LF, and nothing else: str.splitlines()
# would also split on U+2028, U+0085, form feed... and corrupt the text a browser gets back.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Split ``text`` on CRLF, CR and LF only, keeping empty pieces (also a trailing one)."""
    if "\n" not in text and "\r" not in text:
        return [text]
    return LINE_BREAK.split(text)


def encode_data(value: Any) -> bytes:
    """JSON-encode ``value`` with pydantic-core, as the bytes of one ``data:`` line's value.

    JSON never contains a raw CR or LF (they are escaped in strings), so the result is always
    a single line. Raises :class:`TypeError` naming the type that cannot be encoded, and
    :class:`ValueError` for NaN and infinities, which JSON has no form for.
    """
    try:
        data = _to_json(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise _unencodable(value, exc) from exc
    if 78 in data or 73 in data:  # b"N", b"I": a cheap memchr before the closer look
        _check_finite(value, data)
    return data


_to_json = pydantic_core.to_json


def _check_finite(value: object, data: bytes) -> None:
    """Raise :class:`ValueError` if ``data`` holds ``NaN``, ``Infinity`` or ``-Infinity``.

    pydantic-core writes non-finite floats as those bare words (its ``inf_nan_mode`` offers
    them, ``null`` or strings, never an error), and ``JSON.parse`` rejects them. Parsing with
    ``parse_constant`` finds them exactly, outside strings; it only runs when the words occur.
    """
    if data.find(b"NaN") == -1 and data.find(b"Infinity") == -1:
        return

    def reject(word: str) -> None:
        msg = (
            f"Expected event data that JSON can hold, got {reprlib.repr(value)}, which holds "
            f"{word}: JSON has no NaN or infinities (JSON.parse rejects them). Send None, a "
            "string or a finite number instead."
        )
        raise ValueError(msg)

    json.loads(data, parse_constant=reject)


def _unencodable(value: object, exc: Exception) -> TypeError:
    msg = (
        f"Cannot JSON-encode event data of type {type(value).__qualname__!r}: {exc}. "
        "Pass a pydantic model, a dataclass or JSON-compatible values, or send text "
        "yourself with raw_data=."
    )
    return TypeError(msg)


def _field(name: bytes, text: str) -> list[bytes]:
    # Always "name: value" with one space: the parser strips exactly one leading space, so a
    # value that itself starts with a space survives.
    return [name + b": " + line.encode() + b"\n" for line in split_lines(text)]


class ServerSentEvent(BaseModel):
    """One event of an event stream, validated when it is built.

    .. code-block:: python

        ServerSentEvent(data={"price": 3.5}, event="price", id="42", retry=5000)
        ServerSentEvent(raw_data="line 1\\nline 2")     # text sent as is, one data: line each
        ServerSentEvent(comment="keep going")           # a comment: dispatches nothing

    :param data: any JSON-encodable value (pydantic models use their own serializer). A ``str``
        is JSON too, so ``data="hi"`` sends ``data: "hi"``. ``None`` means no ``data`` field.
        NaN and infinities have no JSON form: :meth:`encode` raises :class:`ValueError`.
    :param raw_data: text sent as it is (split into one ``data:`` line per line); not with ``data``.
    :param event: the event type a browser dispatches (``addEventListener(event, ...)``);
        must not contain CR or LF.
    :param id: the event id, which the browser sends back as ``Last-Event-ID`` when it
        reconnects; must not contain NUL, CR or LF.
    :param retry: the reconnection time in milliseconds (an int >= 0).
    :param comment: a comment, ignored by clients; multi-line comments are allowed.

    Nothing is ever cleaned up silently: a bad value raises :class:`ValueError`
    (a pydantic ``ValidationError``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Any = None
    raw_data: StrictStr | None = None
    event: StrictStr | None = None
    id: StrictStr | None = None
    retry: StrictInt | None = None
    comment: StrictStr | None = None

    _frame: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> ServerSentEvent:
        if self.data is not None and self.raw_data is not None:
            msg = "Expected either data= (JSON-encoded) or raw_data= (sent as is), got both"
            raise ValueError(msg)
        if self.id is not None and any(c in self.id for c in "\0\r\n"):
            msg = f"Expected an event id without NUL, CR or LF, got {self.id!r}"
            raise ValueError(msg)
        if self.event is not None and ("\r" in self.event or "\n" in self.event):
            msg = f"Expected an event type without CR or LF, got {self.event!r}"
            raise ValueError(msg)
        if self.retry is not None and self.retry < 0:
            msg = f"Expected retry to be milliseconds >= 0, got {self.retry!r}"
            raise ValueError(msg)
        if (
            self.data is None
            and self.raw_data is None
            and self.event is None
            and self.id is None
            and self.retry is None
            and self.comment is None
        ):
            msg = "Expected at least one of data, raw_data, event, id, retry or comment, got none"
            raise ValueError(msg)
        return self

    def encode(self) -> bytes:
        """Return the event's wire frame, ending in a blank line.

        The frame is computed once and cached (the model is frozen), so one event published
        to many clients is encoded once. Raises :class:`TypeError` if ``data`` cannot be
        JSON-encoded, :class:`ValueError` if it holds NaN or an infinity.
        """
        if self._frame is None:
            lines: list[bytes] = []
            if self.comment is not None:
                lines += _field(b"", self.comment)
            if self.event is not None:
                lines.append(b"event: " + self.event.encode() + b"\n")
            if self.id is not None:
                lines.append(b"id: " + self.id.encode() + b"\n")
            if self.retry is not None:
                lines.append(b"retry: %d\n" % self.retry)
            if self.data is not None:
                lines.append(b"data: " + encode_data(self.data) + b"\n")
            elif self.raw_data is not None:
                lines += _field(b"data", self.raw_data)
            lines.append(b"\n")
            self._frame = b"".join(lines)
        return self._frame


def cache_frame(event: ServerSentEvent, frame: bytes) -> None:
    """Make ``frame`` what ``event.encode()`` returns, for a frame built already.

    A broker's entry builds each frame once and hands events out to every subscriber: their
    ``encode()`` then costs nothing. ``frame`` must be what ``encode()`` would return.
    """
    event._frame = frame


#: What the items of a stream mean: "default" (fastapi.sse's rule, plus event-stream frames
#: given as text), or the rule of a peer library, "sse-starlette" or "fastapi-views".
ItemRules = Literal["default", "sse-starlette", "fastapi-views"]

#: Called with a message template (naming the fix; it has an ``{item}`` field) and the item
#: when an item looks like another rule's idiom. The caller decides what to do with it (a
#: stream logs it once).
Warn = Callable[[str, Any], None]

#: The keys of a dict that sse-starlette sends as one event (its ``ServerSentEvent`` fields).
EVENT_FIELDS = frozenset({"data", "event", "id", "retry", "comment"})
# fastapi-views' event model: no comment.
_VIEWS_FIELDS = frozenset({"data", "event", "id", "retry"})

# One or more complete frames as the WHATWG parser reads them: every line a comment or a known
# field (data, event, id, retry; with or without a value), every frame ended by a blank line.
# A CR followed by LF is one line end (CRLF), so "data: x\r\n" is one line, not a frame.
_EOL = r"(?:\r\n|\r(?!\n)|\n)"
_LINE = r"(?::[^\r\n]*|(?:data|event|id|retry)(?::[^\r\n]*)?)"
_FRAMES = re.compile(rf"(?:(?:{_LINE}{_EOL})+{_EOL})+")
# A cheap first test (str.startswith) before the regex, and what a frame written by hand
# starts with.
_FRAME_STARTS = ("data", "event", "id", "retry", ":")
_FIELD_START = re.compile(r"(?:data|event|id|retry):")

_FIELDS_DICT = (
    "yields dicts of event fields such as {item}; under the default item rules a dict is "
    "JSON data, so the page gets that JSON in one unnamed event. To send them as events, pass "
    "items='sse-starlette' (data sent as text, as sse-starlette does) or "
    "items='fastapi-views' (data JSON-encoded); to keep the JSON and silence this, yield "
    "ServerSentEvent(data=...)."
)
_INCOMPLETE_FRAME = (
    "yields text that starts like an event-stream frame but is not one or more complete "
    "frames (each ends with a blank line, every line a comment or a data/event/id/retry "
    "field), so it is sent as a JSON string: {item}. End each frame with a blank line "
    "('\\n\\n'), or yield ServerSentEvent(raw_data=...) to send text."
)
_FRAME_AS_TEXT = (
    "yields event-stream frames as text, such as {item}; under items='sse-starlette' a str "
    "is data text, as sse-starlette sends it, so the page gets the frame's lines as data. To "
    "send them as frames, use the default item rules."
)
_STR_OF_OBJECT = (
    "yields data that is not text, such as {item}; under items='sse-starlette' it is sent "
    "as str(data), as sse-starlette does, which is not JSON. json.dumps() it, yield "
    "ServerSentEvent(data=...) (JSON), or use items='fastapi-views' (JSON data)."
)


def is_frames(text: str) -> bool:
    """Whether ``text`` is one or more complete, well-formed event-stream frames."""
    return text.startswith(_FRAME_STARTS) and _FRAMES.fullmatch(text) is not None


#: Turns one item a source yields into wire bytes.
Encoder = Callable[[Any], bytes]

# The encoders are closures over their stream's ``warn`` (not partials or bound methods):
# calling one costs a plain function call, and this runs once per event.


def default_encoder(warn: Warn) -> Encoder:
    """An encoder by the default item rules.

    ``bytes`` pass through as pre-framed wire bytes, a :class:`ServerSentEvent` is encoded,
    a ``str`` that :func:`is_frames` passes through as those frames, and anything else
    becomes the JSON ``data:`` of an unnamed event. ``warn`` hears of a dict of event fields
    and of text that starts like a frame but is not a complete one. It raises as
    :func:`encode_data` does.
    """

    def encode_item(item: Any) -> bytes:
        if type(item) is not dict:  # the most common item skips these checks (pydantic's is slow)
            if isinstance(item, bytes):
                return item
            if isinstance(item, ServerSentEvent):
                return item.encode()
            if type(item) is str and item.startswith(_FRAME_STARTS):
                if _FRAMES.fullmatch(item):
                    return item.encode()
                if _FIELD_START.match(item):
                    warn(_INCOMPLETE_FRAME, item)
        elif "data" in item and item.keys() <= EVENT_FIELDS:
            warn(_FIELDS_DICT, item)
        try:  # encode_data() inlined: this runs once per event
            data = _to_json(item)
        except pydantic_core.PydanticSerializationError as exc:
            raise _unencodable(item, exc) from exc
        if 78 in data or 73 in data:
            _check_finite(item, data)
        return b"data: %b\n\n" % data  # one %-format costs less than two concatenations

    return encode_item


def _no_warning(message: str, item: Any) -> None:
    """Outside a stream there is no one to warn: the item is encoded all the same."""


#: One item by the default rules, outside any stream (a check, a test): nothing is warned.
encode_item: Encoder = default_encoder(_no_warning)


def sse_starlette_encoder(warn: Warn) -> Encoder:
    """An encoder that does what sse-starlette's ``ensure_bytes()`` does.

    ``bytes`` (and ``memoryview``) pass through, a :class:`ServerSentEvent` is encoded, a dict
    is the fields of one event (:func:`sse_starlette_fields`), a ``str`` is the data as text
    and anything else is sent as ``str(item)``. Lines end with LF, not sse-starlette's CRLF.
    ``warn`` hears of frames sent as text and of data that is not text.
    """

    def encode_sse_starlette(item: Any) -> bytes:
        return _encode_sse_starlette(warn, item)

    return encode_sse_starlette


def _encode_sse_starlette(warn: Warn, item: Any) -> bytes:
    if isinstance(item, (bytes, memoryview)):
        return bytes(item)
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, dict):
        fields = sse_starlette_fields(item)
        data = item.get("data")
        if data is not None:
            fields["raw_data"] = sse_starlette_text(warn, data)
        return ServerSentEvent(**fields).encode()
    if isinstance(item, str) and (_FIELD_START.match(item) or is_frames(item)):
        warn(_FRAME_AS_TEXT, item)
    return b"".join(_field(b"data", sse_starlette_text(warn, item))) + b"\n"


def sse_starlette_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The :class:`ServerSentEvent` arguments but ``data`` of an sse-starlette dict of fields.

    A ``comment`` becomes text (``str()``), as sse-starlette does; fields set to ``None`` are
    left out. Keys other than :data:`EVENT_FIELDS` raise :class:`TypeError`.
    """
    unknown = item.keys() - EVENT_FIELDS
    if unknown:
        msg = (
            f"Expected a dict of event fields ({', '.join(sorted(EVENT_FIELDS))}), got "
            f"{', '.join(map(repr, sorted(unknown, key=str)))} in {item!r}: put the payload "
            f"under 'data'"
        )
        raise TypeError(msg)
    fields = fields_but_data(item)
    if "comment" in fields:
        fields["comment"] = str(fields["comment"])
    return fields


def sse_starlette_text(warn: Warn, data: object) -> str:
    """``data`` as the text sse-starlette sends: ``str(data)``.

    ``warn`` hears of a dict, list, tuple or pydantic model (``str()`` is not JSON), and an
    object of sse-starlette's own classes raises :class:`TypeError`.
    """
    if isinstance(data, str):
        return data
    if type(data).__module__.partition(".")[0] == "sse_starlette":
        msg = (
            f"Expected sse_sync's ServerSentEvent or a dict of event fields, got "
            f"{type(data).__qualname__!r} from sse_starlette: yield "
            f"sse_sync.ServerSentEvent(raw_data=..., event=..., id=...) instead (data= for "
            f"JSON, as JSONServerSentEvent)"
        )
        raise TypeError(msg)
    if isinstance(data, (dict, list, tuple, BaseModel)):
        warn(_STR_OF_OBJECT, data)
    return str(data)


def is_views_event(item: object) -> bool:
    """Whether ``item`` is a fastapi-views event dict: ``data`` with ``event``/``id``/``retry``."""
    return type(item) is dict and "data" in item and item.keys() <= _VIEWS_FIELDS


def fastapi_views_encoder(warn: Warn) -> Encoder:
    """An encoder that reads fastapi-views' event dicts, and follows the default rules else.

    A dict with ``data`` and only ``event``, ``id`` and ``retry`` besides is one event whose
    ``data`` is JSON-encoded (``None`` too: ``data: null``); anything else follows
    :func:`default_encoder`.
    """
    encode_default = default_encoder(warn)

    def encode_fastapi_views(item: Any) -> bytes:
        if is_views_event(item):
            data = encode_data(item["data"]).decode()
            return ServerSentEvent(raw_data=data, **fields_but_data(item)).encode()
        return encode_default(item)

    return encode_fastapi_views


def fields_but_data(item: dict[str, Any]) -> dict[str, Any]:
    """The fields of an event dict other than ``data``, leaving out those set to ``None``."""
    return {name: value for name, value in item.items() if name != "data" and value is not None}


#: The encoder factory of each item rule.
ENCODERS: dict[str, Callable[[Warn], Encoder]] = {
    "default": default_encoder,
    "sse-starlette": sse_starlette_encoder,
    "fastapi-views": fastapi_views_encoder,
}
