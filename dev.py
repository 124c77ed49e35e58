#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.10+.

    python3 dev.py demo          # the main demo on http://127.0.0.1:8000 (gunicorn, gevent)
    python3 dev.py test [ARGS]   # the whole test suite (ARGS go to pytest)
    python3 dev.py docs          # build the documentation site, serve it on http://127.0.0.1:8001
    python3 dev.py docs --no-serve   # only build it, into docs/_build/html

Each creates ``.venv`` beside this file on first use and installs the package with its
``test`` extra into it (which includes the ``docs`` extra); they reinstall when
``pyproject.toml`` changes. ``docs`` builds with warnings as errors, as the test suite does;
``SSE_SYNC_DOCS_BIND`` (``host:port``) changes where it serves, as ``SSE_SYNC_DEMO_BIND`` does
for the demo.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DOCS = ROOT / "docs"
DOCS_HTML = DOCS / "_build" / "html"
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".sse_sync-installed"


def _ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    print("dev.py: installing sse_sync[test] (editable)", flush=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def sphinx_command(output: Path = DOCS_HTML) -> list[str]:
    """The command that builds the site into ``output``: every warning an error, every
    cross-reference resolved (``-n``), and all problems reported at once (``--keep-going``)."""
    sphinx = [str(PYTHON), "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html"]
    return [*sphinx, "-d", str(output.parent / "doctrees"), str(DOCS), str(output)]


def _docs(argv: list[str]) -> int:
    if argv not in ([], ["--no-serve"]):
        print(__doc__, file=sys.stderr)
        return 2
    if subprocess.call(sphinx_command()) != 0:
        print("dev.py: the documentation did not build (warnings are errors)", file=sys.stderr)
        return 1
    print(f"dev.py: built {DOCS_HTML / 'index.html'}", flush=True)
    if argv:
        return 0
    host, _, port = os.environ.get("SSE_SYNC_DOCS_BIND", "127.0.0.1:8001").rpartition(":")
    print(f"dev.py: serving the docs on http://{host}:{port}/ (Ctrl+C stops it)", flush=True)
    serve = [sys.executable, "-m", "http.server", port, "--bind", host]
    return subprocess.call([*serve, "--directory", str(DOCS_HTML)])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "docs"}:
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_venv()
    os.chdir(ROOT)
    if argv[0] == "docs":
        try:
            return _docs(argv[1:])
        except KeyboardInterrupt:
            return 130
    if argv[0] == "demo":
        bind = os.environ.get("SSE_SYNC_DEMO_BIND", "127.0.0.1:8000")
        print(f"dev.py: serving the demo on http://{bind}/ (Ctrl+C stops it)", flush=True)
        cmd = [
            str(BIN / "gunicorn"),
            "-k",
            "sse_sync.gunicorn.GeventWorker",  # gunicorn's gevent worker + direct fan-out writes
            "-w",
            "1",
            "--bind",
            bind,
            "--worker-connections",
            "2000",
            "examples.demo:app",
        ]
    else:
        cmd = [str(PYTHON), "-m", "pytest", *argv[1:]]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
