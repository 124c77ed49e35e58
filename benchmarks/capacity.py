"""How many streams a gunicorn gthread worker serves: one per thread of ``--threads``, then none.

.. code-block:: sh

    python3 benchmarks/capacity.py --threads 20    # seconds; prints one JSON document

Starts the benchmark app (``servers/sse_sync_app.py``) under gunicorn with one gthread worker
and ``--threads N``, then opens streams one at a time (``/sleepy``: a blocking producer, one
event a second, for ever) and keeps them open. After each one it records how long the new
stream took to send its first bytes, how long ``/health`` took to answer (``null``: nothing
within ``--wait`` seconds), and the worker's OS threads. It ends with the server's sse_sync
warning, if one was logged. ``docs/deployment.md`` quotes a run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

from client import request_bytes
from run import IMPLS, Server, pick_python


def first_bytes(sock: socket.socket, path: str, wait: float) -> float | None:
    """Send ``GET path`` on ``sock``; seconds until the first bytes came, ``None`` if none did."""
    started = time.monotonic()
    sock.settimeout(wait)
    sock.sendall(request_bytes(path))
    try:
        if not sock.recv(1):
            return None
    except TimeoutError:
        return None
    return round(time.monotonic() - started, 4)


def measure(threads: int, streams: int, wait: float) -> dict[str, Any]:
    """Open ``streams`` streams on a gthread worker with ``threads`` threads; what happened."""
    server = Server(
        IMPLS["sse_sync_gthread"], pick_python(False, sys.stderr), redis=None, threads=threads
    )
    held: list[socket.socket] = []
    steps = []
    try:
        (worker,) = server.pids()
        for count in range(1, streams + 1):
            stream = socket.create_connection(("127.0.0.1", server.port), timeout=wait)
            held.append(stream)
            stream_s = first_bytes(stream, "/sleepy?n=1000000&sleep=1", wait)
            with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as probe:
                health_s = first_bytes(probe, "/health", wait)
            steps.append(
                {
                    "streams": count,
                    "first_bytes_s": stream_s,
                    "health_s": health_s,
                    "worker_threads": len(os.listdir(f"/proc/{worker}/task")),
                }
            )
        warnings = [line for line in server.tail(200).splitlines() if "gthread worker" in line]
    finally:
        for sock in held:
            sock.close()
        server.stop()
    return {
        "threads": threads,
        "served": sum(step["first_bytes_s"] is not None for step in steps),
        "health_hangs_at": next(
            (step["streams"] for step in steps if step["health_s"] is None), None
        ),
        "steps": steps,
        "warning": warnings[0] if warnings else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, measure, print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=20, help="gunicorn --threads (20)")
    parser.add_argument(
        "--streams", type=int, default=None, help="streams to open (default: threads + 2)"
    )
    parser.add_argument(
        "--wait", type=float, default=2.0, help="seconds to wait for first bytes (2)"
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"expected --threads >= 1, got {args.threads}")
    streams = args.threads + 2 if args.streams is None else args.streams
    print(json.dumps(measure(args.threads, streams, args.wait), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
