"""Running a snippet under gevent's monkey-patching, in a fresh interpreter.

Monkey-patching is for the whole process, so gevent runs only in subprocesses. Each snippet
starts with :data:`PRELUDE`: patched, with ``gevent``, ``time`` and ``until()`` at hand.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["PRELUDE", "run_under_gevent"]

PRELUDE = '''
from gevent import monkey; monkey.patch_all()
import gevent, time

def until(predicate, timeout=5.0):
    """Wait, letting other greenlets run, until predicate() is true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.001)
'''


def run_under_gevent(code: str) -> None:
    """Run :data:`PRELUDE` and ``code`` in a fresh interpreter; it must print ``ok``."""
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr
