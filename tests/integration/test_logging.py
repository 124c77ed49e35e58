"""sse_sync's log records reach the server's error log, with time and level, and never twice."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from ..conftest import LiveServer, StreamClient, wait_until

pytestmark = pytest.mark.integration

LOGGING_APP = "tests.integration.apps.logging_app:app"
MESSAGE = "The event stream's source raised; ending the stream"


def _provoke_error(server: LiveServer) -> None:
    with StreamClient(server.port, "/error") as client:
        client.read_all()


@pytest.mark.parametrize("kind", ["gevent", "gthread"])
def test_gunicorn_error_log_gets_records(kind: str, live_server: Callable[..., LiveServer]) -> None:
    """Under gunicorn a source's traceback goes through gunicorn's error log, in its format.

    The error log is stderr here (gunicorn's default ``--error-logfile -``): the test reads the
    server's address from it. Python's last-resort handler would print the bare message.
    """
    server = live_server(kind, LOGGING_APP)
    _provoke_error(server)
    wait_until(lambda: "boom in the source" in server.log)
    pattern = rf"^\[\d{{4}}-\d\d-\d\d [\d:]+ [+-]\d{{4}}\] \[\d+\] \[ERROR\] {MESSAGE}$"
    assert re.search(pattern, server.log, re.M) is not None, server.log
    assert server.log.count(MESSAGE) == 1, server.log


def test_werkzeug_server_console_gets_time_and_level(
    live_server: Callable[..., LiveServer],
) -> None:
    """Under Werkzeug's server a source's traceback reaches stderr with time and level."""
    server = live_server("werkzeug", LOGGING_APP)
    _provoke_error(server)
    wait_until(lambda: "boom in the source" in server.log)
    pattern = rf"^\[\d{{4}}-\d\d-\d\d [\d:,]+\] ERROR in sse_sync: {MESSAGE}$"
    assert re.search(pattern, server.log, re.M) is not None, server.log


@pytest.mark.parametrize("kind", ["gevent", "werkzeug"])
def test_configured_logging_gets_each_record_once(
    kind: str, live_server: Callable[..., LiveServer]
) -> None:
    """When the app configured logging, each record reaches its handler once and nowhere else."""
    server = live_server(kind, LOGGING_APP, env={"SSE_SYNC_TEST_LOGGING": "configured"})
    _provoke_error(server)
    wait_until(lambda: "boom in the source" in server.log)
    assert server.log.count(MESSAGE) == 1, server.log
    assert f"CONFIGURED ERROR sse_sync: {MESSAGE}" in server.log
