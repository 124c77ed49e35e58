"""``python -m sse_sync check``: the judgement on exact timelines, and real servers behind nginx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from sse_sync._check import (
    Finding,
    Observation,
    Report,
    judge,
    judge_resume,
    split_frames,
)

from .conftest import ROOT, LiveServer, start_server
from .nginx import Nginx
from .redis_server import free_port

CHECK_APP = "tests.integration.apps.check_app:app"
URL = "http://example.test/stream"

EVENT = b'event: tick\nid: 1\ndata: {"n":1}\n\n'
PING = b": ping\n\n"


def healthy(**changes: Any) -> Observation:
    """A healthy stream: the right headers, then ``chunks`` (default: events 0.5 s apart)."""
    obs = Observation(
        status_code=200,
        reason="OK",
        http_version="HTTP/1.1",
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
        },
        headers_at=0.01,
        chunks=[(0.01 + 0.5 * i, EVENT.replace(b"1", str(i + 1).encode())) for i in range(6)],
        ended_at=3.0,
    )
    for name, value in changes.items():
        setattr(obs, name, value)
    return obs


def findings_of(obs: Observation, idle_timeout: float = 2.0) -> dict[str, Finding]:
    findings, _ = judge(obs, URL, idle_timeout=idle_timeout)
    return {f.check: f for f in findings}


def statuses(obs: Observation, idle_timeout: float = 2.0) -> dict[str, str]:
    return {name: f.status for name, f in findings_of(obs, idle_timeout).items()}


# -- frames ---------------------------------------------------------------------------------


def test_frames_are_timed_from_first_byte_to_blank_line() -> None:
    """A frame split over reads starts at its first read and completes at its blank line."""
    frames = split_frames([(0.1, b"event: tick\nid: 7\nda"), (2.5, b"ta: x\n\n: ping\n\n")])
    assert [(f.kind, f.started, f.completed, f.read) for f in frames] == [
        ("event", 0.1, 2.5, 1),
        ("comment", 2.5, 2.5, 1),
    ]
    assert frames[0].event is not None and frames[0].event.data == "x"
    assert frames[1].last_event_id == "7"


def test_frames_split_on_crlf_across_reads() -> None:
    """A CRLF cut between two reads is one line break, not a blank line."""
    frames = split_frames([(0.0, b"data: a\r"), (0.1, b"\ndata: b\r\n\r"), (0.2, b"\nid: 3\r\r")])
    assert [(f.kind, f.completed) for f in frames] == [("event", 0.1), ("fields", 0.2)]
    assert frames[0].event is not None and frames[0].event.data == "a\nb"
    assert frames[1].last_event_id == "3"


# -- headers --------------------------------------------------------------------------------


def test_healthy_stream_has_no_problem() -> None:
    """Right headers and whole frames, never quiet for long: every check is ok."""
    assert set(statuses(healthy()).values()) == {"ok"}


@pytest.mark.parametrize(
    ("headers", "check", "words"),
    [
        ({"content-encoding": "gzip"}, "compression", "gzip off"),
        ({"transfer-encoding": "gzip, chunked"}, "compression", "gzip off"),
        ({"content-length": "5000"}, "content-length", "buffering off"),
        ({"cache-control": "max-age=60"}, "cache", "Cache-Control: no-cache"),
        ({"cache-control": None}, "cache", "Cache-Control: no-cache"),
        ({"age": "12"}, "cache", "Cache-Control: no-cache"),
    ],
)
def test_transforming_headers_fail(headers: dict[str, str | None], check: str, words: str) -> None:
    """Compression, a length, caching headers: each fails its check, with a fix naming the cure."""
    obs = healthy()
    for name, value in headers.items():
        if value is None:
            del obs.headers[name]
        else:
            obs.headers[name] = value
    finding = findings_of(obs)[check]
    assert finding.status == "fail"
    assert words in finding.fix


@pytest.mark.parametrize(
    ("status", "words"), [(401, "Authorization"), (404, "path"), (500, "answer 200")]
)
def test_wrong_status_fails_and_stops(status: int, words: str) -> None:
    """A status other than 200 fails, says what to do, and nothing else is judged."""
    findings, frames = judge(healthy(status_code=status, reason="X"), URL, idle_timeout=2)
    assert [(f.check, f.status) for f in findings] == [("status", "fail")]
    assert words in findings[0].fix
    assert frames is None


def test_wrong_content_type_fails() -> None:
    """An HTML answer is not an event stream: content-type fails and the body is not judged."""
    obs = healthy(headers={"content-type": "text/html", "server": "nginx/1.22.1"})
    findings, frames = judge(obs, URL, idle_timeout=2)
    assert [(f.check, f.status) for f in findings] == [("status", "ok"), ("content-type", "fail")]
    assert "'text/html'" in findings[1].summary and "Server: nginx/1.22.1" in findings[1].summary
    assert frames is None


def test_request_sent_without_headers_fails_status() -> None:
    """A request sent and never answered fails the status, naming both likely causes."""
    obs = Observation(sent_at=0.01, ended_at=6.0)
    findings, frames = judge(obs, URL, idle_timeout=2)
    assert [(f.check, f.status) for f in findings] == [("status", "fail")]
    assert "sent at 0.01 s, then no response headers came within 6.0 s" in findings[0].summary
    assert "first frame" in findings[0].fix and "buffers or compresses" in findings[0].fix
    assert frames is None


def test_no_response_fails_connect() -> None:
    """A connection error is the one finding, with what to look at."""
    findings, _ = judge(Observation(error="ConnectError: refused"), URL, idle_timeout=2)
    assert [(f.check, f.status) for f in findings] == [("connect", "fail")]
    assert "refused" in findings[0].summary


@pytest.mark.parametrize(
    ("version", "status"), [("HTTP/1.0", "fail"), ("HTTP/1.1", "ok"), ("HTTP/2", "ok")]
)
def test_http_version(version: str, status: str) -> None:
    """HTTP/1.0 is a problem; HTTP/1.1 and HTTP/2 are reported as negotiated."""
    finding = findings_of(healthy(http_version=version))["http-version"]
    assert finding.status == status
    assert finding.summary.startswith(version)


# -- buffering and pings --------------------------------------------------------------------


def test_frame_torn_for_a_second_is_buffering() -> None:
    """Part of a frame arriving long before its end means a layer forwards by size."""
    obs = healthy(chunks=[(2.0, EVENT + EVENT[:10]), (4.0, EVENT[10:] + EVENT)], ended_at=5.0)
    finding = findings_of(obs, idle_timeout=10)["buffering"]
    assert finding.status == "fail"
    assert "held up to 2.0 s" in finding.summary
    assert "proxy_buffering off" in finding.fix


def test_frame_split_by_the_network_is_not_buffering() -> None:
    """A frame whose end follows within a round trip was not held."""
    obs = healthy(chunks=[(0.5, EVENT[:10]), (0.6, EVENT[10:])], ended_at=1.0)
    assert findings_of(obs, idle_timeout=10)["buffering"].status == "ok"


def test_two_pings_in_one_read_is_buffering() -> None:
    """Keep-alives are sent after quiet periods: two in one read were held."""
    obs = healthy(chunks=[(0.0, EVENT), (3.0, PING + PING)], ended_at=4.0)
    finding = findings_of(obs, idle_timeout=10)["buffering"]
    assert finding.status == "fail"
    assert "2 keep-alive comments arrived in one read" in finding.summary


def test_bursts_after_silences_warn() -> None:
    """Batches after silences may be the server's: a warning, not a problem."""
    obs = healthy(chunks=[(1.5, EVENT * 4), (3.0, EVENT * 5)], ended_at=3.5)
    finding = findings_of(obs, idle_timeout=10)["buffering"]
    assert finding.status == "warn"
    assert "2 bursts" in finding.summary and "5 frames at 3.00 s" in finding.summary


def test_silence_longer_than_idle_timeout_fails_pings() -> None:
    """No byte for longer than the idle timeout fails, measured up to the end of listening."""
    obs = healthy(chunks=[(0.01, EVENT)], ended_at=3.0)
    finding = findings_of(obs, idle_timeout=2)["pings"]
    assert finding.status == "fail"
    assert "no byte for 3.0 s" in finding.summary
    assert "ping=" in finding.fix


def test_pings_within_idle_timeout_are_ok() -> None:
    """Regular keep-alives under the idle timeout pass, with their interval."""
    chunks = [(0.01, EVENT), *((0.01 + i, PING) for i in range(1, 5))]
    finding = findings_of(healthy(chunks=chunks, ended_at=4.5), idle_timeout=2)["pings"]
    assert finding.status == "ok"
    assert "4 keep-alive comment(s), every 1.0 s" in finding.summary


def test_pings_unknown_when_listening_shorter_than_idle_timeout() -> None:
    """Listening less than the idle timeout with no keep-alive seen proves nothing: skipped."""
    assert statuses(healthy(), idle_timeout=10)["pings"] == "skip"


def test_stream_ended_by_server_warns_and_broken_fails() -> None:
    """A stream the server ends is a warning; a connection that breaks is a problem."""
    assert statuses(healthy(end="closed"))["stream"] == "warn"
    broken = findings_of(healthy(end="error", end_error="RemoteProtocolError"))["stream"]
    assert broken.status == "fail" and "RemoteProtocolError" in broken.summary


# -- resume ---------------------------------------------------------------------------------


def resumed(*chunks: bytes) -> Observation:
    return healthy(chunks=[(0.1 * i, chunk) for i, chunk in enumerate(chunks)], end="enough")


@pytest.mark.parametrize(
    ("chunk", "status"),
    [
        (b"id: 1\ndata: a\n\n", "fail"),  # replayed from the start
        (b"id: 5\ndata: a\n\n", "fail"),  # the last id again
        (b"id: 3\ndata: a\n\n", "fail"),  # a decimal id before the last one
        (b"id: 6\ndata: a\n\n", "ok"),
        (b"event: reset\ndata: {}\n\n", "ok"),
        (b": ping\n\n", "ok"),  # nothing repeated while waiting
    ],
)
def test_resume_judgement(chunk: bytes, status: str) -> None:
    """After Last-Event-ID 5, an id at or before it fails; a later id or a reset is ok."""
    finding = judge_resume("5", {"1", "4", "5"}, resumed(b"data: no id\n\n", chunk))
    assert finding.status == status, finding.summary


def test_resume_skipped_without_ids_or_when_disabled() -> None:
    """No id to resume from, or --no-resume: skipped, not counted as a problem."""
    assert judge_resume("", set(), None).status == "skip"
    assert judge_resume("5", {"5"}, None).summary == "not checked (--no-resume)"


def test_resume_refused_fails() -> None:
    """A server that errors on a Last-Event-ID it sent itself fails the resume."""
    finding = judge_resume("5", {"5"}, healthy(status_code=400, reason="Bad Request"))
    assert finding.status == "fail" and "400 Bad Request" in finding.summary


def test_report_text_and_json() -> None:
    """The text names each problem with its fix; the JSON has ok and every finding."""
    findings, _ = judge(
        healthy(headers={**healthy().headers, "content-encoding": "gzip"}), URL, idle_timeout=2
    )
    report = Report(URL, 3.0, 2.0, findings)
    text = report.to_text()
    assert "  FAIL  compression" in text and "fix: do not compress" in text
    assert text.endswith("1 problem(s): compression")
    document = json.loads(report.to_json())
    assert document["ok"] is False
    assert {f["check"]: f["status"] for f in document["findings"]}["compression"] == "fail"


# -- the command line -----------------------------------------------------------------------


def run_cli(
    *args: str, code: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m sse_sync ARGS`` (or ``code`` run before the CLI's main)."""
    command = [sys.executable, "-m", "sse_sync", *args]
    if code:
        command = [
            sys.executable,
            "-c",
            f"{code}\nfrom sse_sync.__main__ import main\nraise SystemExit(main({list(args)!r}))",
        ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=full_env)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--header", "no colon"], "expected a header as 'Name: value'"),
        (["--duration", "-1"], "expected seconds > 0, got '-1'"),
        (["--idle-timeout", "soon"], "expected seconds > 0, got 'soon'"),
    ],
)
def test_cli_rejects_bad_options(args: list[str], words: str) -> None:
    """Bad options exit with 2 and say what was expected."""
    result = run_cli("check", URL, *args)
    assert result.returncode == 2
    assert words in result.stderr


def test_cli_without_httpx_names_the_extra() -> None:
    """Without httpx the check says which extra to install."""
    result = run_cli("check", URL, code="import sys; sys.modules['httpx'] = None")
    assert result.returncode == 2
    assert "pip install 'sse_sync[client]'" in result.stderr


def test_cli_connection_refused() -> None:
    """Nothing listening: one connect finding, exit code 1."""
    port = free_port()
    result = run_cli("check", f"http://127.0.0.1:{port}/events", "--json", "--duration", "2")
    assert result.returncode == 1
    findings = json.loads(result.stdout)["findings"]
    assert [(f["check"], f["status"]) for f in findings] == [("connect", "fail")]


# -- real servers, and nginx in front -------------------------------------------------------


@pytest.fixture(scope="module")
def app_server() -> Iterator[LiveServer]:
    """The check app under gunicorn's gevent worker, shared by the tests of this module."""
    live = start_server("gevent", CHECK_APP)
    yield live
    live.stop()


class Proxy(Nginx):
    """nginx proxying ``/`` to the check app on ``upstream``, with ``location``'s directives."""

    def __init__(self, directory: Path, upstream: int, location: str, tls: bool = False) -> None:
        port = free_port()
        listen = f"127.0.0.1:{port}"
        self.scheme = "http"
        self.ca: Path | None = None
        if tls:
            # A certificate for 127.0.0.1 from a throwaway CA, and HTTP/2 offered over ALPN.
            ca = trustme.CA()
            self.ca = directory / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca))
            cert = ca.issue_cert("127.0.0.1")
            cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "cert.pem"))
            listen += f" ssl http2; ssl_certificate {directory / 'cert.pem'}"
            listen += f"; ssl_certificate_key {directory / 'cert.pem'}"
            self.scheme = "https"
        server = textwrap.dedent(
            f"""\
            server {{
                listen {listen};
                location / {{
                    proxy_pass http://127.0.0.1:{upstream};
                    {location}
                }}
            }}
            """
        )
        super().__init__(directory, port, server)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


@pytest.fixture
def nginx(tmp_path: Path, app_server: LiveServer) -> Iterator[Callable[..., Proxy]]:
    """A factory of nginx proxies to the check app, each with its own location config."""
    started: list[Proxy] = []

    def factory(location: str, tls: bool = False) -> Proxy:
        directory = tmp_path / f"nginx{len(started)}"
        directory.mkdir()
        proxy = Proxy(directory, app_server.port, location, tls)
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


def recommended(**replace: str) -> str:
    """The directives of the stream's location in docs/nginx.conf (not its proxy_pass).

    :param replace: directives to replace, e.g. ``gzip="gzip on;"`` for ``gzip off;``.
    """
    text = (ROOT / "docs" / "nginx.conf").read_text()
    block = text.split("location /stream {", 1)[1].split("\n    }", 1)[0]
    lines = [line for line in block.splitlines() if "proxy_pass " not in line]
    for name, directive in replace.items():
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name} "))
        lines[index] = directive
    return "\n".join(lines)


def check(
    url: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Finding]]:
    """Run ``python -m sse_sync check URL --json ARGS``; return its exit code and findings."""
    result = run_cli("check", url, "--json", *args, env=env)
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is (result.returncode == 0)
    return result.returncode, {f["check"]: Finding(**f) for f in document["findings"]}


def summary(findings: dict[str, Finding]) -> dict[str, str]:
    return {name: f.status for name, f in findings.items()}


@pytest.mark.integration
@pytest.mark.parametrize(
    "kind", [pytest.param("gevent", marks=pytest.mark.gevent), "gthread", "werkzeug"]
)
def test_healthy_server_passes(live_server: Callable[..., LiveServer], kind: str) -> None:
    """A healthy sse_sync stream: every check ok, the resume goes on after the last id, exit 0."""
    server = live_server(kind, CHECK_APP)
    code, findings = check(
        f"{server.url}/events?count=3&pace=0.2&ping=0.5", "--duration", "2", "--idle-timeout", "1"
    )
    assert code == 0, findings
    assert set(summary(findings).values()) == {"ok"}, findings
    assert findings["http-version"].summary.startswith("HTTP/1.1")
    assert findings["stream"].summary.startswith("3 event(s) and ")
    assert "; 0 keep-alive" not in findings["pings"].summary  # pings came once it was idle
    assert "the stream went on at id '4'" in findings["resume"].summary


@pytest.mark.integration
@pytest.mark.gevent
def test_recommended_nginx_config_passes(nginx: Callable[..., Proxy]) -> None:
    """Behind nginx configured as docs/nginx.conf says, the stream passes every check."""
    proxy = nginx(recommended())
    code, findings = check(
        f"{proxy.url}/events?pace=0.2&ping=0.5", "--duration", "2", "--idle-timeout", "1"
    )
    assert code == 0, findings
    assert set(summary(findings).values()) == {"ok"}, findings


@pytest.mark.integration
@pytest.mark.gevent
def test_http2_is_reported_when_negotiated(nginx: Callable[..., Proxy]) -> None:
    """Over TLS with h2 installed, HTTP/2 is offered and reported when nginx speaks it."""
    proxy = nginx(recommended(), tls=True)
    code, findings = check(
        f"{proxy.url}/events?pace=0.2&ping=0.5",
        "--duration",
        "2",
        "--idle-timeout",
        "1",
        env={"SSL_CERT_FILE": str(proxy.ca)},  # httpx trusts this CA
    )
    assert code == 0, findings
    assert set(summary(findings).values()) == {"ok"}, findings
    assert findings["http-version"].summary.startswith("HTTP/2:")


@pytest.mark.integration
@pytest.mark.gevent
def test_nginx_with_buffering_forced_on_is_reported(nginx: Callable[..., Proxy]) -> None:
    """nginx buffering an HTTP/1.0 upstream (4 KiB at a time) fails the buffering check."""
    proxy = nginx("proxy_buffering on;\nproxy_ignore_headers X-Accel-Buffering;")
    # ~2 KiB/s of events: nginx forwards its 4 KiB buffer every ~2 s, cutting frames in two.
    # 8 s leave room for two pieces (one torn frame between them) at half that rate too.
    code, findings = check(
        f"{proxy.url}/events?pace=0.05&pad=60", "--duration", "8", "--idle-timeout", "6"
    )
    assert code == 1
    buffering = findings["buffering"]
    assert buffering.status == "fail", findings
    assert "arrived in pieces" in buffering.summary
    assert "Server: nginx" in buffering.summary
    assert "proxy_buffering off" in buffering.fix


@pytest.mark.integration
@pytest.mark.gevent
def test_nginx_gzip_is_reported(nginx: Callable[..., Proxy]) -> None:
    """nginx compressing text/event-stream fails the compression check; events still arrive."""
    # nginx's gzip leaves alone a response with a Content-Encoding: drop the app's first.
    proxy = nginx(
        recommended(
            gzip="gzip on; gzip_types text/event-stream; proxy_hide_header Content-Encoding;"
        )
    )
    code, findings = check(
        f"{proxy.url}/events?pace=0.2&ping=0.5", "--duration", "2", "--idle-timeout", "1"
    )
    assert code == 1
    assert findings["compression"].status == "fail"
    assert "Content-Encoding: gzip" in findings["compression"].summary
    assert findings["stream"].status == "ok"
    assert [name for name, f in findings.items() if f.status == "fail"] == ["compression"]


@pytest.mark.integration
@pytest.mark.gevent
def test_nginx_buffering_and_gzip_hold_the_headers(nginx: Callable[..., Proxy]) -> None:
    """nginx buffering and compressing holds even the headers: the status check says so."""
    proxy = nginx(
        "proxy_buffering on;\nproxy_ignore_headers X-Accel-Buffering;\n"
        "gzip on; gzip_types text/event-stream; proxy_hide_header Content-Encoding;"
    )
    code, findings = check(f"{proxy.url}/events?pace=0.2", "--duration", "1.5")
    assert code == 1
    assert summary(findings) == {"status": "fail"}
    assert "no response headers came within 1.5 s" in findings["status"].summary


@pytest.mark.integration
@pytest.mark.gevent
@pytest.mark.parametrize(
    ("query", "duration", "failing", "words"),
    [
        # A stream that goes quiet with ping=None, past the idle timeout (1.5 s).
        ("count=2&ping=none", "2.5", "pings", "longer than the idle timeout of 1.5 s"),
        # A server that replays from the start when a client reconnects.
        ("pace=0.1&resume=ignore", "1", "resume", "the first event was id '1'"),
    ],
)
def test_server_faults_are_reported(
    app_server: LiveServer, query: str, duration: str, failing: str, words: str
) -> None:
    """No pings, or Last-Event-ID ignored: that one check fails, saying what it saw."""
    code, findings = check(
        f"{app_server.url}/events?{query}", "--duration", duration, "--idle-timeout", "1.5"
    )
    assert code == 1
    assert [name for name, f in findings.items() if f.status == "fail"] == [failing]
    assert words in findings[failing].summary


@pytest.mark.integration
@pytest.mark.gevent
def test_no_resume_and_headers(app_server: LiveServer) -> None:
    """--no-resume skips the reconnection; --header reaches the server."""
    code, findings = check(
        f"{app_server.url}/events?pace=0.1",
        "--duration",
        "1",
        "--idle-timeout",
        "1",
        "--no-resume",
        "--header",
        "Last-Event-ID: 41",
    )
    assert code == 0
    assert findings["resume"].summary == "not checked (--no-resume)"
    assert "first event at" in findings["stream"].summary
    # The header was sent: the stream resumed after 41 (events 42, 43, ...).
    result = run_cli(
        "check",
        f"{app_server.url}/events?pace=0.1&count=1",
        "--duration",
        "1",
        "--idle-timeout",
        "1",
        "--header",
        "Last-Event-ID: 41",
    )
    assert "Last-Event-ID: 42" in result.stdout


@pytest.mark.integration
@pytest.mark.gevent
def test_not_a_stream_is_reported(app_server: LiveServer) -> None:
    """An HTML page and a missing path fail the content type and the status, in plain words."""
    code, findings = check(f"{app_server.url}/page", "--duration", "1")
    assert code == 1
    assert summary(findings) == {"status": "ok", "content-type": "fail"}
    code, findings = check(f"{app_server.url}/missing", "--duration", "1")
    assert code == 1
    assert summary(findings) == {"status": "fail"}
    assert findings["status"].summary.startswith("expected status 200, got 404")
