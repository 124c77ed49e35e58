"""A private ``redis-server`` for the tests: a free port, a temp dir, persistence on demand."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Set to 1 (as ``.ci/run`` does) to make a missing ``redis-server`` fail the tests.
REQUIRE_ENV = "SSE_SYNC_REQUIRE_REDIS"


def find_redis_server() -> str | None:
    """The ``redis-server`` binary on PATH (or in /usr/bin, /usr/local/bin), if any."""
    return shutil.which("redis-server") or next(
        (
            p
            for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
            if os.access(p, os.X_OK)
        ),
        None,
    )


# Runs the server with PR_SET_PDEATHSIG (Linux): it gets SIGTERM when the test process dies,
# however it dies. The setting survives exec.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except OSError:\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server --save ''`` on a free port; restartable on that port.

    :param aof: ``--appendonly yes --appendfsync always`` (every acknowledged write survives
        a kill) instead of no persistence at all.
    :param args: more command-line options, such as ``("--rename-command", "INFO", "")``.
    """

    def __init__(
        self, binary: str, directory: Path, *, aof: bool = False, args: tuple[str, ...] = ()
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.aof = aof
        self.args = args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        assert self.process is None or self.process.poll() is not None
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LAUNCHER,
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.aof else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.directory / "redis.log").read_text(errors="replace")
                self.stop()
                raise AssertionError(f"redis-server did not start on {self.port}:\n{text}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (without ``aof`` its data is gone)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server would not see the SIGTERM
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self, timeout: float = 10.0) -> None:
        """Kill the server with SIGKILL (``kill -9``): no shutdown, no final save."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout)

    def pause(self) -> None:
        """Stop the server with SIGSTOP: connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused server (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
