"""HTTP/2 event streams in Chromium: sse_sync's gunicorn worker, and nginx terminating HTTP/2.

Chromium speaks HTTP/2 only over TLS, so the servers use a self-signed certificate made here.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sse_sync._event import encode_item

from ..conftest import (
    ROOT,
    STREAM_APP,
    LiveServer,
    StreamClient,
    start_server,
    wait_until,
)
from ..nginx import Nginx
from ..redis_server import free_port
from .apps.stream_app import FRAMES

pytestmark = [pytest.mark.integration, pytest.mark.gevent, pytest.mark.browser]

H2_APP = "tests.integration.apps.h2_app:app"
WORKER = "sse_sync.gunicorn.GeventWorker"
DEPLOYMENT_MD = ROOT / "docs" / "deployment.md"

#: Distinct tags across the tests of a module-scoped server (its /state accumulates them).
_tags = itertools.count()

# Opens ``count`` EventSources of ``url`` and ``pingers`` fetch() readers of ``pingUrl`` ("{i}"
# in them is replaced by 0, 1, ...); window.h2 counts the messages of each EventSource and the
# pings each reader saw.
_OPEN = """([url, count, pingUrl, pingers]) => {
  const h2 = window.h2 = {messages: [], pings: [], sources: [], aborts: []};
  for (let i = 0; i < count; i++) {
    const source = new EventSource(url.replace("{i}", i));
    h2.messages.push(0);
    source.onmessage = () => { h2.messages[i]++; };
    h2.sources.push(source);
  }
  for (let i = 0; i < pingers; i++) {
    const abort = new AbortController();
    h2.pings.push(0);
    h2.aborts.push(abort);
    fetch(pingUrl.replace("{i}", i), {signal: abort.signal}).then(async (response) => {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return;
        text += decoder.decode(value, {stream: true});
        h2.pings[i] = text.split(": ping\\n\\n").length - 1;
      }
    }).catch(() => {});
  }
}"""

_CLOSE_ALL = (
    "() => { window.h2.sources.forEach(s => s.close()); window.h2.aborts.forEach(a => a.abort()); }"
)


def https_json(port: int, path: str) -> Any:
    """GET ``path`` over HTTPS (HTTP/1.1, any certificate) and decode its JSON."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _answers(server: LiveServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited:\n{server.log}")
    try:
        https_json(server.port, "/state")
    except (OSError, http.client.HTTPException, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def start_tls_gunicorn(certificate: tuple[Path, Path], *extra: str) -> LiveServer:
    """gunicorn with sse_sync's worker serving the HTTP/2 test app over TLS, on a free port."""
    cert, key = certificate
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "-k", WORKER, "--http-protocols", "h2,h1"]
    args += ["--certfile", str(cert), "--keyfile", str(key), "--bind", f"127.0.0.1:{port}"]
    args += ["--workers", "1", "--timeout", "120", *extra, H2_APP]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SSE_SYNC_TEST_PARENT": str(os.getpid()),
        "SSE_SYNC_TEST_KIND": "gunicorn",
    }
    return spawn(args, port, cwd=ROOT, env=env)


def spawn(args: list[str], port: int, **popen: Any) -> LiveServer:
    """Start ``args``, collecting its stderr; return once it answers HTTPS on ``port``."""
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen
    )
    assert process.stderr is not None
    lines: list[str] = []
    pump = threading.Thread(target=lines.extend, args=(process.stderr,), daemon=True)
    pump.start()
    server = LiveServer(process, port, lines, pump)
    try:
        wait_until(lambda: _answers(server), timeout=30)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def h2_server(certificate: tuple[Path, Path]) -> Iterator[LiveServer]:
    """gunicorn with sse_sync's worker, serving HTTP/2 over TLS."""
    server = start_tls_gunicorn(certificate)
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


def open_page(browser: Any, url: str) -> Any:
    """A page at ``url``, in a context that accepts the self-signed certificate."""
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    return page


def ten_streams_over_one_connection(page: Any, state: Callable[[], Any]) -> tuple[float, list[str]]:
    """10 EventSources and 2 ping readers stream at once over HTTP/2, then the page closes them.

    ``state`` returns the app's /state. Returns the seconds until every generator's ``finally``
    ran after the close, and the tags of the 12 streams.
    """
    assert page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    run = next(_tags)
    tags = [f"es{run}-{i}" for i in range(10)] + [f"ping{run}-{i}" for i in range(2)]
    sources = f"/tracked/es{run}-{{i}}?sleep=0.2"
    page.evaluate(_OPEN, [sources, 10, f"/tracked/ping{run}-{{i}}?sleep=60&ping=0.2", 2])
    page.wait_for_function("window.h2.messages.every(n => n >= 5)")
    page.wait_for_function("window.h2.pings.every(n => n >= 3)")
    assert state()["active"] >= 12
    assert not set(tags) & set(state()["finally_ran"])
    closed = time.monotonic()
    page.evaluate(_CLOSE_ALL)
    wait_until(lambda: set(tags) <= set(state()["finally_ran"]), timeout=10)
    elapsed = time.monotonic() - closed
    # A resource's timing entry, with the protocol it came over, appears once it has ended.
    protocols = page.wait_for_function(
        """(run) => {
          const mine = performance.getEntriesByType("resource")
            .filter(e => e.name.includes("/tracked/es" + run + "-"));
          return mine.length === 10 && mine.map(e => e.nextHopProtocol);
        }""",
        arg=run,
    ).json_value()
    assert protocols == ["h2"] * 10
    return elapsed, tags


def test_ten_event_sources_stream_over_one_h2_connection(
    browser: Any, h2_server: LiveServer
) -> None:
    """10 EventSources on one HTTP/2 connection all stream, and each closed one ends promptly."""
    page = open_page(browser, f"https://127.0.0.1:{h2_server.port}")
    try:
        elapsed, tags = ten_streams_over_one_connection(
            page, lambda: https_json(h2_server.port, "/state")
        )
    finally:
        page.context.close()
    arrived = https_json(h2_server.port, "/seen")
    assert {arrived[f"/tracked/{tag}"][0] for tag in tags} == {"HTTP/2.0"}, arrived
    assert len({arrived[f"/tracked/{tag}"][1] for tag in tags}) == 1, arrived  # one client port
    print(f"\n12 HTTP/2 streams closed: every finally ran after {elapsed:.2f} s")
    assert elapsed < 2.0


def test_closed_idle_h2_stream_runs_finally(browser: Any, h2_server: LiveServer) -> None:
    """Closing an EventSource whose stream writes nothing (no pings) runs its finally at once."""
    run = next(_tags)
    page = open_page(browser, f"https://127.0.0.1:{h2_server.port}")
    try:
        # Each source sleeps 60 s after its first event, and sends no ping meanwhile.
        page.evaluate(_OPEN, [f"/tracked/quiet{run}-{{i}}?sleep=60&ping=none", 3, "", 0])
        page.wait_for_function("window.h2.messages.every(n => n == 1)")
        tags = [f"quiet{run}-{i}" for i in range(3)]
        wait_until(lambda: https_json(h2_server.port, "/state")["active"] >= 3)
        closed = time.monotonic()
        page.evaluate("window.h2.sources[1].close()")
        wait_until(
            lambda: tags[1] in https_json(h2_server.port, "/state")["finally_ran"], timeout=10
        )
        elapsed = time.monotonic() - closed
        finished = https_json(h2_server.port, "/state")["finally_ran"]
        assert tags[0] not in finished and tags[2] not in finished  # the others stream on
        page.wait_for_function("window.h2.sources[0].readyState === EventSource.OPEN")
    finally:
        page.context.close()
    assert elapsed < 2.0


def test_sigterm_ends_h2_streams_within_seconds(
    browser: Any, certificate: tuple[Path, Path]
) -> None:
    """SIGTERM with HTTP/2 streams open: gunicorn exits within seconds, without a traceback."""
    server = start_tls_gunicorn(certificate, "--graceful-timeout", "60")
    page = open_page(browser, f"https://127.0.0.1:{server.port}")
    try:
        page.evaluate(_OPEN, ["/tracked/drain{i}?sleep=0.2", 5, "", 0])
        page.wait_for_function("window.h2.messages.every(n => n >= 2)")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
        elapsed = time.monotonic() - started
    finally:
        page.context.close()
        server.stop()
    print(f"\nSIGTERM with 5 HTTP/2 streams: gunicorn gone after {elapsed:.2f} s")
    assert elapsed < 6.0
    assert "Traceback" not in server.log, server.log


def test_sigterm_ends_every_h2_stream_with_its_retry_hint(
    certificate: tuple[Path, Path],
) -> None:
    """SIGTERM: each stream of an HTTP/2 connection ends with its own ``retry:`` hint."""
    server = start_tls_gunicorn(certificate, "--graceful-timeout", "60")
    client = H2Client(server.port)
    try:
        streams = [client.request("GET", f"/tracked/hint{i}?sleep=0.2") for i in range(8)]
        for stream in streams:
            client.ack(stream)
        client.read_until(lambda: all(client.body[s].count(b"\n\n") >= 2 for s in streams))
        server.process.send_signal(signal.SIGTERM)
        client.read_until(lambda: client.ended >= set(streams))
    finally:
        client.sock.close()
        server.stop()
    for stream in streams:
        assert re.search(rb"\nretry: \d+\n\n$", client.body[stream]), client.body[stream]


class H2Client:
    """A raw HTTP/2 client over TLS (the h2 package), for what a browser cannot be made to do.

    ``window`` is the receive window of each stream; only streams in ``acked`` get their
    window credit back as their data arrives, the others stall once it is spent.
    """

    def __init__(self, port: int, window: int = 65535, tls: bool = True) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:  # else HTTP/2 with prior knowledge, as a proxy may speak it
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")
            assert self.sock.selected_alpn_protocol() == "h2"
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.acked: set[int] = set()
        self.body: dict[int, bytes] = {}
        self.ended: set[int] = set()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, method: str, path: str, length: int = 0) -> int:
        """Send a request's headers; a body of ``length`` bytes follows with send_body()."""
        stream_id: int = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https")]
        headers += [(":authority", "127.0.0.1"), ("content-length", str(length))]
        self.conn.send_headers(stream_id, headers, end_stream=not length)
        self.body[stream_id] = b""
        self.flush()
        return stream_id

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id)
        self.flush()

    def ack(self, stream_id: int) -> None:
        """Give back the window credit of everything received so far on ``stream_id``."""
        self.acked.add(stream_id)
        if self.body[stream_id]:
            self.conn.acknowledge_received_data(len(self.body[stream_id]), stream_id)
            self.flush()

    def read_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Handle frames until ``predicate()`` holds; fail after ``timeout`` seconds."""
        import h2.events

        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {self.body!r}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.body[event.stream_id] += event.data
                    if event.stream_id in self.acked:
                        size = event.flow_controlled_length
                        self.conn.acknowledge_received_data(size, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
            self.flush()

    def send_body(self, stream_id: int, body: bytes) -> None:
        """Send ``body`` and end the stream, waiting for window credit as needed."""
        while body:
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(body))
            if size:
                self.conn.send_data(stream_id, body[:size])
                body = body[size:]
                self.flush()
            else:
                self.read_until(lambda: self.conn.local_flow_control_window(stream_id) > 0)
        self.conn.end_stream(stream_id)
        self.flush()

    def close(self) -> None:
        self.conn.close_connection()
        self.flush()
        self.sock.close()


def test_stalled_h2_stream_blocks_neither_the_connection_nor_its_reset(
    h2_server: LiveServer,
) -> None:
    """A stream out of window credit waits alone: its neighbour streams, credit resumes it,
    and a reset ends it (its finally runs)."""
    run = next(_tags)
    client = H2Client(h2_server.port, window=100)
    try:
        stalled = client.request("GET", f"/tracked/stalled{run}?sleep=0.01&ping=none")
        flowing = client.request("GET", f"/tracked/flowing{run}?sleep=0.01&ping=none")
        client.ack(flowing)
        client.read_until(lambda: client.body[flowing].count(b"\n\n") >= 50)
        assert len(client.body[stalled]) <= 100
        client.ack(stalled)
        client.read_until(lambda: client.body[stalled].count(b"\n\n") >= 10)
        client.acked.discard(stalled)
        client.reset(stalled)
        wait_until(
            lambda: f"stalled{run}" in https_json(h2_server.port, "/state")["finally_ran"],
            timeout=5,
        )
        seen = len(client.body[flowing])
        client.read_until(lambda: len(client.body[flowing]) > seen)
    finally:
        client.close()


def test_h2_request_body_larger_than_the_window_arrives(h2_server: LiveServer) -> None:
    """A 1 MB request body, 16 times the server's window, reaches the app while it reads."""
    client = H2Client(h2_server.port)
    try:
        streaming = client.request("GET", "/idle?ping=0.1")
        client.ack(streaming)
        upload = client.request("POST", "/size", 1_000_000)
        client.send_body(upload, b"x" * 1_000_000)
        client.read_until(lambda: upload in client.ended)
        assert json.loads(client.body[upload]) == {"size": 1_000_000}
        # The stream still runs beside it (a fast upload can end before its first ping).
        client.read_until(lambda: client.body[streaming].count(b": ping\n\n") >= 1)
    finally:
        client.close()


def test_cleartext_h2_streams_run_side_by_side(live_server: Callable[..., LiveServer]) -> None:
    """HTTP/2 with prior knowledge over cleartext: a quiet stream and a busy one run side by
    side, and resetting the quiet one runs its finally."""
    h2c = ["-k", WORKER, "--http-protocols", "h2,h1", "--http2-cleartext", "both"]
    server = live_server("gevent", H2_APP, extra_args=h2c)
    run = next(_tags)
    client = H2Client(server.port, tls=False)
    try:
        quiet = client.request("GET", f"/tracked/quiet{run}?sleep=60&ping=none")
        busy = client.request("GET", f"/tracked/busy{run}?sleep=0.01&ping=none")
        client.ack(quiet)
        client.ack(busy)
        client.read_until(
            lambda: b"id: 1\n" in client.body[quiet] and client.body[busy].count(b"\n\n") >= 20
        )
        client.reset(quiet)
        wait_until(lambda: f"quiet{run}" in server.state()["finally_ran"], timeout=5)
        assert f"busy{run}" not in server.state()["finally_ran"]
        assert server.get_json("/seen")[f"/tracked/busy{run}"][0] == "HTTP/2.0"
    finally:
        client.close()


@pytest.fixture(scope="module")
def h1_server() -> Iterator[LiveServer]:
    """sse_sync's worker serving plain HTTP/1.1, where it is gunicorn's gevent worker."""
    server = start_server("gevent", STREAM_APP, extra_args=["-k", WORKER])
    assert f"Using worker: {WORKER}" in server.log
    yield server
    server.stop()


def test_http11_frames_are_byte_exact_with_the_worker(h1_server: LiveServer) -> None:
    """Over HTTP/1.1 the worker streams the frames exactly as encoded, with the stream headers."""
    with StreamClient(h1_server.port, "/frames") as client:
        assert client.response.version == 11
        assert client.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        body = client.read_all()
    assert body == b"".join(encode_item(item) for item in FRAMES)


def test_http11_disconnect_runs_finally_with_the_worker(h1_server: LiveServer) -> None:
    """Over HTTP/1.1 a client that leaves an idle stream ends its generator within seconds."""
    tag = f"h1-{next(_tags)}"
    client = StreamClient(h1_server.port, f"/tracked/{tag}?sleep=30&ping=60")
    client.read_until(lambda b: b"id: 1\n" in b)
    assert tag not in h1_server.state()["finally_ran"]
    client.close()
    wait_until(lambda: tag in h1_server.state()["finally_ran"], timeout=5)


def test_http11_over_tls_streams_pings_intact(h2_server: LiveServer) -> None:
    """HTTP/1.1 over TLS (a client without ALPN h2): an idle stream's pings arrive encrypted
    and framed, not as cleartext bytes cutting into the TLS records."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tag = f"tls-h1-{next(_tags)}"
    conn = http.client.HTTPSConnection("127.0.0.1", h2_server.port, timeout=10, context=context)
    try:
        conn.request("GET", f"/tracked/{tag}?sleep=60&ping=0.1")
        response = conn.getresponse()
        assert response.version == 11
        body = b""
        while body.count(b": ping\n\n") < 3:
            piece = response.read1(65536)
            assert piece, body
            body += piece
        assert body.startswith(b'id: 1\ndata: {"n":1,"user":"anonymous"}\n\n'), body
    finally:
        conn.close()


def test_import_sse_sync_loads_neither_gunicorn_nor_gevent() -> None:
    """``import sse_sync`` loads neither gunicorn, gevent nor h2: only the worker module does."""
    code = "import sys, sse_sync; print(sorted({'gunicorn', 'gevent', 'h2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def nginx_snippet() -> str:
    """The nginx server block of docs/deployment.md's "## HTTP/2" section."""
    section = DEPLOYMENT_MD.read_text().split("\n## HTTP/2\n", 1)[1]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert found, "docs/deployment.md lost its HTTP/2 nginx block"
    return found.group(1)


@pytest.fixture
def nginx_h2(
    certificate: tuple[Path, Path], tmp_path: Path, live_server: Callable[..., LiveServer]
) -> Iterator[tuple[int, LiveServer]]:
    """nginx running the documented block, in front of gunicorn -k gevent: (port, upstream)."""
    upstream = live_server("gevent", H2_APP)
    port = free_port()
    cert, key = certificate
    block = nginx_snippet()
    for documented, here in [
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
        ("/etc/ssl/example.com.pem", str(cert)),
        ("/etc/ssl/example.com.key", str(key)),
        ("http://127.0.0.1:8000", f"http://127.0.0.1:{upstream.port}"),
    ]:
        assert documented in block, f"{documented!r} is no longer in the documented block"
        block = block.replace(documented, here)
    proxy = Nginx(tmp_path, port, block)
    yield port, upstream
    proxy.stop()


def test_ten_event_sources_through_nginx_terminating_h2(
    browser: Any, nginx_h2: tuple[int, LiveServer]
) -> None:
    """Behind nginx (HTTP/2 to the browser, HTTP/1.1 to gunicorn) 10 EventSources all stream."""
    port, upstream = nginx_h2
    page = open_page(browser, f"https://127.0.0.1:{port}")
    try:
        elapsed, tags = ten_streams_over_one_connection(page, upstream.state)
    finally:
        page.context.close()
    arrived = upstream.get_json("/seen")
    assert {arrived[f"/tracked/{tag}"][0] for tag in tags} == {"HTTP/1.1"}, arrived
    print(f"\nnginx, 12 HTTP/2 streams closed: every finally ran after {elapsed:.2f} s")
    assert elapsed < 2.5
