"""Shared fixtures: real servers in subprocesses and a raw streaming HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "integration" / "apps"

STREAM_APP = "tests.integration.apps.stream_app:app"

#: Server kinds the integration tests run under, and the command that starts each on port 0.
SERVERS: dict[str, list[str]] = {
    "gevent": ["-m", "gunicorn", "-k", "gevent", "--worker-connections", "2000"],
    # sse_sync's gevent worker: publishers write to waiting subscribers' sockets themselves.
    "sse_sync": [
        "-m",
        "gunicorn",
        "-k",
        "sse_sync.gunicorn.GeventWorker",
        "--worker-connections",
        "2000",
    ],
    "gthread": ["-m", "gunicorn", "-k", "gthread", "--threads", "50"],
    "sync": ["-m", "gunicorn", "-k", "sync"],
    "werkzeug": [str(APPS / "serve_werkzeug.py")],
    "pywsgi": [str(APPS / "serve_pywsgi.py")],
}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout} s: {predicate!r} (last: {result!r})"
            raise AssertionError(msg)
        time.sleep(interval)


@dataclass
class LiveServer:
    """A server process serving one app on 127.0.0.1, with its stderr collected."""

    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get_json(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def state(self) -> Any:
        return self.get_json("/state")

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.pump is not None:
            self.pump.join(timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


def start_server(
    kind: str,
    app: str,
    *,
    workers: int = 1,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    ready_path: str = "/state",
) -> LiveServer:
    """Start ``app`` (``module:attr`` importable from the repository root) under ``kind``.

    Returns once the app answers ``ready_path``.
    """
    args = [sys.executable, *SERVERS[kind]]
    gunicorn = SERVERS[kind][:2] == ["-m", "gunicorn"]
    if gunicorn:
        args += ["--bind", "127.0.0.1:0", "--workers", str(workers), "--graceful-timeout", "5"]
        args += ["--timeout", "120"]
    args += [*(extra_args or []), app]
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "SSE_SYNC_TEST_PARENT": str(os.getpid()),
        "SSE_SYNC_TEST_KIND": "gunicorn" if gunicorn else kind,
        **(env or {}),
    }
    process = subprocess.Popen(
        args, cwd=ROOT, env=full_env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    lines: list[str] = []
    ports: queue.Queue[int] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if found:
                ports.put(int(found.group(1)))

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    try:
        port = ports.get(timeout=timeout)
    except queue.Empty:
        LiveServer(process, 0, lines, pumping).stop()
        raise AssertionError(f"{kind} server did not start:\n{''.join(lines)}") from None
    server = LiveServer(process, port, lines, pumping)
    # gunicorn prints the address before its workers have imported the app.
    wait_until(lambda: _responds(server, ready_path), timeout=timeout)
    return server


def _responds(server: LiveServer, path: str) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited:\n{server.log}")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory of :class:`LiveServer`; every server it started is stopped afterwards."""
    started: list[LiveServer] = []

    def factory(kind: str, app: str = STREAM_APP, **kwargs: Any) -> LiveServer:
        server = start_server(kind, app, **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


class StreamClient:
    """A streaming HTTP/1.1 client over one socket (http.client), with a timeout on every read."""

    def __init__(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        self.buffer = b""

    def read_some(self) -> bytes:
        """Read what arrived (at least one byte), or b"" at the end of the body."""
        chunk = self.response.read1(65536)
        self.buffer += chunk
        return chunk

    def read_until(self, predicate: Callable[[bytes], bool], timeout: float = 10.0) -> bytes:
        """Read until ``predicate(everything read so far)`` holds; fail at the end or timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self.buffer):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {self.buffer!r}")
            if not self.read_some():
                raise AssertionError(f"stream ended; got {self.buffer!r}")
        return self.buffer

    def read_all(self) -> bytes:
        """Read the body to its end."""
        while self.read_some():
            pass
        return self.buffer

    def close(self) -> None:
        self.response.close()
        self.conn.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """A factory of private, started ``redis-server``s on free ports (``RedisServer(...)``
    options such as ``aof=True``); each is stopped afterwards.

    Skips when there is no ``redis-server`` binary, unless ``SSE_SYNC_REQUIRE_REDIS=1``
    (``.ci/run``): then it fails.
    """
    from tests.redis_server import REQUIRE_ENV, RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        reason = "redis-server not found on PATH: install Redis to run the RedisBroker tests"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)
    started: list[RedisServer] = []

    def factory(**options: Any) -> RedisServer:
        server = RedisServer(binary, tmp_path_factory.mktemp("redis"), **options)
        started.append(server)
        server.start()
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(redis_servers: Callable[..., Any]) -> Any:
    """A private ``redis-server`` on a free port (a ``tests.redis_server.RedisServer``)."""
    return redis_servers()


# -- headless Chromium (Debian's), driven by playwright ---------------------------------------

CHROMIUM = "/usr/bin/chromium"
#: How the tests launch Chromium: headless, quiet, no sandbox (tests run as root in CI).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The HTTP/2 tests serve a self-signed certificate: without this, Chromium's first
    # handshake fails before the page's context (ignore_https_errors) takes over.
    "--ignore-certificate-errors",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


def chromium_or_skip() -> str:
    """The path of Debian's Chromium, or skip (fail with SSE_SYNC_REQUIRE_BROWSER=1)."""
    if Path(CHROMIUM).exists() and shutil.which("chromium"):
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            pass
        else:
            return CHROMIUM
    reason = "needs Debian's chromium at /usr/bin/chromium and the playwright package"
    if os.environ.get("SSE_SYNC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SSE_SYNC_REQUIRE_BROWSER=1 but the browser is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by playwright."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
