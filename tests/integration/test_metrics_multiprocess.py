"""sse_sync.metrics under gunicorn with 3 gevent workers, in prometheus_client multiprocess mode."""

from __future__ import annotations

import http.client
import json
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import APPS, LiveServer, wait_until
from .fleet import Client, Fleet

pytestmark = [pytest.mark.integration, pytest.mark.gevent]

METRICS_APP = "tests.integration.apps.metrics_app:app"
CONF = str(APPS / "metrics_gunicorn_conf.py")
WORKERS = 3
EVENTS = 3  # per stream
#: Streams opened at once; a worker holds at most PER_WORKER connections, so two or more
#: workers serve them.
STREAMS = 20
PER_WORKER = 12


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(server: LiveServer) -> Samples:
    """GET /metrics from whichever worker answers: it reads every worker's files."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return parse(response.read().decode())
    finally:
        conn.close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def start(live_server: Callable[..., LiveServer], directory: Path) -> LiveServer:
    """The metrics app on 3 gevent workers, multiprocess mode in ``directory``."""
    directory.mkdir()
    return live_server(
        "gevent",
        METRICS_APP,
        workers=WORKERS,
        extra_args=["-c", CONF, "--worker-connections", str(PER_WORKER)],
        # Pings: a worker's counts of events and bytes reach its files with its next write.
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "SSE_PING": "0.3"},
    )


def open_streams(server: LiveServer) -> Fleet:
    """``STREAMS`` streams, each with its first events, over two or more workers."""
    fleet = Fleet(server.port, f"/stream?n={EVENTS}", STREAMS)
    try:
        fleet.pump(fleet.all_have(EVENTS), timeout=20, what="the first events")
        placed = Counter(map(worker_of, fleet.clients))
        assert len(placed) >= 2 and sum(placed.values()) == STREAMS, placed
    except BaseException:
        fleet.close()
        raise
    return fleet


def worker_of(client: Client) -> int:
    """The pid of the worker serving ``client``'s stream (its first event says)."""
    return int(json.loads(client.events[0].data)["pid"])


def test_three_workers_add_up(live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    """/metrics sums every worker; a worker's streams leave the gauge when they close or it dies."""
    server = start(live_server, tmp_path / "prometheus")
    with open_streams(server) as fleet:
        clients = fleet.clients
        total = len(clients)
        wait_until(lambda: value(scrape(server), "sse_sync_events_sent_total") == EVENTS * total)
        samples = scrape(server)
        assert value(samples, "sse_sync_streams_open") == total
        assert value(samples, "sse_sync_streams_opened_total") == total
        assert value(samples, "sse_sync_pings_sent_total") > 0
        # A worker killed with its streams open: gunicorn's child_exit hook (mark_process_dead)
        # takes its streams out of the gauge; its counters stay.
        victim, lost = Counter(map(worker_of, clients)).most_common(1)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: value(scrape(server), "sse_sync_streams_open") == total - lost)
        assert value(scrape(server), "sse_sync_streams_opened_total") == total
        survivors = [c for c in clients if worker_of(c) != victim]
        received = sum(len(c.raw) for c in survivors)
    # The clients went: each worker sees it within a second (its idle streams poll the socket).
    wait_until(lambda: value(scrape(server), "sse_sync_streams_open") == 0)
    samples = scrape(server)
    assert value(samples, "sse_sync_streams_closed_total", reason="client_gone") == total - lost
    assert value(samples, "sse_sync_events_sent_total") == EVENTS * total
    # Every byte the other workers' clients got was counted (and pings that found them gone).
    assert value(samples, "sse_sync_bytes_sent_total") >= received


def test_stopping_gunicorn_counts_drained_streams(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """SIGTERM: every worker ends its streams with a retry hint, each counted as 'drain'."""
    directory = tmp_path / "prometheus"
    server = start(live_server, directory)
    with open_streams(server) as fleet:
        server.process.send_signal(signal.SIGTERM)
        fleet.pump(lambda: all(c.ended for c in fleet.clients), timeout=20, what="the ends")
        clients = fleet.clients
        assert all(c.raw.endswith(b"\n\n") and b"retry: " in c.raw for c in clients)
        wait_until(lambda: server.process.poll() is not None, timeout=20)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # the files the workers left
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "sse_sync_streams_closed_total", reason="drain") == len(clients)
    assert value(samples, "sse_sync_streams_open") == 0
    assert value(samples, "sse_sync_events_sent_total") == EVENTS * len(clients)
    assert value(samples, "sse_sync_bytes_sent_total") == sum(len(c.raw) for c in clients)
