"""The event model and its wire encoding (sans-IO: no threads, no sockets, no Flask globals).

Wire format: WHATWG HTML, "Server-sent events", section "Parsing an event stream"
https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
"""

from __future__ import annotations

import json
import re
import reprlib
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, PrivateAttr, StrictInt, StrictStr, model_validator

__all__ = ["LINE_BREAK", "PING", "ServerSentEvent", "encode_data", "encode_item", "split_lines"]

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


def encode_item(item: Any) -> bytes:
    """Turn one item a source yields into wire bytes.

    ``bytes`` pass through as pre-framed wire bytes, a :class:`ServerSentEvent` is encoded,
    and anything else becomes the JSON ``data:`` of an unnamed event; it raises as
    :func:`encode_data` does.
    """
    if type(item) is not dict:  # the most common item skips both checks (pydantic's is slow)
        if isinstance(item, bytes):
            return item
        if isinstance(item, ServerSentEvent):
            return item.encode()
    try:  # encode_data() inlined: this runs once per event
        data = _to_json(item)
    except pydantic_core.PydanticSerializationError as exc:
        raise _unencodable(item, exc) from exc
    if 78 in data or 73 in data:
        _check_finite(item, data)
    return b"data: " + data + b"\n\n"
