"""Fan-out through real gunicorn servers: many subscribers, several workers, stalled clients."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import LiveServer, wait_until
from .fleet import Fleet

pytestmark = pytest.mark.integration

BROKER_APP = "tests.integration.apps.broker_app:app"

#: gunicorn's gevent worker, and sse_sync's, whose publishers write to waiting subscribers'
#: sockets themselves (``ClientConnection.write_now``).
GEVENT_KINDS = ["gevent", "sse_sync"]


def publish(server: LiveServer, channel: str, items: list[Any], **extra: Any) -> dict[str, Any]:
    """POST /publish/<channel>: one event per item; returns the ids and the worker's pid."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = json.dumps({"items": items, **extra})
        conn.request("POST", f"/publish/{channel}", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())  # type: ignore[no-any-return]
    finally:
        conn.close()


def datas(fleet_client: Any) -> list[Any]:
    return [json.loads(e.data) for e in fleet_client.events]


@pytest.mark.gevent
@pytest.mark.parametrize("kind", GEVENT_KINDS)
def test_thousand_subscribers_on_one_gevent_worker(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """1,000 subscribers of a MemoryBroker on one gevent worker get 100 events, in order."""
    server = live_server(kind, BROKER_APP, extra_args=["--worker-connections", "3000"])
    latencies: list[float] = []
    with Fleet(server.port, "/stream?channel=fan", 1000) as fleet:
        wait_until(lambda: server.state()["subscribers"] == 1000, timeout=30)
        for batch in range(10):
            started = time.monotonic()
            publish(server, "fan", list(range(batch * 10, batch * 10 + 10)))
            fleet.pump(fleet.all_have(batch * 10 + 10), timeout=30, what=f"batch {batch}")
            latencies += [r.at - started for c in fleet.clients for r in c.received[-10:]]
        for client in fleet.clients:
            assert client.status == 200
            assert datas(client) == list(range(100))
        first_ids = [e.last_event_id for e in fleet.clients[0].events]
        assert all([e.last_event_id for e in c.events] == first_ids for c in fleet.clients)
        assert len(set(first_ids)) == 100
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49], cuts[98]
    print(f"\n1000 subscribers: publish->receive p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms")
    assert p99 < 5.0
    assert server.state()["overflows"] == 0


def _placement(server: LiveServer, workers: int, expected: int) -> dict[int, int]:
    """Subscribers per worker pid: polls /state until all workers answered and the counts add
    up to ``expected`` (each request lands on some worker), for at most 20 s."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = server.state()
        seen[state["pid"]] = state["subscribers"]
        if len(seen) == workers and sum(seen.values()) == expected:
            break
    return seen


@pytest.mark.redis
@pytest.mark.gevent
@pytest.mark.parametrize("kind", GEVENT_KINDS)
def test_redis_fans_out_across_three_workers(
    live_server: Callable[..., LiveServer], redis_server: Any, kind: str
) -> None:
    """Published via any worker or a plain process, events reach subscribers on all 3 workers."""
    server = live_server(kind, BROKER_APP, workers=3, env={"SSE_BROKER_URL": redis_server.url})
    fleets: list[Fleet] = []
    try:
        # Connections land on workers as the kernel hands them out: open more until every
        # worker holds some subscribers.
        while True:
            fleets.append(Fleet(server.port, "/stream?channel=multi", 30))
            placed = _placement(server, 3, 30 * len(fleets))
            if (len(placed) == 3 and all(placed.values())) or len(fleets) == 10:
                break
        assert len(placed) == 3 and all(placed.values()), placed
        assert sum(placed.values()) == 30 * len(fleets)
        published_by: set[int] = set()
        items = 0
        while len(published_by) < 3:  # a POST lands on any worker: publish through each
            reply = publish(server, "multi", [items])
            published_by.add(reply["pid"])
            items += 1
            assert items < 200
        code = (
            "from sse_sync import RedisBroker\n"
            f"broker = RedisBroker.from_url({redis_server.url!r})\n"
            f"broker.publish('multi', {items})\n"
            "broker.close()\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        clients = [c for fleet in fleets for c in fleet.clients]
        for fleet in fleets:
            fleet.pump(fleet.all_have(items + 1), timeout=30, what="every event")
        for client in clients:
            assert datas(client) == list(range(items + 1))
        ids = [e.last_event_id for e in clients[0].events]
        assert all([e.last_event_id for e in c.events] == ids for c in clients)
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    finally:
        for fleet in fleets:
            fleet.close()


@pytest.mark.gevent
@pytest.mark.parametrize("kind", GEVENT_KINDS)
def test_stalled_client_is_cut_off_and_delays_no_one(
    live_server: Callable[..., LiveServer], kind: str
) -> None:
    """A client that reads nothing does not hold up the others and is cut off at max_pending."""
    env = {"SSE_MAX_PENDING": "50", "SSE_HISTORY": "1000"}
    server = live_server(kind, BROKER_APP, env=env)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(10)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /stream?channel=s HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        with Fleet(server.port, "/stream?channel=s", 10) as fleet:
            wait_until(lambda: server.state()["subscribers"] == 11, timeout=20)
            slowest = 0.0
            # 400 events of 10 kB: far more than the kernel buffers of the stalled socket hold
            # (its receive window is tiny; the sender's buffer starts near 1.3 MB on loopback).
            for batch in range(20):
                started = time.monotonic()
                publish(server, "s", list(range(batch * 20, batch * 20 + 20)), pad=10_000)
                fleet.pump(fleet.all_have(batch * 20 + 20), timeout=10, what=f"batch {batch}")
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 2.0
            for client in fleet.clients:
                assert [d["n"] for d in datas(client)] == list(range(400))
                assert not client.closed
            state = server.state()
            assert state["overflows"] == 1
            assert state["subscribers"] == 10
            assert "Traceback" not in server.log, server.log
        # The server shut the stalled connection: reading it reaches the end (or a reset).
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "the stalled connection stayed open"
            try:
                if not stalled.recv(65536):
                    break
            except ConnectionResetError:
                break
    finally:
        stalled.close()
