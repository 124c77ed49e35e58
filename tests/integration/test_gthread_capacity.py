"""A gunicorn gthread worker's threads bound its streams: sse_sync warns before they run out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..conftest import LiveServer, StreamClient, wait_until

pytestmark = pytest.mark.integration

WARNING = "event streams are open on this gunicorn gthread worker"


def _open_streams(server: LiveServer, tags: list[str]) -> list[StreamClient]:
    clients = []
    for tag in tags:
        client = StreamClient(server.port, f"/tracked/{tag}?sleep=0.2&ping=15")
        client.read_until(lambda b: b"id: 1\n" in b)
        clients.append(client)
    return clients


def test_gthread_warns_once_when_streams_near_its_threads(
    live_server: Callable[..., LiveServer],
) -> None:
    """With --threads 4, the third open stream logs one warning naming the fix, never again."""
    server = live_server("gthread", extra_args=["--threads", "4"])
    first = _open_streams(server, ["a", "b", "c"])
    wait_until(lambda: WARNING in server.log)
    assert f"3 {WARNING}, which has 4 threads (--threads)" in server.log
    assert "--threads" in server.log and "gunicorn -k gevent" in server.log
    for client in first:
        client.close()
    wait_until(lambda: len(server.state()["finally_ran"]) == 3)
    second = _open_streams(server, ["d", "e", "f"])
    # Logged after the streams opened: once it is in, a second warning would be too.
    with StreamClient(server.port, "/error") as client:
        client.read_all()
    wait_until(lambda: "boom in the source" in server.log)
    for client in second:
        client.close()
    assert server.log.count(WARNING) == 1
