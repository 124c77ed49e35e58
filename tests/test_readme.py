"""Every Python block of the README runs as printed, and its headline app streams.

The README keeps what a first visit needs; the rest of the documentation lives in ``docs/``,
whose blocks ``tests/test_doc_blocks.py`` runs the same way (``tests/doc_blocks.py``).
"""

from __future__ import annotations

import re

from sse_sync.testing import read_events

from .conftest import ROOT
from .doc_blocks import python_blocks, run_page

README = ROOT / "README.md"


def test_every_block_runs() -> None:
    """Each Python block of the README executes as printed, the last one included."""
    blocks = python_blocks(README)
    assert blocks
    assert run_page(README).blocks_run == len(blocks)


def test_headline_snippet_streams_items() -> None:
    """The headline app streams its items as named events with ids, resuming after one."""
    app = run_page(README).app
    response = app.test_client().get("/items/stream", buffered=False)
    [event] = read_events(response, count=1)
    response.close()
    assert (event.type, event.last_event_id, event.retry) == ("item_update", "1", 5000)
    assert event.json() == {"name": "Plumbus", "price": 32.99}
    response = app.test_client().get(
        "/items/stream", headers={"Last-Event-ID": "1"}, buffered=False
    )
    [event] = read_events(response, count=1)
    response.close()
    assert (event.last_event_id, event.json()["name"]) == ("2", "Portal Gun")


def test_readme_links_resolve() -> None:
    """Every relative link of the README names a file of this repository."""
    text = README.read_text()
    targets = re.findall(r"\]\(((?!https?://|#)[^)#]+)(?:#[^)]*)?\)", text)
    assert "docs/quickstart.md" in targets
    assert [t for t in targets if not (ROOT / t).exists()] == []
