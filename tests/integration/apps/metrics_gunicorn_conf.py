"""gunicorn.conf.py of the metrics integration tests, as docs/operations.md shows it."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges (``sse_sync_streams_open``) no longer count."""
    multiprocess.mark_process_dead(worker.pid)
