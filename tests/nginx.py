"""A private nginx for the tests: one process in the foreground, everything in one folder."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .conftest import wait_until

_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test run that started it dies (Linux)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Nginx:
    """nginx serving ``server_block`` (one ``server { ... }``, listening on ``port``).

    Its config, pid, error log and temp files live in ``directory``; it never outlives the
    test run, even one that is killed. Fails the test when nginx is missing or exits.
    """

    def __init__(self, directory: Path, port: int, server_block: str) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx not found: install it (apt-get install nginx; .ci/run does)")
        self.port = port
        self.error_log = directory / "error.log"
        temp = "".join(f"    {kind}_temp_path {directory / kind};\n" for kind in _TEMP_KINDS)
        config = directory / "nginx.conf"
        config.write_text(
            f"daemon off;\nmaster_process off;\nworker_processes 1;\n"
            f"pid {directory / 'nginx.pid'};\nerror_log {self.error_log} info;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n    access_log off;\n{temp}{server_block}\n}}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(config), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            wait_until(self._ready, timeout=10)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            log = self.error_log.read_text() if self.error_log.exists() else ""
            pytest.fail(f"nginx exited with {self.process.returncode}:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
