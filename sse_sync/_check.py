"""``python -m sse_sync check URL``: is this event stream delivered the way a browser needs it?

The check opens the stream as a browser's ``EventSource`` does (``GET``, ``Accept:
text/event-stream``, ``Cache-Control: no-cache``), through whatever is between it and the
server, listens for ``duration`` seconds, then reconnects with ``Last-Event-ID``. It reports a
list of :class:`Finding` objects, one per check; any ``"fail"`` is a problem. The checks and the
fix of each are described for operators in docs/operations.md ("Self-check").

What arrives is recorded as ``(seconds since the request, bytes)`` per read from the socket
(:class:`Observation`) and judged afterwards, without IO (:func:`judge`), so the heuristics are
tested on exact timelines. The buffering heuristic rests on two facts of the wire:

* A server writes each frame whole (sse_sync writes whole frames, one or more per write). A
  frame whose first bytes arrive at least :data:`TEAR_GAP` seconds before its end was cut by
  something that forwards the stream by size: a proxy buffer (nginx sends 4 KiB pieces).
* A server sends a keep-alive comment only after a quiet period. Two comments arriving in one
  read means the first waited in a buffer at least that long.

Events arriving in bursts after silences are reported as a warning only: a server that sends
its events in batches looks the same.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from ._event import LINE_BREAK
from ._parse import EventParser, MessageEvent
from .client import _interrupt, _mime_essence

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Finding",
    "Frame",
    "FrameSplitter",
    "Observation",
    "Report",
    "judge",
    "judge_resume",
    "observe",
    "run_check",
    "split_frames",
]

Status = Literal["ok", "warn", "fail", "skip"]
End = Literal["deadline", "enough", "closed", "error"]

_BOM = "\ufeff".encode().decode("latin-1")  # as FrameSplitter sees it

#: Seconds between the first bytes of a frame and its end beyond which the frame was held by a
#: layer that forwards the stream by size. A server writes a frame at once; the network delivers
#: its end within a round trip.
TEAR_GAP = 1.0
#: A read that completes at least this many frames after :data:`BURST_GAP` seconds of silence is
#: a burst. Two bursts or more are reported as a warning.
BURST_FRAMES = 3
BURST_GAP = 1.0
#: Seconds to wait for a connection and its TLS handshake.
CONNECT_TIMEOUT = 10.0
#: The longest wait, in seconds, for the first event after reconnecting with ``Last-Event-ID``.
RESUME_WAIT = 10.0

_NGINX_BUFFERING_FIX = (
    "nginx: `proxy_buffering off;` in the stream's location, or let the app's "
    "`X-Accel-Buffering: no` header through (remove `proxy_ignore_headers X-Accel-Buffering`); "
    "`proxy_http_version 1.1;` also makes nginx pass each chunk on. Other proxies and CDNs: "
    "turn response buffering off for the stream's path."
)


def _import_httpx() -> ModuleType:
    try:
        import httpx
    except ImportError as exc:
        msg = (
            "'python -m sse_sync check' requires the 'httpx' package: "
            "pip install 'sse_sync[client]'"
        )
        raise ImportError(msg) from exc
    return httpx


@dataclass(frozen=True)
class Finding:
    """The outcome of one check.

    :param check: which check: ``connect``, ``status``, ``content-type``, ``cache``,
        ``content-length``, ``compression``, ``http-version``, ``stream``, ``buffering``,
        ``pings`` or ``resume``.
    :param status: ``"ok"``; ``"warn"``: worth a look, not counted as a problem; ``"fail"``: a
        problem; ``"skip"``: could not be checked (the summary says why).
    :param summary: what was seen, in plain words, with the measured figures.
    :param fix: what to change, for ``"warn"`` and ``"fail"``.
    """

    check: str
    status: Status
    summary: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    """Everything one run of the check found.

    :param url: the URL checked.
    :param duration: seconds the stream was listened to.
    :param idle_timeout: the idle timeout the pings were checked against, in seconds.
    :param findings: one :class:`Finding` per check, in the order they ran.
    """

    url: str
    duration: float
    idle_timeout: float
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        """The findings with status ``"fail"``."""
        return [f for f in self.findings if f.status == "fail"]

    def to_json(self) -> str:
        """The report as a JSON document (``ok`` is true when there is no problem)."""
        document = {"ok": not self.problems, **dataclasses.asdict(self)}
        return json.dumps(document, indent=2)

    def to_text(self) -> str:
        """The report in plain words, one finding per line, each problem with its fix."""
        lines = [
            f"sse_sync check {self.url} (listened {self.duration:.1f} s, "
            f"idle timeout {self.idle_timeout:g} s)"
        ]
        for finding in self.findings:
            label = finding.status.upper() if finding.status == "fail" else finding.status
            lines.append(f"  {label:<5} {finding.check:<15} {finding.summary}")
            if finding.fix:
                lines.append(f"        {'':<15} fix: {finding.fix}")
        problems = self.problems
        if problems:
            names = ", ".join(f.check for f in problems)
            lines.append(f"{len(problems)} problem(s): {names}")
        else:
            lines.append("no problem found")
        return "\n".join(lines)


@dataclass
class Observation:
    """What one connection brought; times are seconds since the request was sent.

    :param error: why there is no connection (refused, DNS, TLS, timeout), or ``None``.
    :param sent_at: when the request was sent, once it was.
    :param status_code: the response's status (after redirects, followed as browsers do); 0
        when no response came before listening stopped.
    :param reason: the status's reason phrase.
    :param http_version: ``"HTTP/1.0"``, ``"HTTP/1.1"`` or ``"HTTP/2"``, as negotiated.
    :param headers: the response headers, names in lower case, repeated ones joined by ``", "``.
    :param redirects: the URLs that redirected, in order.
    :param headers_at: when the response headers arrived.
    :param chunks: ``(when, bytes)`` for each read of the body, decoded if it was compressed.
    :param ended_at: when listening stopped.
    :param end: why it stopped: ``"deadline"``, ``"enough"`` (what was waited for came),
        ``"closed"`` (the server ended the stream) or ``"error"``.
    :param end_error: the error that broke the connection, when ``end`` is ``"error"``.
    """

    error: str | None = None
    sent_at: float | None = None
    status_code: int = 0
    reason: str = ""
    http_version: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    redirects: list[str] = field(default_factory=list)
    headers_at: float = 0.0
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    ended_at: float = 0.0
    end: End = "deadline"
    end_error: str = ""


@dataclass(frozen=True)
class Frame:
    """One frame of the stream: the lines up to a blank line.

    :param kind: ``"event"`` (it dispatched one), ``"comment"`` (comments only: a keep-alive)
        or ``"fields"`` (``id:``/``retry:`` or unknown fields without data).
    :param started: when its first byte arrived.
    :param completed: when its blank line arrived.
    :param read: the index of the read that completed it.
    :param last_event_id: the stream's last event id after it.
    :param event: the event it dispatched, for ``"event"`` frames.
    """

    kind: Literal["event", "comment", "fields"]
    started: float
    completed: float
    read: int
    last_event_id: str
    event: MessageEvent | None = None


class FrameSplitter:
    """Cuts the timed reads of an event stream into :class:`Frame`\\ s.

    Each frame's bytes go to one :class:`~sse_sync.client.EventParser`, which interprets them
    (events, ids): the splitter only finds where frames begin and end, and when.
    """

    def __init__(self) -> None:
        self._parser = EventParser()
        self._lines: list[str] = []  # the complete lines of the current frame
        self._partial = ""  # the current line, not yet terminated
        self._after_cr = False  # the last read ended with CR: a LF next completes a CRLF
        self._started: float | None = None
        self._reads = 0

    def feed(self, at: float, chunk: bytes) -> list[Frame]:
        """Take the next read (``chunk``, arrived ``at``); return the frames it completed."""
        read = self._reads
        self._reads += 1
        # latin-1 maps each byte to one character, so LINE_BREAK splits the raw bytes exactly;
        # UTF-8 is decoded by the parser. A BOM is not a line break: it is left to the parser.
        text = chunk.decode("latin-1")
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the second half of a CRLF split between two reads
        self._after_cr = text.endswith("\r")
        if not text:
            return []
        pieces = LINE_BREAK.split(self._partial + text)
        self._partial = pieces.pop()
        frames = []
        for line in pieces:
            if line:
                if self._started is None:
                    self._started = at
                self._lines.append(line)
            elif self._lines:
                frames.append(self._finish(at, read))
        if self._partial and self._started is None:
            self._started = at
        return frames

    def _finish(self, at: float, read: int) -> Frame:
        lines = self._lines
        started = at if self._started is None else self._started
        self._lines = []
        self._started = None
        events = self._parser.feed(("\n".join(lines) + "\n\n").encode("latin-1"))
        last_id = self._parser.last_event_id
        if events:
            return Frame("event", started, at, read, last_id, events[0])
        if all(line.startswith((":", _BOM + ":")) for line in lines):
            return Frame("comment", started, at, read, last_id)
        return Frame("fields", started, at, read, last_id)


def split_frames(chunks: Iterable[tuple[float, bytes]]) -> list[Frame]:
    """All the frames completed by ``chunks`` (``(when, bytes)`` per read), in order."""
    splitter = FrameSplitter()
    return [frame for at, chunk in chunks for frame in splitter.feed(at, chunk)]


class _Connection:
    """One streaming request, read on a thread so that the caller can stop it at a deadline."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        headers: Mapping[str, str],
        until: Callable[[float, bytes], bool] | None,
    ) -> None:
        self.observation = Observation()
        self._client = client
        self._url = url
        self._headers = headers
        self._until = until
        # Guards the observation: once stopped (the deadline) or ended, it no longer changes.
        self._lock = threading.Lock()
        self._over = False
        self._response: httpx.Response | None = None
        self._start = time.monotonic()
        self.done = threading.Event()

    def _now(self) -> float:
        return time.monotonic() - self._start

    def _end(self, end: End, error: str = "") -> None:
        with self._lock:
            if self._over:
                return
            self._over = True
            obs = self.observation
            obs.ended_at, obs.end_error = self._now(), error
            obs.end = end

    def run(self) -> None:
        lib = _import_httpx()
        try:
            with self._client.stream(
                "GET", self._url, headers=self._headers, extensions={"trace": self._trace}
            ) as response:
                with self._lock:
                    if self._over:
                        return
                    self._response = response
                    self._record(response)
                if response.status_code != 200:
                    self._end("enough")
                    return
                for chunk in response.iter_bytes():
                    at = self._now()
                    with self._lock:
                        if self._over:
                            return
                        self.observation.chunks.append((at, chunk))
                    if self._until is not None and self._until(at, chunk):
                        self._end("enough")
                        return
                self._end("closed")
        except lib.HTTPError as exc:
            with self._lock:
                if self._over:
                    return  # the deadline shut the connection down: not the server's doing
                answered = self._response is not None
                if not answered and not isinstance(exc, lib.ReadTimeout):
                    self._over = True
                    self.observation.error = _describe(exc)  # no connection
                    return
            if answered:
                self._end("error", _describe(exc))
            else:
                self._end("deadline")  # the headers did not come within the duration
        finally:
            self.done.set()

    def _trace(self, name: str, info: Mapping[str, object]) -> None:
        """httpcore's trace hook: note when the request has gone out."""
        if name.endswith(".send_request_body.complete"):
            with self._lock:
                if not self._over:
                    self.observation.sent_at = self._now()

    def _record(self, response: httpx.Response) -> None:
        obs = self.observation
        obs.headers_at = self._now()
        obs.status_code = response.status_code
        obs.reason = response.reason_phrase
        obs.http_version = response.http_version
        obs.redirects = [str(r.url) for r in response.history]
        for name in response.headers:
            obs.headers[name.lower()] = ", ".join(response.headers.get_list(name))

    def stop(self) -> None:
        """End the observation now and make a read blocked in :meth:`run` return."""
        self._end("deadline")
        with self._lock:
            response = self._response
        if response is not None:
            _interrupt(response)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def observe(
    client: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    duration: float,
    until: Callable[[float, bytes], bool] | None = None,
) -> Observation:
    """Send one event-stream request and record what arrives for ``duration`` seconds.

    :param client: the client to send it with.
    :param url: the event stream's URL.
    :param headers: the request headers.
    :param duration: seconds to listen for.
    :param until: called with each read (its time and bytes); listening stops when it returns
        true.
    """
    connection = _Connection(client, url, headers, until)
    reader = threading.Thread(target=connection.run, name="sse_sync-check", daemon=True)
    reader.start()
    if not connection.done.wait(duration):
        connection.stop()
    # A connection still waiting for its headers ends by the client's read timeout.
    reader.join(CONNECT_TIMEOUT + duration)
    return connection.observation


def _proxy_seen(headers: Mapping[str, str]) -> str:
    """The response headers that name a server or proxy, for the findings' text."""
    seen = [f"{name.title()}: {headers[name]}" for name in ("server", "via") if name in headers]
    return f" (the response came through {', '.join(seen)})" if seen else ""


def _judge_response(obs: Observation, url: str) -> list[Finding]:
    """Connection, status, content type, then the headers; a failure of the first three ends it."""
    if obs.error is None and obs.status_code == 0 and obs.sent_at is not None:
        return [
            Finding(
                "status",
                "fail",
                f"the request was sent at {obs.sent_at:.2f} s, then no response headers came "
                f"within {obs.ended_at:.1f} s: a browser's EventSource stays in its connecting "
                "state",
                "a WSGI server sends the headers with the first frame, so send one at once (a "
                "comment will do: ServerSentEvent(comment=...)); a proxy that buffers or "
                "compresses the stream may hold the headers too: see buffering and compression "
                "in docs/operations.md",
            )
        ]
    if obs.error is not None or obs.status_code == 0:
        error = obs.error or f"no connection within {obs.ended_at:.1f} s"
        return [
            Finding(
                "connect",
                "fail",
                f"no response from {url}: {error}",
                "check the URL, that the server runs and that this machine can reach it "
                "(a proxy needs HTTPS_PROXY/HTTP_PROXY in the environment)",
            )
        ]
    via = f" after redirects from {', '.join(obs.redirects)}" if obs.redirects else ""
    if obs.status_code != 200:
        fixes = {
            204: "204 tells browsers to stop reconnecting: the server closed the stream on purpose",
            401: "pass credentials: --header 'Authorization: Bearer ...' (or a Cookie header)",
            403: "pass credentials that may read this stream: --header 'Authorization: ...'",
            404: "check the path: no stream is served there",
        }
        return [
            Finding(
                "status",
                "fail",
                f"expected status 200, got {obs.status_code} {obs.reason}{via}: a browser's "
                "EventSource fails the connection and does not reconnect",
                fixes.get(obs.status_code, "make the stream's URL answer 200 with the stream"),
            )
        ]
    findings = [Finding("status", "ok", f"200 {obs.reason} in {obs.headers_at:.2f} s{via}")]
    content_type = obs.headers.get("content-type", "")
    if _mime_essence(content_type) != "text/event-stream":
        findings.append(
            Finding(
                "content-type",
                "fail",
                f"expected Content-Type 'text/event-stream', got {content_type!r}: a browser's "
                "EventSource fails the connection" + _proxy_seen(obs.headers),
                "serve the stream with sse_response(); an HTML answer is often a login page or "
                "a proxy's error page",
            )
        )
        return findings
    findings.append(Finding("content-type", "ok", content_type))
    return findings + [_judge_cache(obs), _judge_length(obs), _judge_compression(obs)]


def _judge_cache(obs: Observation) -> Finding:
    value = obs.headers.get("cache-control")
    directives = {d.split("=")[0].strip().lower() for d in (value or "").split(",")}
    fix = (
        "the stream must not be cached: sse_response() sends `Cache-Control: no-cache`; a layer "
        "in between dropped or replaced it (nginx: `proxy_cache`, `expires`, `add_header "
        "Cache-Control`, `proxy_hide_header Cache-Control`; a CDN's caching rule): let the "
        "app's header through and turn caching off for the stream's path"
    )
    if "age" in obs.headers:
        return Finding(
            "cache",
            "fail",
            f"a cache answered (Age: {obs.headers['age']}): the browser got a stored copy, "
            "not the live stream" + _proxy_seen(obs.headers),
            fix,
        )
    if not directives & {"no-cache", "no-store"}:
        shown = f"Cache-Control: {value}" if value is not None else "no Cache-Control header"
        return Finding(
            "cache",
            "fail",
            f"{shown}; expected no-cache (or no-store), so that no cache between the server and "
            "the browser stores the stream" + _proxy_seen(obs.headers),
            fix,
        )
    return Finding("cache", "ok", f"Cache-Control: {value}")


def _judge_length(obs: Observation) -> Finding:
    if "content-length" in obs.headers:
        return Finding(
            "content-length",
            "fail",
            f"Content-Length: {obs.headers['content-length']} on an event stream: the whole "
            "body was read before it was sent, so events arrive only when the stream ends"
            + _proxy_seen(obs.headers),
            "the layer that adds it holds the stream to count it: turn its buffering off for the "
            "stream (a proxy's response buffering, a WSGI middleware that reads the whole body)",
        )
    if obs.http_version == "HTTP/2":
        framing = "HTTP/2 DATA frames"
    else:
        framing = obs.headers.get("transfer-encoding", "the connection's end")
    return Finding("content-length", "ok", f"no Content-Length; framing: {framing}")


def _judge_compression(obs: Observation) -> Finding:
    encoding = obs.headers.get("content-encoding", "identity")
    transfer = obs.headers.get("transfer-encoding", "chunked")
    codings = {c.strip().lower() for c in f"{encoding},{transfer}".split(",")} - {
        "identity",
        "chunked",
        "",
    }
    if codings:
        return Finding(
            "compression",
            "fail",
            f"the stream is compressed (Content-Encoding: {encoding}, Transfer-Encoding: "
            f"{transfer}): a compressor keeps small events in its buffer until it fills or "
            "flushes, and every layer after it must flush too, or events arrive late and in "
            "bursts" + _proxy_seen(obs.headers),
            "do not compress text/event-stream: nginx `gzip off;` in the stream's location (or "
            "leave text/event-stream out of `gzip_types`); Flask-Compress: leave it out of "
            "COMPRESS_MIMETYPES; a CDN: a rule that skips compression for the stream's path",
        )
    return Finding("compression", "ok", "not compressed")


def _judge_http_version(obs: Observation, url: str, http2_tried: bool) -> Finding:
    version = obs.http_version
    if version == "HTTP/1.0":
        return Finding(
            "http-version",
            "fail",
            "HTTP/1.0: no chunked transfer coding and no keep-alive, so a stream cut short "
            "cannot be told from a finished one, and HTTP/1.0 proxies tend to buffer"
            + _proxy_seen(obs.headers),
            "serve the stream over HTTP/1.1 or HTTP/2 (the first server the client reaches "
            "answered in HTTP/1.0: an old proxy or a development server)",
        )
    if version == "HTTP/2":
        return Finding("http-version", "ok", "HTTP/2: streams share one connection")
    note = (
        "browsers open at most 6 HTTP/1.1 connections per site and each EventSource holds one; "
        "HTTP/2 (over TLS) lifts that limit"
    )
    if url.startswith("https:") and not http2_tried:
        note += "; HTTP/2 was not offered: pip install 'httpx[http2]' to see if it is served"
    return Finding("http-version", "ok", f"{version}: {note}")


def _silences(obs: Observation) -> list[tuple[float, float]]:
    """The quiet periods ``(start, end)`` from the request to the end of listening."""
    moments = [0.0, obs.headers_at, *(at for at, _ in obs.chunks), obs.ended_at]
    return list(zip(moments, moments[1:], strict=False))


def _judge_stream(obs: Observation, frames: Sequence[Frame]) -> Finding:
    events = sum(f.kind == "event" for f in frames)
    comments = sum(f.kind == "comment" for f in frames)
    first = next((f.completed for f in frames if f.kind == "event"), None)
    first_text = f"; first event at {first:.2f} s" if first is not None else ""
    summary = (
        f"{events} event(s) and {comments} comment(s) in {len(obs.chunks)} read(s) over "
        f"{obs.ended_at:.1f} s{first_text}"
    )
    if obs.end == "error":
        return Finding(
            "stream",
            "fail",
            f"the connection broke after {obs.ended_at:.1f} s ({obs.end_error}); {summary}",
            "look at the server's and the proxies' error logs at that time (a proxy timeout, "
            "a worker timeout or restart)",
        )
    if obs.end == "closed":
        return Finding(
            "stream",
            "warn",
            f"the stream ended after {obs.ended_at:.1f} s; {summary}",
            "browsers reconnect after the `retry` time; if the server did not mean to end it "
            "(sse_sync ends streams on max_lifetime and when a worker stops), look at the "
            "proxies' timeouts",
        )
    if not frames:
        return Finding(
            "stream",
            "warn",
            f"no complete frame in {obs.ended_at:.1f} s ({len(obs.chunks)} read(s))",
            "the server sent nothing, or a layer in between holds the stream (see buffering)",
        )
    return Finding("stream", "ok", summary)


def _judge_buffering(obs: Observation, frames: Sequence[Frame]) -> Finding:
    fix = _NGINX_BUFFERING_FIX
    torn = [f for f in frames if f.completed - f.started >= TEAR_GAP]
    if torn:
        worst = max(torn, key=lambda f: f.completed - f.started)
        return Finding(
            "buffering",
            "fail",
            f"{len(torn)} frame(s) arrived in pieces, held up to "
            f"{worst.completed - worst.started:.1f} s (the first bytes of one at "
            f"{worst.started:.2f} s, its end at {worst.completed:.2f} s): a server writes each "
            "frame whole, so a layer in between forwards the stream by size, not as it comes"
            + _proxy_seen(obs.headers),
            fix,
        )
    comments_per_read: dict[int, list[Frame]] = {}
    for frame in frames:
        if frame.kind == "comment":
            comments_per_read.setdefault(frame.read, []).append(frame)
    held = [group for group in comments_per_read.values() if len(group) >= 2]
    if held:
        return Finding(
            "buffering",
            "fail",
            f"{len(held[0])} keep-alive comments arrived in one read at {held[0][0].completed:.2f}"
            " s: a server sends one only after a quiet period, so the first waited in a buffer"
            + _proxy_seen(obs.headers),
            fix,
        )
    frames_per_read: dict[int, int] = {}
    for frame in frames:
        frames_per_read[frame.read] = frames_per_read.get(frame.read, 0) + 1
    bursts = []
    previous = 0.0
    for index, (at, _) in enumerate(obs.chunks):
        if frames_per_read.get(index, 0) >= BURST_FRAMES and at - previous >= BURST_GAP:
            bursts.append((at, at - previous, frames_per_read[index]))
        previous = at
    if len(bursts) >= 2:
        at, gap, count = max(bursts, key=lambda b: b[2])
        return Finding(
            "buffering",
            "warn",
            f"{len(bursts)} bursts: reads of {BURST_FRAMES} frames or more after {BURST_GAP:g} s "
            f"of silence or more (the largest: {count} frames at {at:.2f} s after {gap:.1f} s); "
            "either the server sends its events in batches, or a layer in between buffers them",
            "if the server does not batch its events: " + fix,
        )
    if not obs.chunks and obs.ended_at - obs.headers_at >= TEAR_GAP:
        return Finding(
            "buffering",
            "warn",
            f"the headers came at {obs.headers_at:.2f} s, then no byte of the body for "
            f"{obs.ended_at - obs.headers_at:.1f} s: the server sent nothing, or a layer in "
            "between holds the body" + _proxy_seen(obs.headers),
            "if the server sends events or pings that often: " + fix,
        )
    if not frames:
        return Finding("buffering", "skip", "no complete frame arrived to judge from")
    largest = max(frames_per_read.values())
    return Finding(
        "buffering",
        "ok",
        f"each frame arrived whole, keep-alives one at a time; at most {largest} frame(s) a read",
    )


def _judge_pings(
    obs: Observation, frames: Sequence[Frame], idle_timeout: float, buffering: Finding
) -> Finding:
    start, end = max(_silences(obs), key=lambda s: s[1] - s[0])
    longest = end - start
    comments = [f.completed for f in frames if f.kind == "comment"]
    seen = f"{len(comments)} keep-alive comment(s)"
    if len(comments) >= 2:
        gaps = [b - a for a, b in zip(comments, comments[1:], strict=False)]
        seen += f", every {statistics.median(gaps):.1f} s (median)"
    if longest > idle_timeout:
        held = ""
        if buffering.status in ("warn", "fail"):
            held = " (a buffer in between may be holding them: see buffering)"
        return Finding(
            "pings",
            "fail",
            f"no byte for {longest:.1f} s (from {start:.1f} s to {end:.1f} s), longer than the "
            f"idle timeout of {idle_timeout:g} s: a proxy or load balancer with that timeout "
            f"closes the stream; {seen}{held}",
            f"send keep-alive comments more often than every {idle_timeout:g} s: "
            f"sse_response(ping=...) (15 s by default; ping=None turns them off), or raise the "
            "proxies' idle timeout (nginx: `proxy_read_timeout`)",
        )
    if obs.ended_at < idle_timeout and not comments:
        return Finding(
            "pings",
            "skip",
            f"listened {obs.ended_at:.1f} s, less than the idle timeout of {idle_timeout:g} s, "
            "and saw no keep-alive comment: pass a longer --duration to check the pings",
        )
    if not comments:
        seen += " (a stream that is never quiet needs none)"
    return Finding(
        "pings",
        "ok",
        f"longest silence {longest:.1f} s, within the idle timeout of {idle_timeout:g} s; {seen}",
    )


def _resume_until(splitter: FrameSplitter) -> Callable[[float, bytes], bool]:
    """Stop reading the resumed stream at its first event with an id, or its ``reset`` event."""

    def until(at: float, chunk: bytes) -> bool:
        return any(_decisive(f) for f in splitter.feed(at, chunk))

    return until


def _decisive(frame: Frame) -> bool:
    event = frame.event
    return event is not None and (event.type == "reset" or bool(event.last_event_id))


def _at_or_before(candidate: str, last: str, seen: set[str]) -> bool:
    """Whether ``candidate`` is an id the first connection already had, or comes before ``last``.

    Ids are opaque strings: any id seen before counts; decimal ids are also compared as numbers.
    """
    if candidate in seen:
        return True
    return candidate.isdecimal() and last.isdecimal() and int(candidate) <= int(last)


def judge_resume(last_id: str, seen: set[str], resumed: Observation | None) -> Finding:
    """Judge the reconnection made with ``Last-Event-ID: last_id``.

    :param last_id: the last event id of the first connection (what a browser sends back).
    :param seen: every last event id the first connection had.
    :param resumed: what the reconnection brought; ``None`` when it was not made (no id, or
        ``--no-resume``).
    """
    if not last_id:
        return Finding(
            "resume", "skip", "the stream sent no event id, so a browser has nothing to resume from"
        )
    if resumed is None:
        return Finding("resume", "skip", "not checked (--no-resume)")
    fix = (
        "read the `Last-Event-ID` header (sse_sync.last_event_id()) and send only the events after "
        "it (a broker: subscribe(channel, last_event_id=last_event_id())); when they are gone, "
        "send a `reset` event"
    )
    if resumed.error is not None or resumed.status_code != 200:
        problem = resumed.error or f"status {resumed.status_code} {resumed.reason}"
        return Finding(
            "resume",
            "fail",
            f"reconnecting with Last-Event-ID: {last_id} failed: {problem}",
            "accept any id a client sends back: an id the server cannot resume from gets a "
            "`reset` event, not an error",
        )
    frames = split_frames(resumed.chunks)
    decisive = next((f for f in frames if _decisive(f)), None)
    if decisive is None or decisive.event is None:
        return Finding(
            "resume",
            "ok",
            f"reconnected with Last-Event-ID: {last_id}; no event repeated in "
            f"{resumed.ended_at:.1f} s",
        )
    event = decisive.event
    if event.type == "reset":
        return Finding(
            "resume",
            "ok",
            f"reconnected with Last-Event-ID: {last_id}; the server could not resume from it and "
            f"said so with a `reset` event ({event.data})",
        )
    if _at_or_before(event.last_event_id, last_id, seen):
        return Finding(
            "resume",
            "fail",
            f"reconnected with Last-Event-ID: {last_id}, and the first event was id "
            f"{event.last_event_id!r}, one the first connection already had: the server ignored "
            "the header and replayed, so every reconnecting browser gets duplicates",
            fix,
        )
    return Finding(
        "resume",
        "ok",
        f"reconnected with Last-Event-ID: {last_id}; the stream went on at id "
        f"{event.last_event_id!r}",
    )


def judge(
    obs: Observation,
    url: str,
    *,
    idle_timeout: float,
    http2_tried: bool = False,
) -> tuple[list[Finding], list[Frame] | None]:
    """Judge the first connection of a check; return the findings and the stream's frames.

    The frames are ``None`` when the response is not an event stream (status, content type).

    :param obs: what the connection brought.
    :param url: the URL that was checked.
    :param idle_timeout: the shortest idle timeout of the proxies in between, in seconds.
    :param http2_tried: whether HTTP/2 was offered (the ``h2`` package is installed).
    """
    findings = _judge_response(obs, url)
    if (
        findings[-1].check in ("connect", "status", "content-type")
        and findings[-1].status == "fail"
    ):
        return findings, None
    frames = split_frames(obs.chunks)
    buffering = _judge_buffering(obs, frames)
    findings += [
        _judge_http_version(obs, url, http2_tried),
        _judge_stream(obs, frames),
        buffering,
        _judge_pings(obs, frames, idle_timeout, buffering),
    ]
    return findings, frames


def run_check(
    url: str,
    *,
    duration: float | None = None,
    idle_timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
    resume: bool = True,
) -> Report:
    """Check the event stream at ``url`` as a browser would receive it.

    .. code-block:: python

        report = run_check("https://example.com/stream", idle_timeout=60)
        print(report.to_text())

    :param url: the event stream's URL.
    :param duration: seconds to listen to the stream; ``None``: the idle timeout plus 5 s,
        long enough to see a keep-alive comment.
    :param idle_timeout: the shortest idle timeout of the proxies and load balancers between
        the browser and the server, in seconds: no silence may be longer.
    :param headers: extra request headers (``Authorization``, ``Cookie``, ...).
    :param resume: reconnect with the last event id seen and check the stream goes on after it.
    """
    lib = _import_httpx()
    if not idle_timeout > 0:
        msg = f"Expected idle_timeout to be seconds > 0, got {idle_timeout!r}"
        raise ValueError(msg)
    if duration is None:
        duration = idle_timeout + 5.0
    elif not duration > 0:
        msg = f"Expected duration to be seconds > 0, got {duration!r}"
        raise ValueError(msg)
    request_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    request_headers.update(headers or {})
    http2 = importlib.util.find_spec("h2") is not None
    timeout = lib.Timeout(CONNECT_TIMEOUT, read=duration)
    with lib.Client(http2=http2, timeout=timeout, follow_redirects=True) as client:
        first = observe(client, url, request_headers, duration)
        findings, frames = judge(first, url, idle_timeout=idle_timeout, http2_tried=http2)
        if frames is not None:
            last_id = frames[-1].last_event_id if frames else ""
            resumed = None
            if resume and last_id:
                wait = min(duration, RESUME_WAIT)
                resumed_headers = {**request_headers, "Last-Event-ID": last_id}
                until = _resume_until(FrameSplitter())
                resumed = observe(client, url, resumed_headers, wait, until)
            seen = {f.last_event_id for f in frames}
            findings.append(judge_resume(last_id, seen, resumed))
    return Report(url, round(first.ended_at, 3), idle_timeout, findings)
