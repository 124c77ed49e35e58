"""Producers stop after a disconnect on real threaded servers, even a source that never yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ..conftest import STREAM_APP, LiveServer, StreamClient, start_server, wait_until

pytestmark = pytest.mark.integration

CYCLES = 100


@pytest.fixture(params=["gthread", "werkzeug"], scope="module")
def threaded_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """One threaded server of each kind, shared by the tests of this module."""
    live = start_server(request.param, STREAM_APP)
    yield live
    live.stop()


def test_disconnects_of_a_source_that_never_yields_leave_no_thread(
    threaded_server: LiveServer,
) -> None:
    """100 clients leaving a time.sleep() poll loop: every finally runs, threads go back."""
    server = threaded_server
    before = server.state()
    tag = f"poll-{server.port}"
    for _ in range(CYCLES):
        with StreamClient(server.port, f"/poll/{tag}") as client:
            client.read_until(lambda b: b'data: "polling"\n\n' in b)
    stopped = f"{tag}:StreamClosed"
    wait_until(lambda: server.state()["finally_ran"].count(stopped) == CYCLES, timeout=60)
    assert not [t for t in server.state()["finally_ran"] if t.startswith(tag) and t != stopped]

    def back_to_baseline() -> bool:
        state = server.state()
        return (
            state["producers"] <= before["producers"]
            and state["sse_sync_threads"] <= before["sse_sync_threads"]
            and state["threads_off_pool"] <= before["threads_off_pool"]
        )

    wait_until(back_to_baseline, timeout=15)
    assert "Traceback" not in server.log


@pytest.mark.parametrize("look", ["wait", "check"])
def test_a_source_that_looks_stops_by_itself(threaded_server: LiveServer, look: str) -> None:
    """A source waiting in wait_closed() or polling stream_closed() ends on disconnect, unforced."""
    server = threaded_server
    tag = f"look-{look}-{server.port}"
    with StreamClient(server.port, f"/cooperative/{tag}?look={look}") as client:
        client.read_until(lambda b: b"data: false\n\n" in b)
    wait_until(lambda: f"{tag}:saw it closed" in server.state()["finally_ran"], timeout=10)


@pytest.mark.gevent
def test_wait_closed_on_gevent_native_thread_runner(
    live_server: Callable[..., LiveServer],
) -> None:
    """Under gevent with runner='thread', wait_closed() on a pool thread returns on disconnect."""
    server = live_server("gevent")
    with StreamClient(server.port, "/cooperative/native?runner=thread") as client:
        client.read_until(lambda b: b"data: false\n\n" in b)
    wait_until(lambda: "native:saw it closed" in server.state()["finally_ran"], timeout=10)
