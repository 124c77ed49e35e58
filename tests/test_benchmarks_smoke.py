"""The benchmark harness keeps working: its smoke mode against sse_sync (under gunicorn's gevent
worker and under its own) and the raw ceiling.

No timing is asserted (machines are noisy): only that every scenario produced well-formed
results, that the frames the client counted are the frames the servers sent, and that nothing
was lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.gevent]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One smoke run of ``benchmarks/run.py`` (sse_sync's two rows and the raw server), as JSON."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--impls",
            "sse_sync,sse_sync_worker,raw",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "latest.md").read_text().startswith("# Benchmark results (smoke")
    return dict(json.loads((out / "latest.json").read_text()))


def _runs(results: dict[str, Any], scenario: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = []
    for case in results["scenarios"][scenario]:
        assert set(case["runs"]) == {"sse_sync", "sse_sync_worker", "raw"} or (
            scenario == "throughput"
        )
        for impl_runs in case["runs"].values():
            assert impl_runs, f"no run in {scenario}"
            pairs += [(case["case"], run) for run in impl_runs]
    return pairs


def test_every_scenario_ran(results: dict[str, Any]) -> None:
    """The smoke run covers the seven scenarios and records the machine it ran on."""
    assert list(results["scenarios"]) == [
        "throughput",
        "concurrent",
        "idle",
        "idle_cpu",
        "fanout",
        "sustained",
        "first_event",
    ]
    assert results["machine"]["cores"] >= 1
    assert results["versions"]["sse_sync"]


def test_throughput_counts_every_frame(results: dict[str, Any]) -> None:
    """One stream: the client counted exactly the events the server sent, then the end."""
    for case, run in _runs(results, "throughput"):
        assert run["ok"], run
        assert run["events"] == run["expected"] == case["n"]
        assert run["events_per_s"] > 0


def test_concurrent_streams_all_finish(results: dict[str, Any]) -> None:
    """Blocking producers: every client gets all its events and the end of its stream."""
    for case, run in _runs(results, "concurrent"):
        assert run["ok"], run
        assert run["finished"] == case["clients"]
        assert run["events"] == run["expected"] == case["clients"] * case["n"]


def test_idle_streams_are_held_and_pinged(results: dict[str, Any]) -> None:
    """Idle streams: all are held, each gets pings, and memory and CPU were read."""
    for case, run in _runs(results, "idle"):
        assert run["ok"], run
        assert run["held"] == case["streams"]
        assert run["pings"] >= case["streams"]
        assert run["rss_after_mib"] > 0
        assert run["server_fds"] >= case["streams"]


def test_idle_generators_are_held_with_their_greenlets_counted(results: dict[str, Any]) -> None:
    """Idle blocking generators: all held at the case's ping, CPU read, greenlets counted."""
    for case, run in _runs(results, "idle_cpu"):
        assert run["ok"], run
        assert run["held"] == case["streams"]
        assert run["server_ping_s"] == case["ping"]
        assert run["cpu_percent_per_1000"] >= 0
        assert run["os_threads"] >= 1
    sse_sync, raw = (results["scenarios"]["idle_cpu"][0]["runs"][n][0] for n in ("sse_sync", "raw"))
    assert sse_sync["greenlets_per_stream"] >= 1  # at least the request's greenlet
    assert raw["greenlets_per_stream"] == 0


def test_sustained_search_reports_the_best_passing_step(results: dict[str, Any]) -> None:
    """Sustained delivery: the first step loses nothing, and the maximum is the best pass."""
    for case, run in _runs(results, "sustained"):
        assert run["ok"], run
        assert run["warm_subscribers"] == case["subscribers"]
        steps = run["steps"]
        assert steps[0]["deliveries_per_s"] == case["start_rate"]
        assert steps[0]["received"] == steps[0]["expected"] > 0
        assert steps[0]["lost"] == steps[0]["duplicates"] == 0
        passed = [s["deliveries_per_s"] for s in steps if s["passed"]]
        assert run["max_deliveries_per_s"] == max(passed, default=0.0)
        assert run["step_count"] == len(steps) <= 2 * case["max_steps"]


def test_fanout_loses_nothing(results: dict[str, Any]) -> None:
    """Fan-out: every subscriber gets every published event once, in order."""
    for case, run in _runs(results, "fanout"):
        assert run["ok"], run
        assert run["publish_ok"] >= case["publishes"]
        assert run["received"] == run["expected"] == case["subscribers"] * case["publishes"]
        assert run["lost"] == run["duplicates"] == run["out_of_order"] == 0
        assert 0 <= run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]


def test_first_event_measured(results: dict[str, Any]) -> None:
    """Time to first event: every connection got its event."""
    for case, run in _runs(results, "first_event"):
        assert run["ok"], run
        assert run["count"] == case["count"]
