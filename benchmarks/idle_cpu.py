"""CPU of one gunicorn gevent worker holding idle event streams, at a realistic ping interval.

``python3 benchmarks/idle_cpu.py`` opens N idle streams (default 2,000 and 5,000; ping 15 s) to
ONE gunicorn gevent worker, lets them settle, then reads the worker's CPU time from
``/proc/<pid>/stat`` over a window (default 30 s). Rows: sse_sync generators that block
(``/gen``), sse_sync broker subscriptions (``/sub``), and the naive Flask stream
(``benchmarks/servers/naive_flask_app.py``, a greenlet asleep until its next ping) for
reference. It serves the sse_sync of the checkout it is in: to measure an older commit, copy
this script and ``servers/idle_cpu_app.py`` into that commit's ``benchmarks/``. Prints one JSON
line per measurement, then a table; on a shared machine, run it more than once (``--repeat``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Pool, cpu_seconds, raise_fd_limit  # noqa: E402
from run import Impl, Server  # noqa: E402

ROWS = {
    "sse_sync generators": ("idle_cpu_app:app", "/gen"),
    "sse_sync subscriptions": ("idle_cpu_app:app", "/sub"),
    "naive Flask": ("naive_flask_app:app", "/idle"),
}


def measure(app: str, path: str, streams: int, ping: float, window: float) -> dict[str, Any]:
    """Serve ``app`` on one gevent worker, hold ``streams`` idle streams, measure its CPU."""
    impl = Impl(app, app, "gunicorn", app, env={"BENCH_PING": str(ping)})
    server = Server(impl, sys.executable, redis=None)
    try:
        server.warm_up()
        pids = server.pids()
        pool = Pool(server.port)
        opened = pool.add(path, streams)
        started = time.perf_counter()
        pool.run(started + 60, lambda: not pool.waiting and all(s.t_first_byte for s in opened))
        ramp = time.perf_counter() - started
        pool.run(time.perf_counter() + 5.0, lambda: False)  # the ramp's work is over
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        pool.run(t0 + window, lambda: False)
        cpu, elapsed = cpu_seconds(pids) - cpu0, time.perf_counter() - t0
        held = sum(1 for s in opened if s.t_first_byte and not s.closed)
        pool.close_all()
    finally:
        server.stop()
    percent = 100 * cpu / elapsed
    return {
        "streams": streams,
        "held": held,
        "ramp_s": round(ramp, 2),
        "cpu_percent": round(percent, 2),
        "percent_per_1000": round(percent / streams * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--ping", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--label", default="", help="added to each row's name")
    args = parser.parse_args(argv)
    limit = raise_fd_limit()
    if limit < max(args.streams) + 100:
        print(f"open-files limit {limit} < streams: raise it (ulimit -n)", file=sys.stderr)
        return 2
    table: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for streams in args.streams:
            for row in args.rows:
                app, path = ROWS[row]
                result = measure(app, path, streams, args.ping, args.window)
                name = f"{row}{args.label}"
                print(json.dumps({"row": name, **result}), flush=True)
                table.setdefault((name, streams), []).append(result)
    print(f"\nping {args.ping:g} s, window {args.window:g} s; median of {args.repeat}")
    print("| row | streams | held | CPU (% of a core) | % per 1,000 streams |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (name, streams), runs in table.items():
        cpu = statistics.median(r["cpu_percent"] for r in runs)
        per = statistics.median(r["percent_per_1000"] for r in runs)
        held = min(r["held"] for r in runs)
        print(f"| {name} | {streams:,} | {held:,} | {cpu:.2f} | {per:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
