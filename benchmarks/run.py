"""Benchmarks of sse_sync side by side with its peers: one command.

.. code-block:: sh

    python3 benchmarks/run.py            # everything (~50 min); writes benchmarks/results/
    python3 benchmarks/run.py --smoke    # seconds: every scenario, tiny sizes, 1 repeat
    python3 benchmarks/run.py --metrics  # the same with sse_sync.metrics enabled (its cost)

Each measurement starts a fresh server on a free port of 127.0.0.1, drives it with one load
client process (``client.py``: raw sockets, one epoll loop) and stops it. The peers run from
their own virtualenv, ``benchmarks/.venv-peers`` (created on first use from
``requirements-peers.txt``, with sse_sync installed editable), so they never become runtime
dependencies; sse_sync and the naive Flask app run there too, on the very same gunicorn and
gevent. Repeats are interleaved (every implementation once, then again, in a rotated order), and
the tables show medians and the ratio of sse_sync to each peer, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SERVERS = BENCH / "servers"
PEERS_VENV = BENCH / ".venv-peers"
REQUIREMENTS = BENCH / "requirements-peers.txt"
RESULTS = BENCH / "results"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
#: RedisBroker's default ``max_connections`` (its command pool, per process).
REDIS_POOL = 16


# --- implementations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One server under test."""

    name: str
    label: str
    kind: str  # "gunicorn", "uvicorn" or "raw"
    app: str
    peers: bool = False  # needs the peers' virtualenv
    worker: str = "gevent"
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    redis: bool = False
    query: str = ""  # appended to the stream path (the client ceiling)


IMPLS: dict[str, Impl] = {
    impl.name: impl
    for impl in [
        Impl("sse_sync", "sse_sync (gunicorn, 1 gevent worker)", "gunicorn", "sse_sync_app:app"),
        Impl(
            "sse_sync_worker",
            "sse_sync (gunicorn, 1 sse_sync.gunicorn.GeventWorker)",
            "gunicorn",
            "sse_sync_app:app",
            worker="sse_sync.gunicorn.GeventWorker",
        ),
        Impl("sse_starlette", "sse-starlette (uvicorn)", "uvicorn", "starlette_app:app", True),
        Impl("fastapi_sse", "fastapi.sse (uvicorn)", "uvicorn", "fastapi_app:app", True),
        Impl(
            "naive_flask",
            "naive Flask (gunicorn, 1 gevent worker)",
            "gunicorn",
            "naive_flask_app:app",
        ),
        Impl(
            "flask_sse",
            "Flask-SSE + Redis (gunicorn, 1 gevent worker)",
            "gunicorn",
            "flask_sse_app:app",
            True,
            redis=True,
        ),
        Impl("raw", "raw-socket server (ceiling)", "raw", "raw_server.py"),
        Impl(
            "client_ceiling",
            "raw, pre-encoded (client ceiling)",
            "raw",
            "raw_server.py",
            query="&pre=1",
        ),
        Impl(
            "sse_sync_redis",
            "sse_sync + RedisBroker (gunicorn, 3 gevent workers)",
            "gunicorn",
            "sse_sync_app:app",
            workers=3,
            env={"BENCH_BROKER": "redis"},
            redis=True,
        ),
        Impl(
            "sse_sync_gthread",
            "sse_sync (gunicorn gthread, threads = clients + 16)",
            "gunicorn",
            "sse_sync_app:app",
            worker="gthread",
        ),
    ]
}

#: Every server that streams a generator and a subscription, in table order.
_STREAMING = ["sse_sync", "sse_sync_worker", "sse_starlette", "fastapi_sse", "naive_flask", "raw"]
#: sse_sync's rows beside naive Flask and the ceiling (the idle-CPU and sustained searches).
_SIDE_BY_SIDE = ["sse_sync", "sse_sync_worker", "naive_flask", "raw"]

#: Who takes part in which scenario (Flask-SSE only streams Redis channels: fan-out only).
SCENARIO_IMPLS: dict[str, list[str]] = {
    "throughput": [*_STREAMING, "client_ceiling"],
    "concurrent": [*_STREAMING, "sse_sync_gthread"],
    "idle": _STREAMING,
    "idle_cpu": _SIDE_BY_SIDE,
    "fanout": [*_STREAMING, "flask_sse", "sse_sync_redis"],
    "sustained": _SIDE_BY_SIDE,
    "first_event": _STREAMING,
}

SCENARIO_TITLES = {
    "throughput": "1. Throughput: one stream of {n:,} events of ~100 bytes, as fast as possible",
    "concurrent": "2. Blocking producers: {clients:,} clients, {n} events each, "
    "time.sleep({sleep:g}) between them (deadline {timeout:g} s)",
    "idle": "3. Idle streams: {streams:,} streams, pings every 1 s",
    "idle_cpu": "3b. Idle {what}: {streams:,} streams, pings every {ping:g} s, "
    "CPU over {window:g} s",
    "fanout": "4. Fan-out: {subscribers:,} subscribers of one channel, "
    "{publishes} publishes {pace}",
    "sustained": "4b. Sustained delivery: {subscribers:,} subscribers of one channel, the most "
    "deliveries/s with p99 < {p99_ms:g} ms and nothing lost ({step:g} s steps, rate x{factor:g})",
    "first_event": "5. Time to first event: {count} connections one after another",
}

#: What the streams of an ``idle_cpu`` case wait on: its ``source``, in its heading.
IDLE_SOURCES = {
    "subscription": "broker subscriptions (no producer)",
    "generator": "blocking generators (waiting on a queue that never fires)",
}

#: The step search's parameters (``client.scenario_sustained``), as a case may override them.
SUSTAINED_DEFAULTS: dict[str, Any] = {
    "start_rate": 5000.0,
    "factor": 1.5,
    "step": 3.0,
    "max_steps": 14,
    "patience": 2,
    "refine": 2,
    "p99_ms": 100.0,
    "drain": 2.0,
}

FULL: dict[str, list[dict[str, Any]]] = {
    "throughput": [{"n": 200_000}],
    "concurrent": [
        {"clients": 100, "n": 5, "sleep": 1.0, "timeout": 30.0},
        {"clients": 1000, "n": 5, "sleep": 1.0, "timeout": 30.0},
    ],
    "idle": [{"streams": 1000}, {"streams": 5000}, {"streams": 10_000}],
    # A process may open at most 20,000 files here (the hard limit): ~19,990 streams at most.
    "idle_cpu": [
        {"source": "subscription", "streams": 10_000, "ping": 1.0, "window": 10.0},
        {"source": "subscription", "streams": 10_000, "ping": 15.0, "window": 30.0},
        {"source": "generator", "streams": 10_000, "ping": 1.0, "window": 10.0},
        {"source": "generator", "streams": 10_000, "ping": 15.0, "window": 30.0},
    ],
    "fanout": [
        {"subscribers": 100, "publishes": 20, "interval": 0.0},
        {"subscribers": 1000, "publishes": 20, "interval": 0.0},
        {"subscribers": 5000, "publishes": 20, "interval": 0.0},
        {"subscribers": 5000, "publishes": 20, "interval": 0.1},
    ],
    "sustained": [{"subscribers": 1000}],
    "first_event": [{"count": 200}],
}

SMOKE: dict[str, list[dict[str, Any]]] = {
    "throughput": [{"n": 5000}],
    "concurrent": [{"clients": 20, "n": 3, "sleep": 0.2, "timeout": 10.0}],
    "idle": [{"streams": 50, "window": 1.5}],
    "idle_cpu": [{"source": "generator", "streams": 50, "ping": 0.5, "window": 1.5}],
    "fanout": [{"subscribers": 50, "publishes": 5, "interval": 0.0}],
    "sustained": [
        {
            "subscribers": 20,
            "start_rate": 200.0,
            "factor": 3.0,
            "step": 0.5,
            "max_steps": 3,
            "refine": 0,
            "drain": 10.0,
        }
    ],
    "first_event": [{"count": 10}],
}


# --- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In a child before exec: get SIGKILL when this runner dies; allow many open files."""
    with contextlib.suppress(OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop ``process`` and its process group: SIGTERM, then SIGKILL after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


class Redis:
    """A private redis-server on a free port, no persistence; never the shared instance."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "19000",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.command(b"PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                msg = f"redis-server did not start on port {self.port}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, line: bytes) -> bytes:
        """Send one inline command, return the first reply read."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(line + b"\r\n")
            return sock.recv(65536)

    def stop(self) -> None:
        _stop(self.process)


class Server:
    """One implementation served on a free port, in its own process group."""

    def __init__(
        self,
        impl: Impl,
        python: str,
        *,
        redis: Redis | None,
        threads: int = 64,
        env: dict[str, str] | None = None,
    ) -> None:
        self.impl = impl
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{impl.name}-", suffix=".log")
        env = {
            **os.environ,
            **impl.env,
            **(env or {}),
            "PYTHONPATH": f"{SERVERS}{os.pathsep}{ROOT}",
        }
        env.pop("PYTHONSTARTUP", None)
        if redis is not None:
            env["BENCH_REDIS_URL"] = redis.url
        bind = f"127.0.0.1:{self.port}"
        if impl.kind == "gunicorn":
            argv = [
                python,
                "-m",
                "gunicorn",
                "-k",
                impl.worker,
                "-w",
                str(impl.workers),
                "-b",
                bind,
                "--backlog",
                "4096",
                "--timeout",
                "300",
                "--graceful-timeout",
                "1",
                "--log-level",
                "warning",
            ]
            if impl.worker != "gthread":  # gevent, or sse_sync's gevent worker
                argv += ["--worker-connections", "20000"]
            else:
                argv += ["--threads", str(threads)]
            argv.append(impl.app)
        elif impl.kind == "uvicorn":
            argv = [
                python,
                "-m",
                "uvicorn",
                impl.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backlog",
                "4096",
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        else:
            argv = [python, str(SERVERS / impl.app), str(self.port)]
        self.process = subprocess.Popen(
            argv,
            cwd=SERVERS,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            workers = len(self.pids())
            if workers >= self.impl.workers:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        conn.close()
                        return
                    conn.close()
                except OSError:
                    pass
            time.sleep(0.1)
        msg = f"{self.impl.name} did not start on port {self.port}:\n{self.tail()}"
        raise RuntimeError(msg)

    def pids(self) -> list[int]:
        """The processes that serve requests (gunicorn: its workers)."""
        if self.impl.kind == "gunicorn":
            return _children(self.process.pid)
        return [self.process.pid]

    def tail(self, lines: int = 15) -> str:
        """The end of the server's log."""
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def warm_up(self) -> None:
        """One short stream, so that lazy imports and first-use caches are not measured."""
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/first")
            conn.getresponse().read()
            conn.close()

    def stop(self) -> None:
        _stop(self.process)
        self.log.close()


# --- environments ---------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_peers_venv(log: Any) -> str:
    """Create or update ``benchmarks/.venv-peers`` (peers + sse_sync editable); its python."""
    python = _venv_python(PEERS_VENV)
    stamp = PEERS_VENV / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"Setting up {PEERS_VENV.relative_to(ROOT)} (peers, once) ...", file=log, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS), "-e", str(ROOT)],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return str(python)


def _can_serve(python: str) -> bool:
    probe = "import gevent, gunicorn, flask, sse_sync"
    result = subprocess.run([python, "-c", probe], capture_output=True, timeout=60, check=False)
    return result.returncode == 0


def pick_python(need_peers: bool, log: Any) -> str:
    """The interpreter the servers run on: the peers' venv, or (smoke) this one if it can."""
    if need_peers:
        return ensure_peers_venv(log)
    for candidate in (sys.executable, str(_venv_python(ROOT / ".venv"))):
        if Path(candidate).exists() and _can_serve(candidate):
            return candidate
    return ensure_peers_venv(log)


def versions(python: str) -> dict[str, str]:
    """Versions of the packages that matter, as installed for ``python``."""
    names = [
        "sse_sync",
        "flask",
        "werkzeug",
        "gevent",
        "gunicorn",
        "greenlet",
        "pydantic",
        "pydantic_core",
        "sse-starlette",
        "starlette",
        "fastapi",
        "uvicorn",
        "uvloop",
        "httptools",
        "flask-sse",
        "redis",
    ]
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for n in {names!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([python, "-c", code], capture_output=True, timeout=60, check=False)
    try:
        return dict(json.loads(result.stdout))
    except ValueError:
        return {}


def machine() -> dict[str, Any]:
    """What the run ran on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    redis_version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, timeout=10)
        redis_version = out.stdout.decode().split("v=")[1].split()[0]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "system": platform.system(),
        "redis_server": redis_version,
        "loadavg_at_start": os.getloadavg(),
    }


# --- measuring ------------------------------------------------------------------------------


def run_client(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in the load client's process; its JSON result."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "client.py"), json.dumps(spec)],
        capture_output=True,
        timeout=timeout,
        preexec_fn=_die_with_parent,
        check=False,
    )
    lines = proc.stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.decode(errors="replace").strip().splitlines()[-8:]
        return {"ok": False, "error": "client failed: " + " | ".join(err)}
    return dict(json.loads(lines[-1]))


def measure(
    scenario: str, case: dict[str, Any], impl: Impl, python: str, redis: Redis | None
) -> dict[str, Any]:
    """Start ``impl``, run ``scenario`` with ``case`` against it, stop it; the result."""
    if impl.redis and redis is not None:
        redis.command(b"FLUSHALL")
    threads = int(case.get("clients", 48)) + 16
    env = {"BENCH_PING": str(case["ping"])} if "ping" in case else None
    try:
        server = Server(impl, python, redis=redis if impl.redis else None, threads=threads, env=env)
    except RuntimeError as exc:
        return {"ok": False, "error": str(exc)[-600:]}
    try:
        spec: dict[str, Any] = {"scenario": scenario, "port": server.port}
        limit = 120.0
        if scenario == "throughput":
            spec |= {"path": f"/stream?n={case['n']}{impl.query}", "n": case["n"]}
            limit = 200.0
        elif scenario == "concurrent":
            path = f"/sleepy?n={case['n']}&sleep={case['sleep']}"
            spec |= {
                "path": path,
                "clients": case["clients"],
                "n": case["n"],
                "timeout": case["timeout"],
            }
            limit = case["timeout"] + 60
        elif scenario == "idle":
            server.warm_up()
            spec |= {
                "path": "/idle",
                "streams": case["streams"],
                "pids": server.pids(),
                "window": case.get("window", 5.0),
            }
            limit = 200.0
        elif scenario == "idle_cpu":
            server.warm_up()
            spec |= {
                "path": "/idle_gen" if case["source"] == "generator" else "/idle",
                "streams": case["streams"],
                "pids": server.pids(),
                "window": case["window"],
            }
            limit = 200.0 + case["window"]
        elif scenario == "fanout":
            spec |= {
                "subscribers": case["subscribers"],
                "pids": server.pids(),
                "channel": f"bench-{uuid.uuid4().hex[:8]}",
                "publishes": case["publishes"],
                "interval": case["interval"],
                "redis_port": redis.port if impl.redis and redis else None,
            }
            limit = 240.0
        elif scenario == "sustained":
            spec |= {
                "subscribers": case["subscribers"],
                "pids": server.pids(),
                "channel": f"bench-{uuid.uuid4().hex[:8]}",
                **{k: case.get(k, v) for k, v in SUSTAINED_DEFAULTS.items()},
            }
            limit = 900.0
        elif scenario == "first_event":
            spec |= {"path": "/first", "count": case["count"]}
        try:
            result = run_client(spec, limit)
        except subprocess.TimeoutExpired:
            result = {"ok": False, "error": f"client timed out after {limit:g} s"}
        if server.process.poll() is not None:
            result["ok"] = False
            result["error"] = (result.get("error") or "") + " server died: " + server.tail(5)
        return result
    finally:
        server.stop()


#: The metric each scenario's table leads with, and whether lower is better.
PRIMARY: dict[str, tuple[str, bool]] = {
    "throughput": ("events_per_s", False),
    "concurrent": ("all_done_s", True),
    "idle": ("rss_per_stream_kib", True),
    "idle_cpu": ("cpu_percent_per_1000", True),
    "fanout": ("p99_ms", True),
    "sustained": ("max_deliveries_per_s", False),
    "first_event": ("p50_ms", True),
}


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every numeric metric over the runs, and how many runs were ok."""
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and k != "ok"}
    out: dict[str, Any] = {k: _median(runs, k) for k in sorted(keys)}
    out["runs"] = len(runs)
    out["runs_ok"] = sum(1 for r in runs if r.get("ok"))
    why = [r["failed_why"] for r in runs if r.get("failed_why")]
    if why:
        out["failed_why"] = why
    errors = [r.get("error") or r.get("errors") for r in runs if not r.get("ok")]
    if errors:
        out["errors"] = [e for e in errors if e][:3]
    return out


def _size(scenario: str, case: dict[str, Any]) -> int:
    """How many connections a case holds at once."""
    return int(case.get("streams") or case.get("subscribers") or case.get("clients") or 1)


def _over_capacity(scenario: str, case: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether the server could not even hold the case's connections (not just slow or lossy)."""
    if scenario in ("idle", "idle_cpu"):
        return int(result.get("held") or 0) < case["streams"]
    if scenario in ("fanout", "sustained"):
        return int(result.get("warm_subscribers") or 0) < case["subscribers"]
    return False


def case_label(scenario: str, case: dict[str, Any]) -> str:
    """The heading of one case of a scenario."""
    interval = case.get("interval", 0.0)
    pace = f"{interval:g} s apart, one publisher" if interval else "sent at once (a burst)"
    what = IDLE_SOURCES.get(case.get("source", ""), "")
    defaults = {"timeout": 30.0, "window": 5.0, "pace": pace, "what": what, **SUSTAINED_DEFAULTS}
    return SCENARIO_TITLES[scenario].format(**{**defaults, **case})


def _matches(case: dict[str, Any], where: dict[str, str]) -> bool:
    """Whether ``case`` has every ``--where`` value (a case without the key is kept)."""
    return all(
        k not in case or str(case[k]) == v or _number(case[k]) == _number(v)
        for k, v in where.items()
    )


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def run_all(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """Every scenario, case, repeat and implementation; the results document."""
    plan = SMOKE if args.smoke else FULL
    scenarios = [s for s in plan if not args.scenarios or s in args.scenarios]
    wanted = set(args.impls) if args.impls else set(IMPLS)
    need_peers = any(IMPLS[n].peers for s in scenarios for n in SCENARIO_IMPLS[s] if n in wanted)
    python = pick_python(need_peers, log)
    need_redis = any(IMPLS[n].redis for s in scenarios for n in SCENARIO_IMPLS[s] if n in wanted)
    redis = Redis() if need_redis else None
    started = time.time()
    doc: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "mode": "smoke" if args.smoke else "full",
        "metrics": args.metrics,
        "repeats": args.repeats,
        "machine": machine(),
        "versions": versions(python),
        "impls": {n: IMPLS[n].label for n in IMPLS if n in wanted},
        "scenarios": {},
    }
    # (scenario, impl, repeat) -> the smallest size it could not hold: larger sizes are skipped.
    over_capacity: dict[tuple[str, str, int], int] = {}
    try:
        for scenario in scenarios:
            impls = [IMPLS[n] for n in SCENARIO_IMPLS[scenario] if n in wanted]
            cases_out = []
            for case in plan[scenario]:
                if not _matches(case, args.where):
                    continue
                label = case_label(scenario, case)
                print(f"\n== {label}", file=log, flush=True)
                runs: dict[str, list[dict[str, Any]]] = {impl.name: [] for impl in impls}
                for rep in range(args.repeats):
                    order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
                    for impl in order:
                        t0 = time.monotonic()
                        size = _size(scenario, case)
                        limit = over_capacity.get((scenario, impl.name, rep))
                        if limit is not None and size >= limit:
                            result = {"ok": False, "error": f"skipped: could not hold {limit:,}"}
                        else:
                            result = measure(scenario, case, impl, python, redis)
                        if _over_capacity(scenario, case, result):
                            over_capacity[(scenario, impl.name, rep)] = size
                        runs[impl.name].append(result)
                        key, _ = PRIMARY[scenario]
                        value = result.get(key)
                        shown = f"{value:,.2f}" if isinstance(value, (int, float)) else value
                        flag = "ok" if result.get("ok") else f"NOT OK {result.get('error', '')}"
                        print(
                            f"  [{rep + 1}/{args.repeats}] {impl.name:16} {key}={shown} "
                            f"{flag} ({time.monotonic() - t0:.1f} s, total "
                            f"{time.time() - started:.0f} s)",
                            file=log,
                            flush=True,
                        )
                cases_out.append(
                    {
                        "case": case,
                        "label": label,
                        "runs": runs,
                        "median": {name: summarize(r) for name, r in runs.items()},
                    }
                )
            doc["scenarios"][scenario] = cases_out
    finally:
        if redis is not None:
            redis.stop()
    doc["seconds"] = round(time.time() - started)
    doc["machine"]["loadavg_at_end"] = os.getloadavg()
    doc["targets"] = evaluate_targets(doc)
    return doc


# --- targets and report -----------------------------------------------------------------------


def _case(doc: dict[str, Any], scenario: str, **match: Any) -> dict[str, Any] | None:
    for case in doc["scenarios"].get(scenario, []):
        if all(case["case"].get(k) == v for k, v in match.items()):
            return case
    return None


def _metric(case: dict[str, Any] | None, impl: str, key: str) -> float | None:
    if case is None or impl not in case["median"] or not case["median"][impl]["runs_ok"]:
        return None
    value = case["median"][impl].get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


#: sse_sync's rows: under gunicorn's gevent worker, and under sse_sync's own.
OURS = ("sse_sync", "sse_sync_worker")


def evaluate_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figures measured in this run and met/missed.

    Each target about sse_sync is evaluated for each of its rows measured (:data:`OURS`).
    """
    targets: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: bool | None) -> None:
        targets.append({"target": name, "measured": measured, "met": met})

    def fmt(x: float | None, spec: str = ".2f") -> str:
        return "n/a" if x is None else format(x, spec)

    def ours_in(case: dict[str, Any] | None) -> list[str]:
        return [n for n in OURS if case is not None and _metric(case, n, "runs_ok") is not None]

    def compare(
        case: dict[str, Any] | None,
        key: str,
        peer: str,
        name: str,
        unit: str,
        ok: Callable[[float], bool],
        spec: str = ",.2f",
        lost: bool = False,
    ) -> None:
        """One target per sse_sync row: ``ok(ours / peer's)`` (and nothing lost, if asked)."""
        for row in ours_in(case):
            a, b = _metric(case, row, key), _metric(case, peer, key)
            r = _ratio(a, b)
            missing = _metric(case, row, "lost") if lost else 0.0
            shown = f", lost {fmt(missing, '.0f')}" if lost else ""
            add(
                f"{name} [{row}]",
                f"{row} {fmt(a, spec)} {unit}, {peer} {fmt(b, spec)}, ratio {fmt(r, '.3f')}"
                + shown,
                None if r is None else ok(r) and missing == 0,
            )

    tp = _case(doc, "throughput")
    compare(
        tp,
        "events_per_s",
        "raw",
        "Throughput >= 0.58x raw (aim 0.75x)",
        "events/s",
        lambda r: r >= 0.58,
        ",.0f",
    )
    compare(
        tp,
        "events_per_s",
        "sse_starlette",
        "Throughput >= 3x sse-starlette",
        "events/s",
        lambda r: r >= 3.0,
        ",.0f",
    )

    cc = _case(doc, "concurrent", clients=1000)
    for row in ours_in(cc):
        done, naive = _metric(cc, row, "all_done_s"), _metric(cc, "naive_flask", "all_done_s")
        finished = _metric(cc, row, "finished")
        add(
            f"Blocking producers: all 1,000 clients finish no later than naive Flask [{row}]",
            f"{row} {fmt(done)} s ({fmt(finished, '.0f')}/1000 finished), naive Flask "
            f"{fmt(naive)} s",
            None if done is None or naive is None else finished == 1000 and done <= naive,
        )

    for case in doc["scenarios"].get("idle_cpu") or []:
        c = case["case"]
        what = IDLE_SOURCES[c["source"]].split(" (")[0]
        label = f"Idle {what}, {c['streams']:,} streams, {c['ping']:g} s pings"
        compare(
            case,
            "cpu_percent_per_1000",
            "naive_flask",
            f"{label}: CPU per 1,000 streams <= naive Flask's",
            "% of a core",
            lambda r: r <= 1.0,
        )
        for row in ours_in(case) if c["ping"] >= 15 else []:  # the aim is at the default ping
            cpu = _metric(case, row, "cpu_percent_per_1000")
            add(
                f"{label}: CPU per 1,000 streams <= 0.25 % of a core (100,000 streams on one "
                f"worker) [{row}]",
                f"{row} {fmt(cpu)} % of a core",
                None if cpu is None else cpu <= 0.25,
            )
        if c["source"] == "generator":
            compare(
                case,
                "rss_per_stream_kib",
                "naive_flask",
                f"{label}: RSS per stream <= naive Flask's (aim 0.6x)",
                "KiB",
                lambda r: r <= 1.0,
            )

    for k in (1000, 5000):
        compare(
            _case(doc, "fanout", subscribers=k, interval=0.0),
            "p99_ms",
            "naive_flask",
            f"Burst fan-out to {k:,}: p99 <= 0.5x naive Flask's, nothing lost",
            "ms",
            lambda r: r <= 0.5,
            ",.0f",
            lost=True,
        )
    paced = _case(doc, "fanout", subscribers=5000, interval=0.1)
    compare(
        paced,
        "p99_ms",
        "raw",
        "Paced fan-out to 5,000 (0.1 s apart): p99 <= 1.5x raw's, nothing lost",
        "ms",
        lambda r: r <= 1.5,
        ",.0f",
        lost=True,
    )
    compare(
        paced,
        "p99_ms",
        "naive_flask",
        "Paced fan-out to 5,000 (0.1 s apart): p99 <= 0.3x naive Flask's, nothing lost",
        "ms",
        lambda r: r <= 0.3,
        ",.0f",
        lost=True,
    )

    fan_cases = doc["scenarios"].get("fanout") or []
    conns: dict[int, float] = {}
    for c in fan_cases:
        value = _metric(c, "sse_sync_redis", "redis_connections")
        if value is not None:
            size = c["case"]["subscribers"]
            conns[size] = max(conns.get(size, 0.0), value)
    if conns:
        workers = IMPLS["sse_sync_redis"].workers
        bound = workers * (REDIS_POOL + 1)
        add(
            f"RedisBroker: Redis connections grow with workers, not with clients (at most "
            f"{workers} workers x ({REDIS_POOL} pooled + 1 reader) = {bound}, whatever the "
            "number of subscribers)",
            ", ".join(f"{s:,} subscribers: {c:.0f}" for s, c in sorted(conns.items())),
            max(conns.values()) <= bound,
        )

    for case in doc["scenarios"].get("sustained") or []:
        c = case["case"]
        compare(
            case,
            "max_deliveries_per_s",
            "raw",
            f"Sustained delivery to {c['subscribers']:,} subscribers (p99 < "
            f"{c.get('p99_ms', SUSTAINED_DEFAULTS['p99_ms']):g} ms, nothing lost): at "
            "least half of raw's deliveries/s",
            "deliveries/s",
            lambda r: r >= 0.5,
            ",.0f",
        )

    first = _case(doc, "first_event")
    compare(
        first,
        "p50_ms",
        "naive_flask",
        "Time to first event: p50 <= 2x naive Flask's",
        "ms",
        lambda r: r <= 2.0,
    )
    return targets


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN
        return "-"
    return format(value, spec)


#: Columns per scenario: (metric, heading, format, lower is better, ratio column).
COLUMNS: dict[str, list[tuple[str, str, str, bool, bool]]] = {
    "throughput": [("events_per_s", "events/s", ",.0f", False, True)],
    "concurrent": [
        ("finished", "finished", ",.0f", False, False),
        ("all_done_s", "all done (s)", ".2f", True, True),
        ("p50_done_s", "p50 done (s)", ".2f", True, False),
    ],
    "idle": [
        ("held", "held", ",.0f", False, False),
        ("rss_per_stream_kib", "RSS/stream (KiB)", ".2f", True, True),
        ("cpu_us_per_ping", "CPU/ping (us)", ".1f", True, True),
        ("cpu_percent", "CPU idle (%)", ".1f", True, False),
        ("ramp_s", "connect all (s)", ".1f", True, False),
    ],
    "idle_cpu": [
        ("held", "held", ",.0f", False, False),
        ("cpu_percent_per_1000", "CPU per 1,000 streams (% of a core)", ".2f", True, True),
        ("cpu_us_per_ping", "CPU/ping (us)", ".1f", True, False),
        ("rss_per_stream_kib", "RSS/stream (KiB)", ".2f", True, True),
        ("greenlets_per_stream", "greenlets/stream", ".2f", True, False),
        ("os_threads", "OS threads", ",.0f", True, False),
        ("ramp_s", "connect all (s)", ".1f", True, False),
    ],
    "fanout": [
        ("p50_ms", "p50 (ms)", ",.1f", True, False),
        ("p99_ms", "p99 (ms)", ",.1f", True, True),
        ("max_ms", "max (ms)", ",.1f", True, False),
        ("lost", "lost", ",.0f", True, False),
        ("server_fds", "server fds", ",.0f", True, False),
        ("redis_connections", "Redis conns", ",.0f", True, False),
    ],
    "sustained": [
        ("max_deliveries_per_s", "max deliveries/s", ",.0f", False, True),
        ("max_publishes_per_s", "publishes/s", ",.1f", False, False),
        ("p50_ms", "p50 at max (ms)", ",.1f", True, False),
        ("p99_ms", "p99 at max (ms)", ",.1f", True, False),
        ("lost", "lost at max", ",.0f", True, False),
        ("cpu_percent", "CPU at max (%)", ".0f", True, False),
        ("cpu_us_per_delivery", "CPU/delivery at max (us)", ".2f", True, False),
        ("failed_deliveries_per_s", "failed at (deliveries/s)", ",.0f", True, False),
        ("failed_p99_ms", "its p99 (ms)", ",.1f", True, False),
        ("failed_lost", "its lost", ",.0f", True, False),
    ],
    "first_event": [
        ("p50_ms", "p50 (ms)", ".2f", True, True),
        ("p99_ms", "p99 (ms)", ".2f", True, False),
    ],
}


def render_markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables, with the machine and the targets."""
    m = doc["machine"]
    v = doc["versions"]
    lines = [
        f"# Benchmark results ({doc['mode']}"
        f"{', sse_sync.metrics enabled' if doc.get('metrics') else ''}, {doc['started']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {v.get('python', '?')}; load average {m['loadavg_at_start'][0]:.2f} at start, "
        f"{m['loadavg_at_end'][0]:.2f} at end. Run took {doc['seconds'] / 60:.1f} min.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "python") + ".",
        "",
        f"Medians of {doc['repeats']} interleaved repeat(s), each on a fresh server. Ratios are "
        "sse_sync ÷ the implementation in that row, measured in this run: above 1 is better "
        "for events/s, below 1 is better for time, memory and latency. This machine is shared "
        "and noisy (other jobs may run tests at the same time): compare within one run.",
        "",
    ]
    for scenario, cases in doc["scenarios"].items():
        cols = COLUMNS[scenario]
        for case in cases:
            lines += [f"## {case['label']}", ""]
            head = ["implementation", *(c[1] for c in cols), "runs ok"]
            head += [f"sse_sync ÷ this ({c[1]})" for c in cols if c[4]]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            ours = case["median"].get("sse_sync", {})
            for name, med in case["median"].items():
                row = [doc["impls"].get(name, name)]
                row += [_cell(med.get(c[0]), c[2]) for c in cols]
                row.append(f"{med['runs_ok']}/{med['runs']}")
                for c in cols:
                    if not c[4]:
                        continue
                    r = _ratio(ours.get(c[0]), med.get(c[0]))
                    row.append("-" if name == "sse_sync" else _cell(r, ".2f"))
                lines.append("| " + " | ".join(row) + " |")
            notes = [
                f"{doc['impls'].get(n, n)}: {med['errors']}"
                for n, med in case["median"].items()
                if med.get("errors")
            ]
            if notes:
                lines += ["", "Failures: " + "; ".join(str(x)[:300] for x in notes)]
            stops = [
                f"{doc['impls'].get(n, n)}: {'; '.join(med['failed_why'])}"
                for n, med in case["median"].items()
                if med.get("failed_why")
            ]
            if stops:
                lines += ["", "Why the search stopped (each run): " + " | ".join(stops)]
            lines.append("")
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in doc["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat: seconds")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (3)")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve sse_sync with sse_sync.metrics enabled (prometheus_client), to see its cost",
    )
    parser.add_argument(
        "--impls",
        type=lambda s: s.split(","),
        default=None,
        help=f"comma-separated subset of {','.join(IMPLS)}",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda s: s.split(","),
        default=None,
        help=f"comma-separated subset of {','.join(FULL)}",
    )
    parser.add_argument(
        "--where",
        type=lambda s: dict(kv.split("=", 1) for kv in s.split(",")),
        default={},
        metavar="KEY=VALUE,...",
        help="only the cases with these parameters, e.g. subscribers=5000,interval=0.1",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for latest.json/latest.md (default: benchmarks/results; "
        "a temporary directory with --smoke)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="only re-evaluate the targets and rewrite the Markdown of a results "
        "file (its latest.md next to it)",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        doc = json.loads(args.render.read_text())
        doc["targets"] = evaluate_targets(doc)
        args.render.write_text(json.dumps(doc, indent=1) + "\n")
        (args.render.parent / "latest.md").write_text(render_markdown(doc))
        return 0
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 3
    for name in args.impls or []:
        if name not in IMPLS:
            parser.error(f"unknown implementation {name!r}; expected one of {', '.join(IMPLS)}")
    for name in args.scenarios or []:
        if name not in FULL:
            parser.error(f"unknown scenario {name!r}; expected one of {', '.join(FULL)}")
    out: Path = args.out or (Path(tempfile.mkdtemp(prefix="bench-")) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    if args.metrics:
        os.environ["BENCH_METRICS"] = "1"  # read by servers/sse_sync_app.py
    doc = run_all(args, sys.stderr)
    (out / "latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    report = render_markdown(doc)
    (out / "latest.md").write_text(report)
    print(report)
    print(f"Results written to {out}/latest.json and latest.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
