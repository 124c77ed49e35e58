"""The gthread capacity measurement: a worker serves as many streams as it has threads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_gthread_worker_serves_one_stream_per_thread() -> None:
    """With --threads 4: four streams get bytes, the fifth none, /health hangs at the fourth."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "capacity.py"),
            "--threads",
            "4",
            "--streams",
            "5",
            "--wait",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["served"] == 4
    assert result["steps"][4]["first_bytes_s"] is None
    assert result["health_hangs_at"] == 4
    # Each stream holds a worker thread and a producer thread, besides the main thread.
    for step in result["steps"][:4]:
        assert step["worker_threads"] >= 2 * step["streams"] + 1
    assert "3 event streams are open on this gunicorn gthread worker" in result["warning"]
