"""The package builds, passes ``twine check`` and works installed from its wheel alone."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT

_VERSION = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
assert _VERSION is not None
VERSION = _VERSION.group(1)

# Run in the fresh environment, from a folder holding only a copy of examples/items.py: the
# package must come from the installed wheel, and the example must stream its three items.
_CHECK_INSTALLED = """
import sys, sse_sync
from sse_sync.client import iter_events
assert sse_sync.__file__.startswith(sys.prefix), sse_sync.__file__
assert "gevent" not in sys.modules and "redis" not in sys.modules
import items
response = items.app.test_client().get("/items/stream", buffered=False)
print([event.data for event in iter_events(response.response)])
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel, built from the checkout with ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.mark.integration
def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    """``python -m build`` makes one sdist and one wheel of this version; twine finds no fault."""
    names = sorted(path.name for path in dist.iterdir())
    assert names == [f"sse_sync-{VERSION}-py3-none-any.whl", f"sse_sync-{VERSION}.tar.gz"]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


@pytest.mark.integration
def test_wheel_installs_with_only_declared_dependencies(dist: Path, tmp_path: Path) -> None:
    """A fresh venv holding the wheel and its dependencies imports sse_sync, runs an example."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    shutil.copy(ROOT / "examples" / "items.py", app_dir / "items.py")
    result = subprocess.run(
        [str(python), "-c", _CHECK_INSTALLED],
        cwd=app_dir,
        env={"SSE_SYNC_EXAMPLE_DELAY": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        """['{"name":"Plumbus","price":32.99}', '{"name":"Portal Gun","price":999.99}', """
        """'{"name":"Meeseeks Box","price":49.99}']"""
    )


def test_changelog_has_this_version() -> None:
    """CHANGES.md has a section for the version in pyproject.toml, below Unreleased."""
    text = (ROOT / "CHANGES.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[:2] == ["Unreleased", VERSION], headings
