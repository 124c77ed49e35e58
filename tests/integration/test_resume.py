"""Reconnect and resume through real servers: Last-Event-ID, Redis restarts, expired ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import LiveServer, wait_until
from .fleet import Fleet
from .test_fanout import BROKER_APP, datas, publish

pytestmark = pytest.mark.integration


def resume(server: LiveServer, path: str, last_id: str | None, count: int) -> Any:
    """Connect with ``Last-Event-ID``, read ``count`` events, and return the client."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with Fleet(server.port, path, headers=headers) as fleet:
        fleet.pump(fleet.all_have(count), timeout=20, what=f"{count} events")
        return fleet.clients[0]


@pytest.mark.redis
@pytest.mark.gevent
def test_reconnects_get_exactly_the_missed_events(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """Each reconnect with Last-Event-ID, on any of 3 workers, gets exactly what it missed."""
    server = live_server("gevent", BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis_server.url})
    last_id = None
    received: list[int] = []
    published = 0
    for _ in range(6):
        with Fleet(server.port, "/stream?channel=r", headers=_header(last_id)) as fleet:
            wait_until(lambda: _all_subscribed(server, 1), timeout=20)
            publish(server, "r", list(range(published, published + 3)))  # live now
            published += 3
            # What this connection gets: the missed ones (if any), then the 3 live ones.
            expected = published - len(received)
            fleet.pump(fleet.all_have(expected), timeout=20, what=f"{expected} events")
            client = fleet.clients[0]
            received += datas(client)
            last_id = client.events[-1].last_event_id
        publish(server, "r", list(range(published, published + 4)))  # missed while away
        published += 4
    assert received == list(range(len(received)))
    final = resume(server, "/stream?channel=r", last_id, published - len(received))
    assert received + datas(final) == list(range(published))


def _header(last_id: str | None) -> dict[str, str]:
    return {"Last-Event-ID": last_id} if last_id else {}


def _all_subscribed(server: LiveServer, expected: int, workers: int = 3) -> bool:
    """Whether the workers together have ``expected`` subscribers (polling each of them)."""
    seen: dict[int, int] = {}
    for _ in range(workers * 20):
        state = server.state()
        seen[state["pid"]] = state["subscribers"]
        if len(seen) == workers:
            break
    return sum(seen.values()) == expected


@pytest.mark.redis
def test_resume_on_another_server(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """A client of a gthread server resumes on a gevent server sharing Redis, losing nothing."""
    env = {"SSE_BROKER_URL": redis_server.url}
    first = live_server("gthread", BROKER_APP, env=env)
    second = live_server("gevent", BROKER_APP, env=env)
    with Fleet(first.port, "/stream?channel=move") as fleet:
        wait_until(lambda: first.state()["subscribers"] == 1, timeout=20)
        publish(first, "move", [0, 1, 2])
        fleet.pump(fleet.all_have(3), timeout=20)
        last_id = fleet.clients[0].events[-1].last_event_id
    publish(second, "move", [3, 4])
    publish(first, "move", [5])
    client = resume(second, "/stream?channel=move", last_id, 3)
    assert datas(client) == [3, 4, 5]


@pytest.mark.redis
@pytest.mark.gevent
def test_redis_restart_mid_stream_loses_nothing(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """Streams on 3 workers keep going through a Redis restart; no event goes missing."""
    server = live_server("gevent", BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis_server.url})
    with Fleet(server.port, "/stream?channel=boot", 30) as fleet:
        wait_until(lambda: _all_subscribed(server, 30), timeout=20)
        publish(server, "boot", list(range(5)))
        fleet.pump(fleet.all_have(5), timeout=20, what="events before the restart")
        redis_server.restart()
        publish(server, "boot", list(range(5, 10)))
        fleet.pump(fleet.all_have(10), timeout=30, what="events after the restart")
        for client in fleet.clients:
            assert datas(client) == list(range(10))
            assert not client.closed and not client.ended
        # The readers reconnected and still deliver.
        publish(server, "boot", [10])
        fleet.pump(fleet.all_have(11), timeout=20, what="one more")
    assert any(server.state()["reconnects"] >= 1 for _ in range(20))


@pytest.mark.redis
@pytest.mark.gevent
def test_expired_id_gets_the_reset_event(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """A Last-Event-ID older than the stream's history gets an id-less reset event, then live."""
    env = {"SSE_BROKER_URL": redis_server.url, "SSE_HISTORY": "10"}
    server = live_server("gevent", BROKER_APP, workers=3, env=env)
    old = publish(server, "short", [0])["ids"][0]
    publish(server, "short", list(range(1, 400)))  # MAXLEN ~ 10 trims the start away
    with Fleet(server.port, "/stream?channel=short", headers={"Last-Event-ID": old}) as fleet:
        fleet.pump(fleet.all_have(1), timeout=20, what="the reset event")
        publish(server, "short", ["live"])
        fleet.pump(fleet.all_have(2), timeout=20, what="a live event")
        client = fleet.clients[0]
    reset, live = client.events
    assert reset.type == "reset"
    assert json.loads(reset.data) == {"channel": "short", "reason": "expired", "lastEventId": old}
    assert b"event: reset\ndata: " in client.raw and b"id: " not in client.raw.split(b"\n\n")[0]
    assert reset.last_event_id == ""  # no id came: a browser keeps the one it sent
    assert json.loads(live.data) == "live"


@pytest.mark.gevent
def test_memory_broker_resume_and_channels(live_server: Callable[..., LiveServer]) -> None:
    """On one worker with the MemoryBroker, a multi-channel cursor resumes both channels."""
    server = live_server("gevent", BROKER_APP)
    with Fleet(server.port, "/stream?channel=a&channel=b") as fleet:
        wait_until(lambda: server.state()["subscribers"] == 1, timeout=20)
        publish(server, "a", ["a0"])
        publish(server, "b", ["b0"])
        fleet.pump(fleet.all_have(2), timeout=20)
        cursor = fleet.clients[0].events[-1].last_event_id
    publish(server, "b", ["b1"])
    publish(server, "a", ["a1"])
    client = resume(server, "/stream?channel=b&channel=a", cursor, 2)
    assert datas(client) == ["b1", "a1"]
    assert client.events[-1].last_event_id.count("=") == 2
