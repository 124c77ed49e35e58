"""The receiving end of the wire format: an incremental event-stream parser (sans-IO).

Implements WHATWG HTML, "Server-sent events", sections "Parsing an event stream" and
"Interpreting an event stream", to the letter:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Bytes come in chunks of any size. They are decoded with an incremental UTF-8 decoder (invalid
bytes become U+FFFD, a character split across chunks is kept for the next one), one leading
BOM is dropped, the text is split into lines on CRLF, CR and LF only (never on U+2028, U+0085
and the other characters :meth:`str.splitlines` knows), and each line is interpreted. Whatever
the chunking, the events are the same. The work per chunk is done by ``str`` methods and one
regex split; Python code runs once per line, never once per character.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["EventParser", "MessageEvent", "iter_events"]

from ._event import LINE_BREAK  # the spec's line terminators: CRLF, lone CR, lone LF

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One dispatched event, as a browser's ``EventSource`` listener receives it.

    :param type: the event type: the last ``event:`` field of the event, or ``"message"``
        when it had none or an empty one.
    :param data: the ``data:`` lines of the event joined with ``"\\n"``.
    :param last_event_id: the stream's last event id when the event was dispatched. It is
        kept from earlier events when this one has no ``id:`` field (an ``id:`` with an empty
        value resets it to ``""``).
    :param retry: the reconnection time in milliseconds the stream last set with a ``retry:``
        field (in this event or an earlier one), or ``None`` if it never set one.
    """

    type: str = "message"
    data: str = ""
    last_event_id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """Return ``data`` decoded as JSON (what ``ServerSentEvent(data=...)`` sends)."""
        return json.loads(self.data)


class EventParser:
    """Turns the bytes of an event stream into :class:`MessageEvent`\\ s, chunk by chunk.

    .. code-block:: python

        parser = EventParser()
        for chunk in response.iter_bytes():
            for event in parser.feed(chunk):
                print(event.type, event.data)

    An event is dispatched by the blank line that ends it. Whatever is left unfinished when
    the stream ends is discarded, as the spec says, so there is nothing to flush.

    :param last_event_id: the last event id to start from, e.g. the one a reconnecting client
        had before (events without an ``id:`` field carry it).
    :param retry: the reconnection time in milliseconds to start from.
    """

    def __init__(self, *, last_event_id: str = "", retry: int | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # whether the first character (maybe a BOM) was seen
        self._after_cr = False  # the text so far ends with CR: a LF next is part of CRLF
        self._partial: list[str] = []  # the current line, not yet terminated
        # The spec's buffers: data, event type, last event id.
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = last_event_id
        self._last_event_id = last_event_id
        self._retry = retry

    @property
    def last_event_id(self) -> str:
        """The stream's last event id as of the last blank line (the spec's "last event ID string").

        A blank line sets it even when it dispatches no event, so ``"id: 7\\n\\n"`` sets it
        to ``"7"``. This is what a client sends back as ``Last-Event-ID`` when it reconnects.
        """
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds the stream last set, or ``None``.

        Set as soon as a valid ``retry:`` field is read, whether or not an event follows.
        """
        return self._retry

    def feed(self, chunk: bytes) -> list[MessageEvent]:
        """Parse the next ``chunk`` of the stream; return the events it completed, in order.

        :param chunk: the next bytes of the stream; any size, any split point.
        """
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are
            # present": one only, and only at the start of the stream.
            if text[0] == _BOM:
                text = text[1:]
                if not text:
                    return []
        return self._feed_text(text)

    def _feed_text(self, text: str) -> list[MessageEvent]:
        if self._after_cr:
            # The previous text ended with CR, which already ended a line; a LF now is the
            # second half of that CRLF, not an empty line (which would dispatch).
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        # str.split is about 4 times faster than the regex, and most streams use LF only.
        lines = LINE_BREAK.split(text) if "\r" in text else text.split("\n")
        if len(lines) == 1:
            self._partial.append(text)
            return []
        self._after_cr = text[-1] == "\r"
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial.clear()
        rest = lines.pop()
        if rest:
            self._partial.append(rest)
        return self._interpret(lines)

    def _interpret(self, lines: list[str]) -> list[MessageEvent]:
        """Process complete lines (without terminators), as "Interpreting an event stream" says."""
        events: list[MessageEvent] = []
        data = self._data
        for line in lines:
            if not line:
                # A blank line dispatches the event.
                self._last_event_id = self._id_buffer
                if data:
                    # The spec appends LF after each data line, then removes the last LF.
                    events.append(
                        MessageEvent(
                            self._event or "message",
                            "\n".join(data),
                            self._last_event_id,
                            self._retry,
                        )
                    )
                    data = self._data = []
                # With an empty data buffer nothing is dispatched, but the event type is
                # still reset.
                self._event = ""
                continue
            name, colon, value = line.partition(":")
            if colon:
                if not name:
                    continue  # a comment
                if value[:1] == " ":
                    value = value[1:]  # exactly one leading space
            # Else the whole line is the field name and the value is "".
            if name == "data":
                data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._id_buffer = value
            elif name == "retry":
                # ASCII digits only: str.isdigit() alone accepts "²" and other digits.
                if value.isascii() and value.isdigit():
                    try:
                        self._retry = int(value)
                    except ValueError:
                        # More digits than int() converts (sys.set_int_max_str_digits): ignored,
                        # as Chromium ignores a value that overflows 64 bits.
                        pass
            # Any other field is ignored.
        return events


def iter_events(chunks: Iterable[bytes]) -> Iterator[MessageEvent]:
    """Parse an event stream given as an iterable of byte chunks, yielding each event.

    .. code-block:: python

        with httpx.stream("GET", url) as response:
            for event in iter_events(response.iter_bytes()):
                ...

    An unfinished event at the end of ``chunks`` is discarded, as the spec says.

    :param chunks: the bytes of one event stream, in chunks of any size.
    """
    parser = EventParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
