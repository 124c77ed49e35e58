#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.10+.

    python3 dev.py demo          # the main demo on http://127.0.0.1:8000 (gunicorn, gevent worker)
    python3 dev.py test [ARGS]   # the whole test suite (ARGS go to pytest)

Both create ``.venv`` beside this file on first use and install the package with its
``test`` extra into it; they reinstall when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_venv()
    os.chdir(ROOT)
    if argv[0] == "demo":
        bind = os.environ.get("SSE_SYNC_DEMO_BIND", "127.0.0.1:8000")
        print(f"dev.py: serving the demo on http://{bind}/ (Ctrl+C stops it)", flush=True)
        cmd = [
            str(BIN / "gunicorn"),
            "-k",
            "gevent",
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
