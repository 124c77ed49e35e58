"""Makes a test server stop by itself when the test run that started it is gone."""

from __future__ import annotations

import os
import signal
import threading
import time


def start() -> None:
    """Watch ``SSE_SYNC_TEST_PARENT`` (a pid): stop this server when it dies, or after 15 min."""
    parent = int(os.environ.get("SSE_SYNC_TEST_PARENT", "0"))
    if not parent:
        return
    started = time.monotonic()
    # Under gunicorn this runs in a worker: stop its master too. Elsewhere stop only this process.
    targets = {os.getpid()}
    if os.environ.get("SSE_SYNC_TEST_KIND", "").startswith("gunicorn") and os.getppid() > 1:
        targets.add(os.getppid())

    def watch() -> None:
        while time.monotonic() - started < 900:
            try:
                os.kill(parent, 0)
            except OSError:
                break
            time.sleep(1.0)
        for pid in targets:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass

    threading.Thread(target=watch, name="sse_sync-test-watchdog", daemon=True).start()
