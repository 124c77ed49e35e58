"""Interop: what ``sse_response`` streams over a real server, three clients read the same way.

The clients are ours (``sse_sync.client``), httpx-sse (``httpx_sse.connect_sse``) and
sseclient-py (``sseclient.SSEClient`` over a ``requests`` streamed response).

Deviations from the WHATWG spec found in the third-party clients (asserted below, so a fix
upstream shows up as a failing test to update):

* httpx-sse 0.4: a blank line dispatches an event whenever an event type, a retry or *any*
  last event id is set, even with no ``data`` line. So ``event: x\\n\\n``, ``id: 9\\n\\n`` and
  ``retry: 100\\n\\n`` each dispatch an empty event, and once a stream has sent an id, every
  ``: ping`` keep-alive comment dispatches an empty ``message`` event. The spec dispatches
  nothing when the data buffer is empty.
* sseclient-py 1.9: the id is per frame, not the stream's last event id: an event without an
  ``id:`` field gets ``id=None`` instead of the previous id, and an id in a frame without data
  is lost. ``retry`` is an unparsed ``str`` of the frame's own field, and a retry in a frame
  without data is lost.

Not deviations, but different models: httpx-sse and sseclient-py report only the frame's own
``retry``; the spec has no per-event retry (our ``MessageEvent.retry`` is the stream's current
reconnection time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import requests
import sseclient
from httpx_sse import connect_sse
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sse_sync import ServerSentEvent, sse_response
from sse_sync._event import encode_data
from sse_sync.client import EventSource, iter_events

TIMEOUT = 5.0

E = ServerSentEvent
#: Every frame carries data, so every client dispatches one event per frame.
TRICKY = [
    E(raw_data="line1\nline2"),
    E(raw_data="cr\rsplit\rtwice"),
    E(raw_data="crlf\r\nsplit"),
    E(raw_data="mixed\n\r\r\nend"),
    E(raw_data="a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"),
    E(raw_data=" one leading space"),
    E(raw_data="  two leading spaces  "),
    E(raw_data=""),
    E(raw_data="\n"),
    E(raw_data="trailing newline\n"),
    E(raw_data="\ttab"),
    E(raw_data="\u65e5\u672c\u8a9e \U0001f600 \u00e9\u00e8"),
    E(raw_data="\ufeffbom in data"),
    E(raw_data="nul\0char"),
    E(raw_data="data: not a field\n: not a comment\nid: 0"),
    E(data={"text": 'json\r\nwith\u2028breaks "quoted"', "n": [1, 2.5, None]}),
    E(data="a JSON string"),
    E(raw_data="named", event="update"),
    E(raw_data="with id", id="7"),
    E(raw_data="inherits id 7"),
    E(raw_data="spaced", event=" spaced event ", id=" spaced:id "),
    E(raw_data="with retry", retry=1234),
    E(raw_data="with comment", comment="a comment\non two lines"),
    E(raw_data="unicode name and id", event="\u00e9v\u00e9nement", id="\u00ef\u00f0-\U0001f600"),
    E(raw_data="id reset", id=""),
    E(raw_data="last"),
]
#: Frames without data between two events: only "first" and "after" are dispatched.
DATALESS = [
    E(raw_data="first", id="1"),
    E(event="orphan"),
    E(id="9"),
    E(retry=100),
    E(comment="ping"),
    E(raw_data="after"),
]
STREAMS = {"/tricky": TRICKY, "/dataless": DATALESS}

Row = tuple[str, str, str | None, object]


def spec_events(sent: list[ServerSentEvent]) -> list[Row]:
    """What the spec dispatches: (type, data, last event id, stream retry), ids sticky."""
    out: list[Row] = []
    last_id = ""
    retry = None
    for event in sent:
        retry = event.retry if event.retry is not None else retry
        last_id = event.id if event.id is not None else last_id
        if event.raw_data is not None or event.data is not None:
            data = event.raw_data
            if data is None:
                data = encode_data(event.data).decode()  # JSON: one line, CR/LF escaped
            # One kind of line break on the wire: CR and CRLF come back as LF.
            data = data.replace("\r\n", "\n").replace("\r", "\n")
            out.append((event.event or "message", data, last_id, retry))
    return out


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A Werkzeug threaded server streaming each of STREAMS with sse_response."""

    @Request.application
    def app(request: Request) -> Response:
        sent = STREAMS.get(request.path)
        if sent is None:
            return Response("not found", status=404)
        return sse_response(sent)

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


def read_ours(url: str) -> list[Row]:
    with EventSource(url, max_retries=0, timeout=TIMEOUT) as source:
        return [(e.type, e.data, e.last_event_id, e.retry) for e in source]


def read_ours_over_requests(url: str) -> list[Row]:
    with requests.get(url, stream=True, timeout=TIMEOUT) as response:
        chunks = response.iter_content(chunk_size=None)
        return [(e.type, e.data, e.last_event_id, e.retry) for e in iter_events(chunks)]


def read_httpx_sse(url: str) -> list[Row]:
    with httpx.Client(timeout=TIMEOUT) as client, connect_sse(client, "GET", url) as source:
        return [(e.event, e.data, e.id, e.retry) for e in source.iter_sse()]


def read_sseclient(url: str) -> list[Row]:
    headers = {"Accept": "text/event-stream"}
    with requests.get(url, stream=True, timeout=TIMEOUT, headers=headers) as response:
        # As sseclient-py's README does: the response itself, which reads 128-byte chunks.
        client = sseclient.SSEClient(response)  # type: ignore[arg-type]
        return [(e.event, e.data, e.id, e.retry) for e in client.events()]


READERS: dict[str, Callable[[str], list[Row]]] = {
    "ours": read_ours,
    "ours_over_requests": read_ours_over_requests,
    "httpx_sse": read_httpx_sse,
    "sseclient": read_sseclient,
}


@pytest.mark.parametrize("reader", list(READERS))
def test_all_clients_read_same_types_and_data(base_url: str, reader: str) -> None:
    """Every client reads the tricky payloads with the same event types and data, in order."""
    got = READERS[reader](base_url + "/tricky")
    assert [(t, d) for t, d, _, _ in got] == [(t, d) for t, d, _, _ in spec_events(TRICKY)]


@pytest.mark.parametrize("reader", ["ours", "ours_over_requests"])
def test_our_parser_reads_ids_and_retry_as_spec_says(base_url: str, reader: str) -> None:
    """Our client reads the tricky payloads exactly as the spec says, ids and retry included."""
    assert READERS[reader](base_url + "/tricky") == spec_events(TRICKY)


def test_httpx_sse_reads_sticky_ids_and_frame_retry(base_url: str) -> None:
    """httpx-sse keeps the last event id across events and reports each frame's own retry."""
    got = read_httpx_sse(base_url + "/tricky")
    expected = [(t, d, i) for t, d, i, _ in spec_events(TRICKY)]
    assert [(t, d, i) for t, d, i, _ in got] == expected
    dispatched = [e for e in TRICKY if e.data is not None or e.raw_data is not None]
    assert [r for _, _, _, r in got] == [e.retry for e in dispatched]


def test_sseclient_reads_only_frame_ids(base_url: str) -> None:
    """sseclient-py reports each frame's own id and retry string (deviation: ids not sticky)."""
    got = read_sseclient(base_url + "/tricky")
    dispatched = [e for e in TRICKY if e.data is not None or e.raw_data is not None]
    assert [i for _, _, i, _ in got] == [e.id for e in dispatched]
    expected_retry = [None if e.retry is None else str(e.retry) for e in dispatched]
    assert [r for _, _, _, r in got] == expected_retry


@pytest.mark.parametrize("reader", ["ours", "ours_over_requests"])
def test_our_client_dispatches_nothing_for_dataless_frames(base_url: str, reader: str) -> None:
    """Frames without data dispatch nothing, but their id and retry still take effect."""
    got = READERS[reader](base_url + "/dataless")
    assert got == spec_events(DATALESS)
    assert got == [("message", "first", "1", None), ("message", "after", "9", 100)]


def test_httpx_sse_dispatches_empty_events_for_dataless_frames(base_url: str) -> None:
    """httpx-sse deviation: event-, id-, retry- and comment-only frames dispatch empty events."""
    assert read_httpx_sse(base_url + "/dataless") == [
        ("message", "first", "1", None),
        ("orphan", "", "1", None),  # "event: orphan\n\n": the spec dispatches nothing
        ("message", "", "9", None),  # "id: 9\n\n"
        ("message", "", "9", 100),  # "retry: 100\n\n"
        ("message", "", "9", None),  # ": ping\n\n", a keep-alive comment
        ("message", "after", "9", None),
    ]


def test_sseclient_loses_id_and_retry_of_dataless_frames(base_url: str) -> None:
    """sseclient-py dispatches nothing for dataless frames but drops their id (deviation)."""
    assert read_sseclient(base_url + "/dataless") == [
        ("message", "first", "1", None),
        ("message", "after", None, None),  # the spec's lastEventId here is "9"
    ]
