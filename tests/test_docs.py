"""The documentation site builds with warnings as errors and documents every public name.

The site is built once per module, as ``python3 dev.py docs`` builds it (``-W -n
--keep-going``: a broken link, a docstring that does not parse, a cross-reference that does
not resolve fail it), into a temporary directory; Chromium then shows its front page and the
API reference, and the screenshots are kept in ``tests/artifacts/``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sse_sync
from dev import sphinx_command

from .conftest import ARTIFACTS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built site: the directory holding ``index.html``."""
    out = tmp_path_factory.mktemp("docs") / "html"
    command = [sys.executable, *sphinx_command(out)[1:]]
    built = subprocess.run(command, capture_output=True, text=True, timeout=110)
    assert built.returncode == 0, built.stderr + built.stdout
    yield out


def public_modules() -> list[str]:
    """``sse_sync`` and each of its public submodules (no leading underscore)."""
    names = [m.name for m in pkgutil.iter_modules(sse_sync.__path__) if not m.name[0] == "_"]
    return ["sse_sync", *(f"sse_sync.{name}" for name in sorted(names))]


def test_site_builds_without_warnings(site: Path) -> None:
    """Every page of the toctree is built: guides, tutorials, migration guides, the API."""
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for page in (
        "index.html",
        "quickstart.html",
        "tutorials/dashboard.html",
        "tutorials/notifications.html",
        "tutorials/token-stream.html",
        "migrating-from-flask-sse.html",
        "deployment.html",
        "operations.html",
        "architecture.html",
        "changes.html",
        "api.html",
    ):
        assert page in pages


@pytest.mark.parametrize("module", public_modules())
def test_api_reference_documents_every_public_name(site: Path, module: str) -> None:
    """Each name in a public module's ``__all__`` has its entry (an anchor) in the API page."""
    api = (site / "api.html").read_text()
    names = importlib.import_module(module).__all__
    assert names
    missing = [name for name in names if f'id="{module}.{name}"' not in api]
    assert missing == [], f"add these to docs/api.md: {missing}"


def test_api_reference_cross_links_types(site: Path) -> None:
    """Types in signatures and docstrings link to their entries."""
    api = (site / "api.html").read_text()
    for target in ("sse_sync.EventStreamResponse", "sse_sync.Subscription", "sse_sync.CORS"):
        assert f'href="#{target}"' in api


def test_code_included_from_examples(site: Path) -> None:
    """The tutorials show the examples' own code (included, so it cannot drift)."""
    dashboard = (site / "tutorials" / "dashboard.html").read_text()
    assert "_publish_forever" in dashboard
    notifications = (site / "tutorials" / "notifications.html").read_text()
    assert "may_subscribe" in notifications
    index = (site / "index.html").read_text()
    assert re.search(r"stream_items", index)


@pytest.mark.browser
def test_front_page_and_api_page_in_chromium(site: Path, browser: Any) -> None:
    """Chromium shows the front page and the API reference with their titles and headings."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto((site / "index.html").as_uri())
        assert "sse_sync" in page.title()
        assert page.locator("h1").first.inner_text().strip().startswith("sse_sync")
        assert page.get_by_role("link", name="Quickstart").first.is_visible()
        page.screenshot(path=str(ARTIFACTS / "docs-index.png"))

        page.goto((site / "api.html").as_uri() + "#sse_sync.sse_response")
        assert page.title().startswith("API reference")
        assert page.locator("h1").first.inner_text().strip().startswith("API reference")
        assert page.locator('[id="sse_sync.sse_response"]').is_visible()
        page.screenshot(path=str(ARTIFACTS / "docs-api.png"))
    finally:
        page.close()
    for name in ("docs-index.png", "docs-api.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
