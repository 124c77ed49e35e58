"""The README's code that users copy runs as written."""

from __future__ import annotations

import re
from typing import Any

from .conftest import ROOT


def _block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, f"no python block after {heading!r}"
    return found.group(1)


def test_testing_helpers_snippet_runs() -> None:
    """The sse_sync.testing example in the README passes as a test."""
    namespace: dict[str, Any] = {}
    exec(compile(_block_after("## Testing your streams"), "README.md", "exec"), namespace)
    namespace["test_items_stream"]()
    namespace["test_idle_stream_pings"]()
