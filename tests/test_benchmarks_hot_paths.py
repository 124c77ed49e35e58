"""benchmarks/hot_paths.py runs, under threads and gevent, and reports every figure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.parametrize("mode", [[], pytest.param(["gevent"], marks=pytest.mark.gevent)])
def test_hot_paths_quick_run_reports_every_figure(mode: list[str]) -> None:
    """A --quick run prints one positive figure per hot path and exits cleanly."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hot_paths.py"), *mode, "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == (9 if mode else 7), lines
    assert all(float(line.rsplit(": ", 1)[1]) > 0 for line in lines), lines
