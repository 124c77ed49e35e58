"""Reconnect and resume through real servers: Last-Event-ID, Redis restarts, expired ids."""

from __future__ import annotations

import http.client
import json
import threading
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


class _Publisher(threading.Thread):
    """POSTs one event after another (0, 1, 2, ...) until stopped, noting which were stored."""

    def __init__(self, server: LiveServer, channel: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.channel = channel
        self.attempted: list[int] = []
        self.acked: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.attempted.append(n)
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            try:
                body = json.dumps({"items": [n]})
                headers = {"Content-Type": "application/json"}
                conn.request("POST", f"/publish/{self.channel}", body, headers)
                if conn.getresponse().status == 200:  # else Redis was down: a 500
                    self.acked.append(n)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            n += 1
            self.stop.wait(0.005)

    def finish(self) -> int:
        """Stop, and return the next number (for events published afterwards)."""
        self.stop.set()
        self.join(60)
        return self.attempted[-1] + 1


def _kill_redis_mid_stream(
    live_server: Callable[..., LiveServer], redis: Any, channel: str
) -> tuple[list[Any], _Publisher]:
    """200 subscribers on 3 gevent workers; Redis killed (-9) and restarted while events are
    published every few ms; then a last event. Returns the clients and the publisher."""
    server = live_server("gevent", BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis.url})
    fleet = Fleet(server.port, f"/stream?channel={channel}", 200)
    try:
        wait_until(lambda: _all_subscribed(server, 200), timeout=30)
        publisher = _Publisher(server, channel)
        publisher.start()
        wait_until(lambda: len(publisher.acked) >= 30, timeout=30)
        redis.kill()
        redis.start()
        stored = len(publisher.acked)
        wait_until(lambda: len(publisher.acked) >= stored + 30, timeout=30)
        last = publisher.finish()
        if not redis.aof:  # the readers reset their streams once they are back
            fleet.pump(lambda: all(_resets(c) for c in fleet.clients), 30, "a reset each")
        publish(server, channel, [last])
        publisher.attempted.append(last)
        publisher.acked.append(last)
        fleet.pump(_all_have(fleet, last), 30, "the last event")
        assert all(c.status == 200 and not c.closed for c in fleet.clients)
        return fleet.clients, publisher
    finally:
        fleet.close()


def _resets(client: Any) -> list[Any]:
    return [json.loads(e.data) for e in client.events if e.type == "reset"]


def _all_have(fleet: Fleet, data: Any) -> Callable[[], bool]:
    """A condition for ``Fleet.pump``: every client has received an event with ``data``."""
    return lambda: all(
        any(e.type != "reset" and json.loads(e.data) == data for e in client.events)
        for client in fleet.clients
    )


@pytest.mark.redis
@pytest.mark.gevent
def test_redis_killed_without_persistence_resets_live_streams(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """Redis kill -9 without persistence mid-stream: every live stream on 3 workers gets one
    'lost' reset and no event an acknowledged publish stored is skipped without one."""
    clients, publisher = _kill_redis_mid_stream(live_server, redis_server, "boot")
    acked = set(publisher.acked)
    missed = 0  # streams that missed acknowledged events, across their reset
    for client in clients:
        assert [r["reason"] for r in _resets(client)] == ["lost"]
        previous = -1  # every client was subscribed before event 0
        after_reset = False
        for event in client.events:
            if event.type == "reset":
                after_reset = True  # what is missing across a reset is signalled
                continue
            n = json.loads(event.data)
            assert n > previous, (previous, n)
            skipped = acked.intersection(range(previous + 1, n))
            assert after_reset or not skipped, f"silently skipped {sorted(skipped)}"
            missed += after_reset and bool(skipped)
            after_reset = False
            previous = n
    print(f"\n{len(clients)} streams reset; {missed} of them had missed acknowledged events")


@pytest.mark.redis
@pytest.mark.gevent
def test_redis_killed_with_aof_loses_nothing(
    live_server: Callable[..., LiveServer], redis_servers: Callable[..., Any]
) -> None:
    """Redis kill -9 with AOF (fsync always) mid-stream: every stream on 3 workers gets every
    acknowledged event, once, in order, and no reset."""
    clients, publisher = _kill_redis_mid_stream(live_server, redis_servers(aof=True), "aof")
    for client in clients:
        assert _resets(client) == []
        received = datas(client)
        assert received == sorted(set(received))
        assert set(publisher.acked) <= set(received) <= set(publisher.attempted)


@pytest.mark.redis
@pytest.mark.gevent
def test_resume_from_before_a_redis_restart_gets_a_reset(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """An id from before a Redis restart without persistence gets an 'unknown' reset on any
    of 3 workers, even once newer events were published; then live events."""
    server = live_server("gevent", BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis_server.url})
    with Fleet(server.port, "/stream?channel=old", 3) as watchers:  # workers follow "old"
        wait_until(lambda: _all_subscribed(server, 3), timeout=20)
        old_ids = publish(server, "old", [0, 1, 2])["ids"]
        watchers.pump(watchers.all_have(3), timeout=20)
        redis_server.kill()
        redis_server.start()
        watchers.pump(lambda: all(_resets(c) for c in watchers.clients), 30, "a reset each")
        publish(server, "old", [3, 4])
        for round in range(6):
            headers = {"Last-Event-ID": old_ids[round % 3]}
            with Fleet(server.port, "/stream?channel=old", headers=headers) as fleet:
                fleet.pump(fleet.all_have(1), timeout=20, what="the reset event")
                publish(server, "old", [f"live {round}"])
                fleet.pump(_all_have(fleet, f"live {round}"), 20, "a live event")
            reset, *since, live = fleet.clients[0].events
            assert reset.type == "reset", reset
            assert json.loads(reset.data) == {
                "channel": "old",
                "reason": "unknown",
                "lastEventId": old_ids[round % 3],
            }
            # Live starts where this worker is: it may not have read 3 and 4 yet.
            assert [json.loads(e.data) for e in since] in ([], [4], [3, 4])
            assert json.loads(live.data) == f"live {round}"


@pytest.mark.redis
@pytest.mark.gevent
def test_hostile_ids_get_a_reset_and_no_traceback(
    live_server: Callable[..., LiveServer], redis_server: Any
) -> None:
    """Ids Redis would reject, garbage and foreign cursors get an 'unknown' reset, then live
    events, on 3 workers, reconnect after reconnect, with no traceback in the log."""
    server = live_server("gevent", BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis_server.url})
    publish(server, "h", [0])
    sent = ["0-99999999999999999999", "99999999999999999999-0", "abc", "h=1-0,h=2-0", "x=1-0"]
    for round, given in enumerate(sent * 2):
        with Fleet(server.port, "/stream?channel=h", headers={"Last-Event-ID": given}) as fleet:
            fleet.pump(fleet.all_have(1), timeout=20, what="the reset event")
            publish(server, "h", [round])
            fleet.pump(fleet.all_have(2), timeout=20, what="a live event")
            reset, live = fleet.clients[0].events
        assert fleet.clients[0].status == 200
        assert json.loads(reset.data) == {"channel": "h", "reason": "unknown", "lastEventId": given}
        assert json.loads(live.data) == round
    assert "Traceback" not in server.log, server.log


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
